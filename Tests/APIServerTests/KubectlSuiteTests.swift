// The real kubectl against `ballast apiserver`, once over the embedded store and once over a
// real etcd (Debian's etcd-server): every test body runs on both backends. It covers what
// KubectlIntegrationTests does not: output formats and selectors across namespaces, list
// watches, create/apply of a multi-document manifest with a Namespace in it, re-apply
// keeping resource versions, delete --wait on a finalizer, describe with events, wait on
// conditions and jsonpath, strategic/merge/json patches of status lists, api-resources, and
// the 409/404/422/401/403 error texts.
import Foundation
import Testing
import TestSupport

let teamManifest = packageRoot.appendingPathComponent("fixtures/apiserver/team.yaml").path

/// Where the API server keeps its objects.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case embedded
    case etcd
    var testDescription: String { rawValue }
}

/// The token file every suite server gets: a kubelet of node-a.
let nodeATokenLine = "node-a-secret,system:node:node-a,node-a,system:nodes\n"

/// Starts the backend and `ballast apiserver` on it, runs `body`, and always stops both and
/// removes their directories.
func withServer(on backend: Backend, _ body: (ServerProcess) async throws -> Void) async throws {
    let etcd = backend == .etcd ? try await EtcdProcess.start() : nil
    defer { etcd?.stop() }
    let server = try await ServerProcess.start { dir in
        try nodeATokenLine.write(toFile: dir + "/tokens.csv", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: dir + "/tokens.csv")  // tokens are secrets
        return ["--token-auth-file", dir + "/tokens.csv"] + (etcd.map { ["--etcd-servers", $0.endpoint] } ?? [])
    }
    defer { server.stop() }
    try await body(server)
}

/// Table output with runs of spaces folded: "NAME STATUS …".
func rows(_ table: String) -> [String] {
    table.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
}

extension ServerProcess {
    func resourceVersion(_ args: String...) async throws -> String {
        let r = try await kubectl(["get"] + args + ["-o", "jsonpath={.metadata.resourceVersion}"])
        guard r.status == 0, !r.stdout.isEmpty else { throw TestFailure("no resourceVersion for \(args): \(r.stderr)") }
        return r.stdout
    }

    /// kubectl that must fail; returns its stderr.
    func fails(_ args: String..., input: String? = nil) async throws -> String {
        let r = try await kubectl(args, input: input)
        guard r.status != 0 else { throw TestFailure("kubectl \(args.joined(separator: " ")) succeeded: \(r.stdout)") }
        return r.stderr
    }
}

/// The suites that start servers and etcd run one after the other: side by side on a 2-core
/// machine they load it enough to trip other tests' time bounds.
@Suite(.serialized) struct ServerBackedSuites {}

extension ServerBackedSuites {
    @Suite struct KubectlSuiteTests {
        @Test(arguments: Backend.allCases) func getFormatsSelectorsAndWatch(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                _ = try await server.ok("apply", "-f", teamManifest)
                _ = try await server.ok("apply", "-f", manifest)

                // -A: claims of both namespaces with a NAMESPACE column; -o wide adds VOLUMEMODE.
                let all = rows(try await server.ok("get", "pvc", "-A"))
                #expect(all.first == "NAMESPACE NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE")
                #expect(all.dropFirst().map { $0.split(separator: " ").prefix(3).joined(separator: " ") }
                        == ["default data Pending", "team-a cache Pending", "team-a logs Pending"], "\(all)")
                let wide = rows(try await server.ok("get", "pvc", "-n", "team-a", "-o", "wide"))
                #expect(wide.first?.hasSuffix("AGE VOLUMEMODE") == true, "\(wide)")
                #expect(wide.dropFirst().allSatisfy { $0.hasSuffix(" Filesystem") }, "\(wide)")
                let pods = rows(try await server.ok("get", "pods", "-A", "-o", "wide"))
                #expect(pods.first == "NAMESPACE NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES")
                #expect(pods.contains { $0.hasPrefix("team-a web 0/1 Pending 0 ") }, "\(pods)")

                // -o yaml / -o json: the stored object with defaults and a string resourceVersion.
                let yaml = try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "yaml")
                #expect(yaml.hasPrefix("apiVersion: v1\nkind: PersistentVolumeClaim\n"), "\(yaml)")
                #expect(yaml.contains("  namespace: team-a\n") && yaml.contains("      storage: 2Gi\n") && yaml.contains("  volumeMode: Filesystem\n"))
                #expect(yaml.contains("  phase: Pending\n"))
                #expect(yaml.range(of: #"\n  resourceVersion: "[0-9]+"\n"#, options: .regularExpression) != nil, "\(yaml)")
                let json = try await server.ok("get", "pvc", "-n", "team-a", "-o", "json")
                let list = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
                #expect(list["kind"] as? String == "List")
                let items = try #require(list["items"] as? [[String: Any]])
                #expect(items.compactMap { ($0["metadata"] as? [String: Any])?["name"] as? String } == ["cache", "logs"])
                #expect(items.allSatisfy { $0["kind"] as? String == "PersistentVolumeClaim" && $0["apiVersion"] as? String == "v1" })

                // jsonpath over a list, with range and filters.
                #expect(try await server.ok("get", "pvc", "-A", "-o", #"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.spec.resources.requests.storage};{end}"#)
                        == "default/data=1Gi;team-a/cache=512Mi;team-a/logs=2Gi;")
                #expect(try await server.ok("get", "pvc", "-n", "team-a", "-o", #"jsonpath={.items[?(@.metadata.labels.tier=="hot")].metadata.name}"#) == "cache")

                // -l: equality, inequality, set-based and existence, across namespaces.
                #expect(try await server.ok("get", "pvc", "-A", "-l", "tier=hot", "-o", "name") == "persistentvolumeclaim/cache\n")
                #expect(try await server.ok("get", "pvc", "-A", "-l", "app=web,tier!=hot", "-o", "name") == "persistentvolumeclaim/logs\n")
                #expect(try await server.ok("get", "pvc", "-A", "-l", "tier notin (hot),app", "-o", "name")
                        == "persistentvolumeclaim/data\npersistentvolumeclaim/logs\n")
                #expect(try await server.ok("get", "pvc", "-A", "-l", "!tier", "-o", "name") == "persistentvolumeclaim/data\n")
                #expect(try await server.ok("get", "pods,pvc", "-A", "-l", "app=web", "-o", "name") == "pod/web\npersistentvolumeclaim/cache\npersistentvolumeclaim/logs\n")
                let none = try await server.kubectl(["get", "pvc", "-n", "team-a", "-l", "app=nothing"])
                #expect(none.status == 0 && none.stdout.isEmpty && none.stderr.contains("No resources found in team-a namespace."))

                // --field-selector: name and namespace, and the server's refusal of an unknown field.
                #expect(rows(try await server.ok("get", "pvc", "-A", "--field-selector", "metadata.name=logs")).dropFirst().map { String($0.prefix(12)) }
                        == ["team-a logs "])
                #expect(try await server.ok("get", "pvc", "-A", "--field-selector", "metadata.namespace!=team-a", "-o", "name") == "persistentvolumeclaim/data\n")
                #expect(try await server.ok("get", "pods", "-A", "--field-selector", "status.phase=Pending,metadata.namespace=team-a", "-o", "name") == "pod/web\n")
                let badField = try await server.fails("get", "pvc", "-A", "--field-selector", "spec.storageClassName=fast")
                #expect(badField.contains(#"Error from server (BadRequest): Unable to find "/v1, Resource=persistentvolumeclaims" that match label selector "", field selector "spec.storageClassName=fast": field label not supported: spec.storageClassName"#)
                        || badField.contains("field label not supported: spec.storageClassName"), "\(badField)")

                // get -w over a list in Table form: the change arrives as a new row (here the -L column).
                let watch = try server.background("get", "pvc", "-A", "-w", "-L", "tier")
                defer { watch.stop() }
                #expect(await watch.waitForOutput(timeout: 20) { $0.contains("logs") && $0.contains("cache") }, "\(watch.output)")
                _ = try await server.ok("label", "pvc", "logs", "-n", "team-a", "tier=frozen", "--overwrite")
                #expect(await watch.waitForOutput(timeout: 20) { $0.contains("frozen") }, "the watch printed: \(watch.output)")
                let update = rows(watch.output).last { $0.contains("frozen") } ?? ""
                #expect(update.hasPrefix("team-a logs Pending"), "\(update)")
                #expect(watch.isRunning, "the watch stays open")
            }
        }

        @Test(arguments: Backend.allCases) func createApplyDescribeAndDelete(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                // create -f of a multi-document file, the Namespace first.
                let created = try await server.ok("create", "-f", teamManifest)
                #expect(created == "namespace/team-a created\npersistentvolumeclaim/logs created\npersistentvolumeclaim/cache created\npod/web created\n")
                func versions() async throws -> [String] {
                    var versions: [String] = []
                    for ref in ["ns/team-a", "pvc/logs", "pvc/cache", "pod/web"] {
                        versions.append(try await server.resourceVersion(ref, "-n", "team-a"))
                    }
                    return versions
                }

                // Server-side apply of the same manifest changes nothing: every resourceVersion stays.
                let v0 = try await versions()
                let ssa = try await server.ok("apply", "--server-side", "-f", teamManifest)
                #expect(ssa == "namespace/team-a serverside-applied\npersistentvolumeclaim/logs serverside-applied\npersistentvolumeclaim/cache serverside-applied\npod/web serverside-applied\n")
                #expect(try await versions() == v0, "a no-op server-side apply keeps the resource versions")
                // A changed field is applied (and merged: the pod keeps its mounts), only that object moves.
                let changed = server.directory + "/team-changed.yaml"
                let source = try String(contentsOfFile: teamManifest, encoding: .utf8)
                try source.replacingOccurrences(of: "tier: cold", with: "tier: warm")
                    .replacingOccurrences(of: "image: nginx:1.27", with: "image: nginx:1.28")
                    .write(toFile: changed, atomically: true, encoding: .utf8)
                _ = try await server.ok("apply", "--server-side", "-f", changed)
                let v1 = try await versions()
                #expect(v1[0] == v0[0] && v1[2] == v0[2], "untouched objects keep their resourceVersion")
                #expect(v1[1] != v0[1] && v1[3] != v0[3])
                #expect(try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "jsonpath={.metadata.labels.tier}") == "warm")
                #expect(try await server.ok("get", "pod", "web", "-n", "team-a", "-o", "jsonpath={.spec.containers[0].image} {.spec.containers[0].volumeMounts[0].mountPath}")
                        == "nginx:1.28 /var/log/nginx")

                // Client-side apply over it: the first run records last-applied (configured), the next
                // is a no-op that sends nothing, a change to one claim configures just that one.
                _ = try await server.ok("apply", "-f", changed)
                let v2 = try await versions()
                #expect(try await server.ok("apply", "-f", changed)
                        == "namespace/team-a unchanged\npersistentvolumeclaim/logs unchanged\npersistentvolumeclaim/cache unchanged\npod/web unchanged\n")
                #expect(try await versions() == v2, "a no-op client-side apply keeps the resource versions")
                try source.replacingOccurrences(of: "tier: hot", with: "tier: lukewarm")
                    .replacingOccurrences(of: "tier: cold", with: "tier: warm")
                    .replacingOccurrences(of: "image: nginx:1.27", with: "image: nginx:1.28")
                    .write(toFile: changed, atomically: true, encoding: .utf8)
                #expect(try await server.ok("apply", "-f", changed)
                        == "namespace/team-a unchanged\npersistentvolumeclaim/logs unchanged\npersistentvolumeclaim/cache configured\npod/web unchanged\n")
                #expect(try await server.ok("get", "pvc", "-n", "team-a", "-o", "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier", "--no-headers")
                        .split(separator: "\n").map { rows(String($0))[0] } == ["cache lukewarm", "logs warm"])

                // describe of a pod: its containers, mounts, conditions and events (found by involvedObject).
                let uid = try await server.ok("get", "pod", "web", "-n", "team-a", "-o", "jsonpath={.metadata.uid}")
                let event = """
                    {"apiVersion":"v1","kind":"Event","metadata":{"name":"web.scheduled","namespace":"team-a"},
                     "involvedObject":{"apiVersion":"v1","kind":"Pod","name":"web","namespace":"team-a","uid":"\(uid)"},
                     "reason":"Scheduled","message":"Successfully assigned team-a/web to node-a","type":"Normal","count":1,
                     "source":{"component":"default-scheduler"}}
                    """
                #expect(try await server.ok("create", "-f", "-", input: event) == "event/web.scheduled created\n")
                let described = try await server.ok("describe", "pod", "web", "-n", "team-a")
                let lines = rows(described)
                #expect(lines.contains("Name: web") && lines.contains("Namespace: team-a") && lines.contains("Status: Pending"), "\(described)")
                #expect(lines.contains("Image: nginx:1.28") && lines.contains("/var/log/nginx from logs (rw)") && lines.contains("ClaimName: logs"), "\(described)")
                #expect(lines.contains { $0.hasPrefix("Normal Scheduled ") && $0.hasSuffix(" default-scheduler Successfully assigned team-a/web to node-a") },
                        "\(described)")
                let describedNamespace = rows(try await server.ok("describe", "namespace", "team-a"))
                #expect(describedNamespace.contains("Name: team-a") && describedNamespace.contains("Status: Active"))

                // delete --wait waits for a finalizer to go.
                _ = try await server.ok("patch", "pvc", "cache", "-n", "team-a", "--type=merge", "-p", #"{"metadata":{"finalizers":["example.com/hold"]}}"#)
                let deleting = try server.background("delete", "pvc", "cache", "-n", "team-a", "--wait=true", "--timeout=40s")
                defer { deleting.stop() }
                #expect(await waitUntil(timeout: .seconds(20), interval: .milliseconds(100)) { (try? await server.ok("get", "pvc", "cache", "-n", "team-a", "-o", "jsonpath={.metadata.deletionTimestamp}"))?.isEmpty == false },
                        "the claim is marked for deletion")
                try await Task.sleep(for: .milliseconds(1000))
                #expect(deleting.isRunning, "delete --wait blocks while the finalizer holds the claim: \(deleting.output)")
                _ = try await server.ok("patch", "pvc", "cache", "-n", "team-a", "--type=json", "-p", #"[{"op":"remove","path":"/metadata/finalizers"}]"#)
                let done = await deleting.finish(timeout: 30)
                #expect(done.status == 0 && done.output == "persistentvolumeclaim \"cache\" deleted\n", "\(done)")
                #expect(try await server.fails("get", "pvc", "cache", "-n", "team-a").contains(#"persistentvolumeclaims "cache" not found"#))

                // Deleting the namespace takes its content with it.
                let gone = try await server.ok("delete", "-f", teamManifest, "--ignore-not-found", "--wait=true", "--timeout=60s")
                #expect(gone.contains("namespace \"team-a\" deleted"), "\(gone)")
                #expect(try await server.ok("get", "pvc,pods", "-A", "-o", "name").isEmpty)
            }
        }

        @Test(arguments: Backend.allCases) func waitAndPatches(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                _ = try await server.ok("apply", "-f", teamManifest)
                // wait --for=condition and --for=jsonpath, satisfied by a status patch made after they started.
                let ready = try server.background("wait", "--for=condition=Ready", "pod/web", "-n", "team-a", "--timeout=40s")
                defer { ready.stop() }
                let running = try server.background("wait", "--for=jsonpath={.status.phase}=Running", "pod/web", "-n", "team-a", "--timeout=40s")
                defer { running.stop() }
                try await Task.sleep(for: .milliseconds(1500))
                #expect(ready.isRunning && running.isRunning, "both wait while the pod is Pending: \(ready.output) \(running.output)")
                #expect(try await server.ok("patch", "pod", "web", "-n", "team-a", "--subresource=status", "--type=merge", "-p",
                                      #"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#) == "pod/web patched\n")
                let readyDone = await ready.finish(timeout: 30)
                #expect(readyDone.status == 0 && readyDone.output == "pod/web condition met\n", "\(readyDone)")
                let runningDone = await running.finish(timeout: 30)
                #expect(runningDone.status == 0 && runningDone.output == "pod/web condition met\n", "\(runningDone)")
                // Already met: at once. Never met: a timeout with kubectl's wording.
                #expect(try await server.ok("wait", "--for=condition=Ready", "pod/web", "-n", "team-a", "--timeout=10s") == "pod/web condition met\n")
                let timedOut = try await server.kubectl(["wait", "--for=condition=Ready=False", "pod/web", "-n", "team-a", "--timeout=2s"])
                #expect(timedOut.status != 0 && timedOut.stderr.contains("timed out waiting for the condition on pods/web"), "\(timedOut.stderr)")
                // The spec write did not touch the status, and the status write not the spec.
                #expect(try await server.ok("get", "pod", "web", "-n", "team-a", "-o", "jsonpath={.status.phase} {.spec.containers[0].image}") == "Running nginx:1.27")

                // Strategic merge: conditions merge by type (one added beside Ready, Ready updated in place).
                #expect(try await server.ok("patch", "pod", "web", "-n", "team-a", "--subresource=status", "--type=strategic", "-p",
                                      #"{"status":{"conditions":[{"type":"Initialized","status":"True"},{"type":"Ready","status":"False"}]}}"#)
                        == "pod/web patched\n")
                let conditions = #"jsonpath={range .status.conditions[*]}{.type}={.status};{end}"#
                #expect(try await server.ok("get", "pod", "web", "-n", "team-a", "-o", conditions) == "Ready=False;Initialized=True;")
                // Strategic merge on the spec: containers by name, ports by containerPort, env by name.
                _ = try await server.ok("patch", "pod", "web", "-n", "team-a", "--type=strategic", "-p",
                                  #"{"spec":{"containers":[{"name":"main","image":"nginx:1.29"}]}}"#)
                #expect(try await server.ok("get", "pod", "web", "-n", "team-a", "-o", "jsonpath={.spec.containers[*].name} {.spec.containers[0].image} {.spec.containers[0].ports[0].containerPort} {.spec.containers[0].volumeMounts[0].name}")
                        == "main nginx:1.29 80 logs")
                // Merge patch: a list is replaced whole, null removes a key.
                _ = try await server.ok("patch", "pod", "web", "-n", "team-a", "--subresource=status", "--type=merge", "-p",
                                  #"{"status":{"conditions":[{"type":"PodScheduled","status":"True"}]}}"#)
                #expect(try await server.ok("get", "pod", "web", "-n", "team-a", "-o", conditions) == "PodScheduled=True;")
                _ = try await server.ok("patch", "pvc", "logs", "-n", "team-a", "--type", "merge", "-p", #"{"metadata":{"labels":{"tier":null,"owner":"ops"}}}"#)
                #expect(try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "jsonpath={.metadata.labels}") == #"{"app":"web","owner":"ops"}"#)
                // JSON patch: ops in order, all or nothing.
                #expect(try await server.ok("patch", "pvc", "logs", "-n", "team-a", "--type", "json", "-p",
                                      #"[{"op":"test","path":"/metadata/labels/owner","value":"ops"},{"op":"replace","path":"/metadata/labels/owner","value":"dev"},{"op":"copy","from":"/metadata/labels/owner","path":"/metadata/labels/backup"}]"#)
                        == "persistentvolumeclaim/logs patched\n")
                let rv = try await server.resourceVersion("pvc", "logs", "-n", "team-a")
                let failedTest = try await server.kubectl(["patch", "pvc", "logs", "-n", "team-a", "--type", "json", "-p",
                                                     #"[{"op":"remove","path":"/metadata/labels/app"},{"op":"test","path":"/metadata/labels/owner","value":"ops"}]"#])
                #expect(failedTest.status != 0 && failedTest.stderr.contains("testing value /metadata/labels/owner failed"),
                        "a failed test op fails the patch: \(failedTest.stderr)")
                #expect(try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "jsonpath={.metadata.labels}") == #"{"app":"web","backup":"dev","owner":"dev"}"#,
                        "nothing of a failed JSON patch is applied")
                #expect(try await server.resourceVersion("pvc", "logs", "-n", "team-a") == rv)
            }
        }

        @Test(arguments: Backend.allCases) func apiResources(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                let table = rows(try await server.ok("api-resources"))
                #expect(table.first == "NAME SHORTNAMES APIVERSION NAMESPACED KIND")
                let expected = [
                    "configmaps cm v1 true ConfigMap",
                    "endpoints ep v1 true Endpoints",
                    "events ev v1 true Event",
                    "namespaces ns v1 false Namespace",
                    "nodes no v1 false Node",
                    "persistentvolumeclaims pvc v1 true PersistentVolumeClaim",
                    "persistentvolumes pv v1 false PersistentVolume",
                    "pods po v1 true Pod",
                    "secrets v1 true Secret",
                    "services svc v1 true Service",
                    "customresourcedefinitions crd,crds apiextensions.k8s.io/v1 false CustomResourceDefinition",
                    "controllerrevisions apps/v1 true ControllerRevision",
                    "deployments deploy apps/v1 true Deployment",
                    "replicasets rs apps/v1 true ReplicaSet",
                    "statefulsets sts apps/v1 true StatefulSet",
                    "jobs batch/v1 true Job",
                    "leases coordination.k8s.io/v1 true Lease",
                    "endpointslices discovery.k8s.io/v1 true EndpointSlice",
                    "csidrivers storage.k8s.io/v1 false CSIDriver",
                    "csinodes storage.k8s.io/v1 false CSINode",
                    "storageclasses sc storage.k8s.io/v1 false StorageClass",
                    "volumeattachments storage.k8s.io/v1 false VolumeAttachment",
                ]
                #expect(Array(table.dropFirst()) == expected)
                #expect(try await server.ok("api-resources", "--namespaced=true", "--api-group=", "-o", "name")
                        == "configmaps\nendpoints\nevents\npersistentvolumeclaims\npods\nsecrets\nservices\n")
                let wide = rows(try await server.ok("api-resources", "--api-group=storage.k8s.io", "-o", "wide"))
                #expect(wide.contains("storageclasses sc storage.k8s.io/v1 false StorageClass create,delete,deletecollection,get,list,patch,update,watch"),
                        "\(wide)")
                #expect(try await server.ok("api-versions") == "apiextensions.k8s.io/v1\napps/v1\nbatch/v1\ncoordination.k8s.io/v1\ndiscovery.k8s.io/v1\nstorage.k8s.io/v1\nv1\n")
                // Every served resource answers a list through its short name.
                for short in ["ep", "ev", "ns", "no", "pvc", "pv", "po", "svc", "sc", "sts", "deploy", "rs", "crd"] {
                    #expect(try await server.kubectl(["get", short, "-A"]).status == 0, "kubectl get \(short)")
                }
            }
        }

        @Test(arguments: Backend.allCases) func errorTexts(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                _ = try await server.ok("apply", "-f", teamManifest)
                // 409: replace with an old manifest (its resourceVersion is stale).
                let old = server.directory + "/logs-old.yaml"
                try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "yaml").write(toFile: old, atomically: true, encoding: .utf8)
                _ = try await server.ok("label", "pvc", "logs", "-n", "team-a", "touched=yes")
                let stale = try await server.fails("replace", "-f", old)
                #expect(stale.contains(#"Error from server (Conflict): error when replacing "\#(old)": Operation cannot be fulfilled on persistentvolumeclaims "logs": the object has been modified; please apply your changes to the latest version and try again"#),
                        "\(stale)")
                #expect(try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "jsonpath={.metadata.labels.touched}") == "yes")
                // ... while a current one is replaced.
                try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "yaml").replacingOccurrences(of: "touched: \"yes\"", with: "touched: again")
                    .write(toFile: old, atomically: true, encoding: .utf8)
                #expect(try await server.ok("replace", "-f", old) == "persistentvolumeclaim/logs replaced\n")

                // 404 for each verb, and in a namespace that does not exist.
                #expect(try await server.fails("delete", "pvc", "nope", "-n", "team-a") == "Error from server (NotFound): persistentvolumeclaims \"nope\" not found\n")
                #expect(try await server.fails("patch", "pod", "nope", "-n", "team-a", "-p", "{}") == "Error from server (NotFound): pods \"nope\" not found\n")
                #expect(try await server.fails("describe", "pvc", "nope", "-n", "team-a").contains(#"persistentvolumeclaims "nope" not found"#))
                #expect(try await server.fails("get", "sc", "nope") == "Error from server (NotFound): storageclasses.storage.k8s.io \"nope\" not found\n")
                let noNamespace = try await server.fails("create", "-f", "-", input: #"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"x","namespace":"nowhere"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#)
                #expect(noNamespace.contains(#"Error from server (NotFound): error when creating "STDIN": namespaces "nowhere" not found"#), "\(noNamespace)")

                // 422: an invalid claim, every cause in Kubernetes' words.
                let invalid = try await server.fails("create", "-f", "-", input: """
                    apiVersion: v1
                    kind: PersistentVolumeClaim
                    metadata:
                      name: bad
                      namespace: team-a
                    spec:
                      accessModes: ["ReadWriteSometimes"]
                    """)
                #expect(invalid == """
                    The PersistentVolumeClaim "bad" is invalid: \n\
                    * spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"
                    * spec.resources[storage]: Required value

                    """, "\(invalid)")
                let oneCause = try await server.fails("create", "-f", "-", input: #"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"bad","namespace":"team-a"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"-1Gi"}}}}"#)
                #expect(oneCause == #"The PersistentVolumeClaim "bad" is invalid: spec.resources[storage]: Invalid value: "-1Gi": must be greater than zero"# + "\n",
                        "\(oneCause)")
                #expect(try await server.fails("get", "pvc", "bad", "-n", "team-a").contains("NotFound"), "nothing invalid was stored")

                // 401: a token the server does not know, on reads and writes alike.
                for args in [["get", "pvc", "-A"], ["delete", "pvc", "logs", "-n", "team-a"]] {
                    let denied = try await server.kubectl(["--token", "wrong-token"] + args)
                    #expect(denied.status != 0 && denied.stderr.contains("error: You must be logged in to the server (Unauthorized)"), "\(denied.stderr)")
                }
                // apply stops at its first request, the OpenAPI download for validation.
                let applyDenied = try await server.kubectl(["--token", "wrong-token", "apply", "-f", teamManifest])
                #expect(applyDenied.status != 0 && applyDenied.stderr.contains("failed to download openapi: the server has asked for the client to provide credentials"),
                        "\(applyDenied.stderr)")
                #expect(try await server.ok("get", "pvc", "logs", "-n", "team-a", "-o", "name") == "persistentvolumeclaim/logs\n")

                // 403: node-a's kubelet writing node-b (delete, status), or a claim; allowed on its own node.
                for node in ["node-a", "node-b"] {
                    _ = try await server.ok("create", "-f", "-", input: #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"\#(node)"}}"#)
                }
                let asNode = ["--token", "node-a-secret"]
                let deleteOther = try await server.kubectl(asNode + ["delete", "node", "node-b"])
                #expect(deleteOther.stderr == #"Error from server (Forbidden): nodes "node-b" is forbidden: User "system:node:node-a" cannot delete resource "nodes" in API group "" at the cluster scope: node 'node-a' cannot modify node 'node-b'"# + "\n",
                        "\(deleteOther.stderr)")
                let statusOther = try await server.kubectl(asNode + ["patch", "node", "node-b", "--subresource=status", "--type=merge", "-p", #"{"status":{"phase":"Running"}}"#])
                #expect(statusOther.status != 0 && statusOther.stderr.contains(#"User "system:node:node-a" cannot patch resource "nodes/status" in API group "" at the cluster scope: node 'node-a' cannot modify node 'node-b'"#),
                        "\(statusOther.stderr)")
                // A claim no pod of node-a mounts: not even readable by node-a (Kubernetes' node authorizer).
                let claim = try await server.kubectl(asNode + ["annotate", "pvc", "logs", "-n", "team-a", "x=y"])
                #expect(claim.stderr.contains(#"Error from server (Forbidden): persistentvolumeclaims "logs" is forbidden: User "system:node:node-a" cannot get resource "persistentvolumeclaims" in API group "" in the namespace "team-a": no relationship found between node 'node-a' and this object"#),
                        "\(claim.stderr)")
                let ownStatus = try await server.kubectl(asNode + ["patch", "node", "node-a", "--subresource=status", "--type=merge", "-p", #"{"status":{"phase":"Running"}}"#])
                #expect(ownStatus.status == 0 && ownStatus.stdout == "node/node-a patched\n", "\(ownStatus.stderr)")
                #expect(try await server.ok("get", "nodes", "-o", "name") == "node/node-a\nnode/node-b\n", "the denied delete left node-b")
            }
        }
    }
}
