import Foundation
import Testing
import TestSupport

let manifest = packageRoot.appendingPathComponent("fixtures/apiserver/app.yaml").path

@Suite(.serialized) struct KubectlIntegrationTests {
    @Test func applyGetDescribeLabelPatchDelete() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let applied = try await server.ok("apply", "-f", manifest)
        #expect(applied.contains("storageclass.storage.k8s.io/fast created"))
        #expect(applied.contains("persistentvolumeclaim/data created"))
        #expect(applied.contains("pod/db created"))

        // Server-side columns.
        let pvcs = try await server.ok("get", "pvc")
        let header = pvcs.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                == "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE")
        #expect(pvcs.contains("data") && pvcs.contains("Pending") && pvcs.contains("fast"))
        let pods = try await server.ok("get", "pods", "-o", "wide")
        #expect(pods.contains("READY") && pods.contains("0/1") && pods.contains("Pending") && pods.contains("NOMINATED NODE"))
        let classes = try await server.ok("get", "sc")
        #expect(classes.contains("fast (default)") && classes.contains("WaitForFirstConsumer") && classes.contains("csi.ballast.dev"))
        let all = try await server.ok("get", "pvc", "-A", "--show-labels")
        #expect(all.contains("default") && all.contains("app=db"))

        // JSON output and resource versions.
        let json = try await server.ok("get", "pvc", "data", "-o", "json")
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let metadata = object?["metadata"] as? [String: Any]
        #expect(metadata?["resourceVersion"] is String)
        #expect((metadata?["uid"] as? String)?.isEmpty == false)

        // describe reads the pvc, the pods using it and its events.
        let described = try await server.ok("describe", "pvc", "data")
        #expect(described.contains("Name:") && described.contains("data") && described.contains("StorageClass:"))
        #expect(described.contains("Used By:") && described.contains("db"))

        // label (merge patch), patch of each type.
        #expect(try await server.ok("label", "pvc", "data", "tier=gold").contains("persistentvolumeclaim/data labeled"))
        #expect(try await server.ok("get", "pvc", "-l", "tier in (gold,silver)", "-o", "name").contains("persistentvolumeclaim/data"))
        #expect(try await server.ok("patch", "pod", "db", "-p", #"{"spec":{"containers":[{"name":"main","image":"busybox:1.37"}]}}"#)
            .contains("pod/db patched"))
        let mounts = try await server.ok("get", "pod", "db", "-o", "jsonpath={.spec.containers[0].image} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].env[0].value}")
        #expect(mounts == "busybox:1.37 /data primary", "strategic merge keeps the container's mounts and env")
        #expect(try await server.ok("patch", "pvc", "data", "--type=merge", "-p", #"{"metadata":{"annotations":{"note":"merged"}}}"#)
            .contains("patched"))
        #expect(try await server.ok("patch", "pvc", "data", "--type=json", "-p", #"[{"op":"add","path":"/metadata/labels/extra","value":"yes"}]"#)
            .contains("patched"))
        #expect(try await server.ok("get", "pvc", "data", "-o", "jsonpath={.metadata.annotations.note},{.metadata.labels.extra}") == "merged,yes")
        #expect(try await server.ok("patch", "pvc", "data", "--type=merge", "-p", #"{"metadata":{"annotations":{"note":"merged"}}}"#)
            .contains("patched (no change)"))

        // apply twice: the second changes nothing (client-side and server-side).
        let rv1 = try await server.ok("get", "pvc", "data", "-o", "jsonpath={.metadata.resourceVersion}")
        #expect(try await server.ok("apply", "-f", manifest).contains("persistentvolumeclaim/data unchanged"))
        #expect(try await server.ok("get", "pvc", "data", "-o", "jsonpath={.metadata.resourceVersion}") == rv1)
        #expect(try await server.ok("apply", "--server-side", "-f", manifest).contains("persistentvolumeclaim/data serverside-applied"))
        let rv2 = try await server.ok("get", "pvc", "data", "-o", "jsonpath={.metadata.resourceVersion}")
        #expect(try await server.ok("apply", "--server-side", "-f", manifest).contains("serverside-applied"))
        #expect(try await server.ok("get", "pvc", "data", "-o", "jsonpath={.metadata.resourceVersion}") == rv2)
        #expect(try await server.ok("get", "pod", "db", "-o", "jsonpath={.spec.containers[0].volumeMounts[0].mountPath}") == "/data")

        // Errors as kubectl prints them.
        let missing = try await server.kubectl(["get", "pvc", "nope"])
        #expect(missing.status != 0 && missing.stderr.contains(#"Error from server (NotFound): persistentvolumeclaims "nope" not found"#))
        let exists = try await server.kubectl(["create", "-f", manifest])
        #expect(exists.stderr.contains(#"storageclasses.storage.k8s.io "fast" already exists"#))

        // Protobuf create, then deletes.
        #expect(try await server.ok("create", "namespace", "scratch").contains("namespace/scratch created"))
        #expect(try await server.ok("get", "ns").contains("scratch"))
        // kubectl create configmap|secret send protobuf too: data, binary data, type.
        let binary = FileManager.default.temporaryDirectory.path + "/ballast-binary-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: binary) }
        #expect(FileManager.default.createFile(atPath: binary, contents: Data([0x00, 0xFF, 0x01])))
        #expect(try await server.ok("create", "configmap", "settings", "--from-literal=mode=fast", "--from-file=blob=" + binary)
            .contains("configmap/settings created"))
        #expect(try await server.ok("get", "configmap", "settings", "-o", "jsonpath={.data.mode} {.binaryData.blob}") == "fast AP8B")
        #expect(try await server.ok("create", "secret", "generic", "token", "--from-literal=key=s3cret", "--type=example.com/token")
            .contains("secret/token created"))
        #expect(try await server.ok("get", "secret", "token", "-o", "jsonpath={.data.key} {.type}") == "czNjcmV0 example.com/token")
        // kubectl create deployment|job: a workload's spec down to its containers.
        #expect(try await server.ok("create", "deployment", "web", "--image=busybox", "--replicas=0", "--port=8080", "--", "sleep", "60")
            .contains("deployment.apps/web created"))
        #expect(try await server.ok("get", "deployment", "web", "-o",
                                    "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].command} {.spec.template.spec.containers[0].ports[0].containerPort}")
                == #"0 web ["sleep","60"] 8080"#)
        #expect(try await server.ok("create", "job", "once", "--image=busybox", "--", "echo", "hi").contains("job.batch/once created"))
        #expect(try await server.ok("get", "job", "once", "-o", "jsonpath={.spec.template.spec.restartPolicy} {.spec.template.spec.containers[0].name}")
                == "Never once")
        #expect(try await server.ok("delete", "deployment/web", "job/once").contains("deleted"))
        let deleted = try await server.ok("delete", "-f", manifest)
        #expect(deleted.contains("pod \"db\" deleted") && deleted.contains("persistentvolumeclaim \"data\" deleted"))
        #expect(try await server.ok("get", "pvc", "-o", "name").isEmpty)
        #expect(try await server.ok("delete", "namespace", "scratch").contains("deleted"))
    }

    @Test func watchAndWait() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        _ = try await server.ok("apply", "-f", manifest)
        // kubectl get --watch streams the update.
        let watcher = try server.background("get", "pvc", "data", "--watch", "-o", "jsonpath={.metadata.labels.stage}{\"\\n\"}")
        defer { watcher.stop() }
        try await Task.sleep(for: .seconds(2))
        _ = try await server.ok("label", "pvc", "data", "stage=two")
        let seen = await watcher.waitForOutput(timeout: 20) { $0.contains("two") }
        #expect(seen, "the watch printed: \(watcher.output)")
        #expect(watcher.isRunning, "the watch stays open")

        // kubectl wait sees a status change made after it started.
        let waiter = try server.background("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=30s")
        defer { waiter.stop() }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(waiter.isRunning, "wait blocks while the claim is Pending")
        _ = try await server.ok("patch", "pvc", "data", "--subresource=status", "--type=merge", "-p", #"{"status":{"phase":"Bound"}}"#)
        let (status, waited) = await waiter.finish(timeout: 30)
        #expect(status == 0, "kubectl wait: \(waited)")
        #expect(waited.contains("persistentvolumeclaim/data condition met"))
    }

    @Test func authenticationAndNodeAuthorization() async throws {
        let server = try await ServerProcess.start { dir in
            try "node-a-secret,system:node:node-a,node-a,system:nodes\n".write(toFile: dir + "/tokens.csv", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/tokens.csv")  // tokens are secrets
            return ["--token-auth-file", dir + "/tokens.csv"]
        }
        defer { server.stop() }
        let bad = try await server.kubectl(["--token", "not-a-token", "get", "pods"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("You must be logged in to the server"), "\(bad.stderr)")

        for node in ["node-a", "node-b"] {
            _ = try await server.ok("create", "-f", "-", input: #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"\#(node)"}}"#)
        }
        let own = try await server.kubectl(["--token", "node-a-secret", "label", "node", "node-a", "zone=a"])
        #expect(own.status == 0, "\(own.stderr)")
        let other = try await server.kubectl(["--token", "node-a-secret", "label", "node", "node-b", "zone=b"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("Error from server (Forbidden)"), "\(other.stderr)")
        #expect(other.stderr.contains("node 'node-a' cannot modify node 'node-b'"), "\(other.stderr)")
        let readPods = try await server.kubectl(["--token", "node-a-secret", "get", "pods", "-A"])
        #expect(readPods.status == 0, "\(readPods.stderr)")
        let createPod = try await server.kubectl(["--token", "node-a-secret", "run", "x", "--image=busybox"])
        #expect(createPod.status != 0 && createPod.stderr.contains("Forbidden"))
        // The file's node token and the generated admin token both work; the admin may do it.
        #expect(try await server.ok("label", "node", "node-b", "zone=b").contains("labeled"))

        // Health without credentials; metrics for the admin; bodies over 3 MiB refused with a Status.
        let ca = server.directory + "/pki/ca.crt"
        let base = "https://127.0.0.1:\(server.port)"
        #expect(try await run("curl", ["-s", "--cacert", ca, base + "/healthz"]).stdout == "ok")
        let unauthorized = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, base + "/api/v1/pods"])
        #expect(unauthorized.stdout == "401")
        #expect(try await server.ok("get", "--raw", "/metrics").contains("apiserver_request_total{verb=\"PATCH\",resource=\"nodes\",code=\"403\"} 1"))
        let big = server.directory + "/big.json"
        try Data(repeating: 0x20, count: 4 << 20).write(to: URL(fileURLWithPath: big))
        let token = try String(contentsOfFile: server.directory + "/pki/admin.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let tooLarge = try await run("curl", ["-s", "--cacert", ca, "-H", "Authorization: Bearer \(token)", "-H", "Content-Type: application/json",
                                        "--data-binary", "@" + big, base + "/api/v1/namespaces/default/pods"])
        #expect(tooLarge.stdout.contains("\"code\":413") && tooLarge.stdout.contains("RequestEntityTooLarge"), "\(tooLarge.stdout)")
        #expect(await server.terminate() == 0, "SIGTERM stops the server cleanly")
    }

    /// The same API over the etcd v3 protocol: `ballast store serve` stands in for an etcd cluster.
    @Test func overAnEtcdEndpoint() async throws {
        let storeDir = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-etcd-\(UUID().uuidString)").path
        let storePort = freePort()
        let store = try TestProcess([ballastBinary(), "store", "serve", "--data-dir", storeDir,
                                     "--listen-client-urls", "http://127.0.0.1:\(storePort)"], logPath: storeDir + ".log")
        defer {
            store.kill()
            try? FileManager.default.removeItem(atPath: storeDir)
            try? FileManager.default.removeItem(atPath: storeDir + ".log")
        }
        let server = try await ServerProcess.start { _ in ["--etcd-servers", "http://127.0.0.1:\(storePort)"] }
        defer { server.stop() }
        #expect(try await server.ok("apply", "-f", manifest).contains("persistentvolumeclaim/data created"))
        #expect(try await server.ok("get", "pvc", "data", "-o", "jsonpath={.spec.resources.requests.storage}") == "1Gi")
        #expect(try await server.ok("delete", "pvc", "data").contains("deleted"))
        #expect(try await server.kubectl(["get", "pvc", "data"]).stderr.contains("NotFound"))
    }

    /// Two API servers on one real etcd, each with its own watch cache: a consistent read on
    /// one sees what the other just wrote, and a watch on one sees the other's writes.
    @Test func twoAPIServersOnOneEtcdSeeEachOthersWrites() async throws {
        guard await EtcdProcess.isInstalled() else {
            print("⚠️  SKIPPED: etcd is not installed (make deps)")
            return
        }
        let etcd = try await EtcdCluster.start(members: 1)
        defer { etcd.stop() }
        let a = try await ServerProcess.start { _ in ["--etcd-servers", etcd.endpoints] }
        defer { a.stop() }
        let b = try await ServerProcess.start { _ in ["--etcd-servers", etcd.endpoints] }
        defer { b.stop() }
        let watch = try TestProcess(["/usr/bin/env", "kubectl", "--kubeconfig", b.kubeconfig, "get", "configmaps", "--watch-only", "-o", "name",
                                     "--request-timeout=60s"], logPath: b.directory + "/watch.log")
        defer { watch.kill() }
        try await Task.sleep(for: .seconds(1))  // kubectl's watch is open
        for i in 1...5 {
            #expect(try await a.ok("create", "configmap", "from-a-\(i)", "--from-literal=i=\(i)").contains("created"))
            // Read on the other server at once: its cache waits for etcd's current revision.
            #expect(try await b.ok("get", "configmap", "from-a-\(i)", "-o", "jsonpath={.data.i}") == "\(i)")
            #expect(try await b.ok("get", "configmaps", "-o", "name").contains("configmap/from-a-\(i)"))
        }
        #expect(try await b.ok("delete", "configmap", "from-a-1").contains("deleted"))
        #expect(try await a.kubectl(["get", "configmaps", "-o", "name"]).stdout.contains("from-a-1") == false)
        let seen = await waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) {
            (1...5).allSatisfy { watch.log.contains("configmap/from-a-\($0)") }
        }
        #expect(seen, "server b's watch saw server a's writes: \(watch.log)")
    }
}
