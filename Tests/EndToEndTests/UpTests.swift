// `ballast up --detach` as a user runs it: a two-node cluster on temporary dirs, a PVC and a pod
// applied with kubectl, the pod writing to its loop-device volume, `ballast status`, a kubelet
// crash (`ballast node kill`), then `ballast down --purge`, which must leave no process, mount or
// loop device behind.
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("ballast up", .enabled(if: processTestsCanRun && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc")))
struct UpTests {
    @Test("up --detach, a pod writing to its PVC, status, down --purge leaves nothing")
    func upWriteDown() async throws {
        let root = "/tmp/bup-" + UUID().uuidString.prefix(8).lowercased()
        let data = root + "/data", volumes = root + "/volumes"
        let ports = ["--api-port", "\(freePort())", "--cloud-port", "\(freePort())", "--kubelet-port", "\(freePort())"]
        let ballast = ballastBinary()
        func purge() async { _ = try? await runCommand(ballast, ["down", "--purge", "--data-dir", data], timeout: .seconds(240)) }
        do {
            let up = try await runCommand(ballast, ["up", "--detach", "--data-dir", data, "--volumes-dir", volumes, "--nodes", "2",
                                                    "--zones", "1", "--log-level", "info"] + ports, timeout: .seconds(300))
            #expect(up.status == 0, "\(up.stdout)\(up.stderr)")
            #expect(up.stdout.contains("Ballast is ready"), "\(up.stdout)")
            let kubectl = { (arguments: [String], input: String?) in
                try await runCommand("kubectl", ["--kubeconfig", data + "/admin.kubeconfig", "--cache-dir", root + "/kube-cache"] + arguments,
                                     env: ["HOME": root], input: input)
            }
            let nodes = try await kubectl(["get", "nodes", "-o", "name"], nil)
            #expect(nodes.stdout == "node/node-1\nnode/node-2\n", "\(nodes)")
            let classes = try await kubectl(["get", "storageclass", "-o", "name"], nil)
            #expect(classes.stdout == "storageclass.storage.k8s.io/ballast-loop\nstorageclass.storage.k8s.io/ballast-loop-immediate\n", "\(classes)")
            let applied = try await kubectl(["apply", "-f", "-"], """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: 32Mi}}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: writer}
                spec:
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: w
                    image: busybox
                    command: ["sh", "-c", "echo hello > /data/f && cat /data/f && exec sleep 3600"]
                    volumeMounts: [{name: d, mountPath: /data}]
                  volumes:
                  - {name: d, persistentVolumeClaim: {claimName: data}}
                """)
            #expect(applied.status == 0, "\(applied)")
            let running = try await kubectl(["wait", "--for=condition=Ready", "pod/writer", "--timeout=120s"], nil)
            #expect(running.status == 0, "\(running)")
            #expect(await waitUntil(timeout: .seconds(20)) { (try? await kubectl(["logs", "writer"], nil))?.stdout == "hello\n" })
            let status = try await runCommand(ballast, ["status", "--data-dir", data])
            #expect(status.status == 0, "\(status)")
            #expect(status.stdout.contains("node-1  Ready=True") && status.stdout.contains("1 persistent volume"), "\(status.stdout)")
            // A kubelet crash (`ballast node kill`): the supervisor starts it again, which adopts the
            // running container: exec reaches it through the new kubelet, no restart counted.
            let node = try await kubectl(["get", "pod", "writer", "-o", "jsonpath={.spec.nodeName}"], nil).stdout
            let killed = try await runCommand(ballast, ["node", "kill", node, "--data-dir", data])
            #expect(killed.status == 0, "\(killed)")
            #expect(await waitUntil(timeout: .seconds(30), interval: .milliseconds(500)) {
                (try? await kubectl(["exec", "writer", "--", "cat", "/data/f"], nil))?.stdout == "hello\n"
            })
            let restarts = try await kubectl(["get", "pod", "writer", "-o", "jsonpath={.status.containerStatuses[0].restartCount}"], nil)
            #expect(restarts.stdout == "0", "\(restarts)")
        } catch {
            await purge()
            throw error
        }
        let down = try await runCommand(ballast, ["down", "--purge", "--data-dir", data], timeout: .seconds(240))
        #expect(down.status == 0, "\(down)")
        #expect(Mounts.current().allSatisfy { !$0.mountPoint.hasPrefix(root + "/") }, "mounts left under \(root)")
        #expect(LoopDevices.all().allSatisfy { LoopDevices.backingFile(of: $0)?.hasPrefix(root + "/") != true }, "loop devices left")
        let processes = ProcessTable.pids { $0.contains { $0.contains(root + "/") } }
        #expect(processes.isEmpty, "processes left: \(processes)")
        #expect(!FileManager.default.fileExists(atPath: data))
        try? FileManager.default.removeItem(atPath: root)
    }
}
