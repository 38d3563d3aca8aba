// `shareProcessNamespace: true` on a real cluster: the pod's containers join one PID namespace
// whose PID 1 is the pod's pause process, so one container sees and signals the other's
// processes; the signalled container is reported terminated with its exit code and restarted
// by policy; a kubelet killed with SIGKILL and started again adopts the pod and its pause; and
// deleting the pod leaves no process behind. Without the flag the containers see nothing of
// each other.
import ClusterAPI
import ClusterTesting
import Foundation
import HostSystem
import Testing
import TestSupport

@Suite("Kubelet shareProcessNamespace", .enabled(if: clusterTestsCanRun), .timeLimit(.minutes(10)))
struct ShareProcessNamespaceTests {
    /// A pod of two busybox containers: `sleeper` says `up` and runs `sleep 3601`, `peer` runs
    /// `sleep 3600` with an exec readiness probe.
    static func manifest(_ name: String, node: String, shared: Bool) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: \(name)}
        spec:
          nodeName: \(node)
          shareProcessNamespace: \(shared)
          terminationGracePeriodSeconds: 1
          containers:
          - {name: sleeper, image: busybox, command: ["sh", "-c", "echo up; exec sleep 3601"]}
          - name: peer
            image: busybox
            command: ["sleep", "3600"]
            readinessProbe: {exec: {command: ["test", "-d", "/proc/1"]}, periodSeconds: 1}
        """
    }

    /// A shell line, run in `peer`, that sends SIGTERM to every process whose command line is
    /// `sleep 3601` and prints `killed <pid>` for each (busybox has no pkill).
    static let killSleeper = #"for d in /proc/[0-9]*; do [ "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" = "sleep 3601 " ] && kill ${d#/proc/} && echo killed ${d#/proc/}; done; true"#

    /// The parent of process `pid` (host namespace), from /proc/<pid>/status.
    static func parent(_ pid: Int32) -> Int32? {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("PPid:") }.flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) }
    }

    static func lastExitCode(_ pod: Pod, _ container: String) -> Int64? {
        pod.containerStatus(container)?["lastState"]?["terminated"]?["exitCode"]?.int64Value
    }

    @Test("containers of a shared PID namespace see and kill each other's processes; the pause is adopted after kill -9, replaced when it dies, removed with the pod")
    func sharedNamespace() async throws {
        try await withCluster { c in
            let node = try await c.startNode()
            try await c.apply(Self.manifest("shared", node: node.name, shared: true) + "\n---\n" + Self.manifest("apart", node: node.name, shared: false))
            let shared = try await c.waitForPod("shared", "Running and ready", timeout: .seconds(90)) {
                $0.isRunning("sleeper") && $0.isRunning("peer") && $0.isReady
            }
            try await c.waitForPod("apart", "Running", timeout: .seconds(90)) { $0.isRunning("sleeper") && $0.isRunning("peer") }

            // The pause is PID 1 of the shared namespace, in the pod's cgroup.
            let uid = shared.metadata.uid ?? ""
            let sandbox = node.root + "/pods/\(uid)/sandbox"
            let pausePID = try #require(Int32(((try? String(contentsOfFile: sandbox + "/pause.pid", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)), "no pause.pid in \(sandbox)")
            #expect(ProcessTable.arguments(of: pausePID)?.contains("kubelet-pause") == true)
            let cgroup = (try? String(contentsOfFile: "/proc/\(pausePID)/cgroup", encoding: .utf8)) ?? ""
            #expect(cgroup.contains("/pod\(uid.replacingOccurrences(of: "-", with: "_"))/pause"), "\(cgroup)")
            let first = try await c.kubectl("exec", "shared", "-c", "sleeper", "--", "cat", "/proc/1/cmdline")
            #expect(first.stdout.contains("kubelet-pause"), "PID 1 of the shared namespace: \(first)")
            let seen = try await c.kubectl("exec", "shared", "-c", "peer", "--", "ps", "-o", "pid,args")
            #expect(seen.stdout.contains("sleep 3601") && seen.stdout.contains("sleep 3600"), "\(seen)")
            // A process orphaned inside the namespace goes to the pause, which reaps it.
            let orphaned = try await c.kubectl("exec", "shared", "-c", "peer", "--", "sh", "-c", "sleep 1002 </dev/null >/dev/null 2>&1 & exit 0")
            #expect(orphaned.status == 0, "\(orphaned)")
            let orphan = ProcessTable.pids { $0 == ["sleep", "1002"] }.first
            #expect(orphan.map(Self.parent) == pausePID, "the orphan's parent is the pause")
            if let orphan {
                kill(orphan, SIGKILL)
                #expect(await waitUntil(timeout: .seconds(5)) { ProcessTable.arguments(of: orphan) == nil && !FileManager.default.fileExists(atPath: "/proc/\(orphan)") },
                        "the pause reaped it (no zombie)")
            }
            // Apart, each container has its own namespace: peer sees no sleeper.
            let apart = try await c.kubectl("exec", "apart", "-c", "peer", "--", "ps", "-o", "pid,args")
            #expect(apart.status == 0 && !apart.stdout.contains("sleep 3601"), "\(apart)")
            let missed = try await c.kubectl("exec", "apart", "-c", "peer", "--", "sh", "-c", Self.killSleeper)
            #expect(missed.status == 0 && !missed.stdout.contains("killed"), "\(missed)")

            // peer kills sleeper: terminated with 143 (SIGTERM; it is not PID 1), restarted (Always).
            let killed = try await c.kubectl("exec", "shared", "-c", "peer", "--", "sh", "-c", Self.killSleeper)
            #expect(killed.stdout.hasPrefix("killed "), "\(killed)")
            let restarted = try await c.waitForPod("shared", "sleeper restarted") { $0.restartCount("sleeper") == 1 && $0.isRunning("sleeper") }
            #expect(Self.lastExitCode(restarted, "sleeper") == 143, "\(restarted.containerStatus("sleeper") ?? .null)")
            #expect(restarted.containerStatus("sleeper")?["lastState"]?["terminated"]?["reason"]?.stringValue == "Error")
            #expect(restarted.restartCount("peer") == 0 && restarted.isRunning("peer"))
            // Logs of both attempts.
            #expect(await waitUntil(timeout: .seconds(10)) { (try? await c.kubectl("logs", "shared", "-c", "sleeper"))?.stdout == "up\n" })
            #expect(try await c.kubectl("logs", "shared", "-c", "sleeper", "--previous").stdout == "up\n")
            let stillApart = try await c.pod("apart")
            #expect(stillApart.restartCount("sleeper") == 0 && stillApart.isRunning("sleeper"))
            let again = try await c.kubectl("exec", "shared", "-c", "peer", "--", "ps", "-o", "pid,args")
            #expect(again.stdout.contains("sleep 3601"), "the restarted sleeper joined the same namespace: \(again)")

            // kubelet kill -9 and restart: the pod is adopted, its pause kept.
            await node.kubelet.kill9()
            try node.restartKubelet()
            try await c.waitForNodeReady(node)
            try await Task.sleep(for: .seconds(3))
            let adopted = try await c.waitForPod("shared", "Running after the kubelet restart") { $0.isRunning("sleeper") && $0.isRunning("peer") }
            #expect(adopted.containerID("sleeper") == restarted.containerID("sleeper"), "adopted, not restarted")
            #expect(adopted.containerID("peer") == shared.containerID("peer"))
            #expect(adopted.restartCount("sleeper") == 1)
            #expect(ProcessTable.arguments(of: pausePID)?.contains("kubelet-pause") == true, "the pause survived the kubelet restart")
            #expect((try? String(contentsOfFile: sandbox + "/pause.pid", encoding: .utf8))?.hasPrefix("\(pausePID)\n") == true)
            // An adopted container of the shared namespace still reports its exit.
            let killedAgain = try await c.kubectl("exec", "shared", "-c", "peer", "--", "sh", "-c", Self.killSleeper)
            #expect(killedAgain.stdout.hasPrefix("killed "), "\(killedAgain)")
            let second = try await c.waitForPod("shared", "sleeper restarted again", timeout: .seconds(60)) { $0.restartCount("sleeper") == 2 }
            #expect(Self.lastExitCode(second, "sleeper") == 143)

            // A pause that dies takes the namespace's processes with it (SIGKILL from the
            // kernel); the kubelet starts a new pause and restarts the containers in it.
            #expect(kill(pausePID, SIGKILL) == 0)
            let renewed = try await c.waitForPod("shared", "restarted in a new namespace", timeout: .seconds(60)) {
                $0.restartCount("peer") == 1 && $0.isRunning("peer") && $0.isRunning("sleeper")
            }
            #expect(Self.lastExitCode(renewed, "peer") == 137, "\(renewed.containerStatus("peer") ?? .null)")
            let newPause = Int32(((try? String(contentsOfFile: sandbox + "/pause.pid", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(newPause != nil && newPause != pausePID)
            let joined = try await c.kubectl("exec", "shared", "-c", "peer", "--", "ps", "-o", "pid,args")
            #expect(joined.stdout.contains("sleep 3601") && joined.stdout.contains("sleep 3600"), "\(joined)")

            // Deleting the pods leaves no process, mount or cgroup behind.
            let deleted = try await c.kubectl(["delete", "pod", "shared", "apart", "--wait=true"], timeout: .seconds(60))
            #expect(deleted.status == 0, "\(deleted.stderr)")
            #expect(await waitUntil(timeout: .seconds(30)) { node.leftovers().shims == 0 && node.leftovers().mounts.isEmpty })
            let left = node.leftovers()
            #expect(left.mounts.isEmpty && left.cgroups.isEmpty && left.shims == 0, "\(left)")
            #expect(ProcessTable.pids { $0.contains("kubelet-pause") && $0.contains(where: { $0.hasPrefix(node.root + "/") }) }.isEmpty)
        }
    }
}
