// The scenarios that need a cluster of their own (Kubernetes' e2e `volumelimits` and
// `disruptive` suites, cloud faults, a real etcd cluster): each starts `ballast up --detach` with
// its flags and ends with `ballast down --purge`, which must leave nothing behind.
import ClusterTesting
import Foundation
import Testing
import TestSupport

@Suite("end-to-end cluster lifecycle", .enabled(if: endToEndCanRun), .timeLimit(.minutes(10)))
struct ClusterLifecycleTests {
    /// Starts a cluster, runs `body`, always purges it, and records what the purge left.
    func withCluster(nodes: Int, zones: Int = 1, flags: [String] = [], _ body: (TestCluster) async throws -> Void) async throws {
        try await TestCluster.start(nodes: nodes, zones: zones, flags: flags).run(body)
    }

    /// `--attach-limit 2`: a third pod with a volume of its own stays Pending, and the scheduler says why.
    @Test func attachLimit() async throws {
        try await withCluster(nodes: 1, flags: ["--attach-limit", "2"]) { cluster in
            let ns = try await cluster.namespace("e2e-limits")
            #expect(await cluster.get("csinode/node-1", "{.spec.drivers[0].allocatable.count}") == "2")
            for i in 1...3 {
                try await cluster.apply(claimYAML("v\(i)") + "---\n" + podYAML("p\(i)", claim: "v\(i)", command: "exec sleep 3600"), namespace: ns)
                if i < 3 { await cluster.waitReady("p\(i)", namespace: ns) }
            }
            await cluster.waitFor("pod p3 Pending with max volume count", namespace: ns) {
                let message = await cluster.get("pod/p3", namespace: ns, "{.status.conditions[?(@.type==\"PodScheduled\")].message}")
                return message.contains("0/1 nodes are available: 1 node(s) exceed max volume count")
            }
            try await cluster.ok(["delete", "pod", "p1", "-n", ns, "--wait=true", "--timeout=90s"], timeout: .seconds(100))
            await cluster.waitReady("p3", namespace: ns)
        }
    }

    /// A node that dies (`ballast node stop`): Ready=Unknown and the unreachable taint; the
    /// operator marks it out-of-service, its pod is deleted and its disk detached, and the pod
    /// made again runs on the other node with the data. Then `down` and `up` bring the cluster
    /// back with the same pod (same uid) Running on its data.
    @Test func nodeFailureThenDownAndUp() async throws {
        try await withCluster(nodes: 2) { cluster in
            let ns = try await cluster.namespace("e2e-disruptive")
            try await cluster.apply(claimYAML("data") + "---\n" + podYAML("app", claim: "data", command: "echo survived > /data/f && sync && exec sleep 3600"),
                                    namespace: ns)
            guard await cluster.waitReady("app", namespace: ns) else { return }
            let dead = await cluster.get("pod/app", namespace: ns, "{.spec.nodeName}")
            let other = dead == "node-1" ? "node-2" : "node-1"
            let stopped = try await cluster.ballast(["node", "stop", dead])
            #expect(stopped.status == 0, "\(stopped)")
            guard await cluster.waitFor("\(dead) unreachable", namespace: ns, timeout: .seconds(120), {
                await cluster.get("node/" + dead, "{.spec.taints[*].key}").contains("node.kubernetes.io/unreachable")
            }) else { return }
            #expect(await cluster.get("node/" + dead, "{.status.conditions[?(@.type==\"Ready\")].status}") == "Unknown")
            try await cluster.ok(["taint", "node", dead, "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"])
            await cluster.waitFor("pod app deleted from the out-of-service node", namespace: ns) {
                try await cluster.kubectl(["get", "pod", "app", "-n", ns]).status != 0
            }
            let pv = await cluster.get("pvc/data", namespace: ns, "{.spec.volumeName}")
            try await cluster.apply(podYAML("app", claim: "data", command: "cat /data/f && exec sleep 3600"), namespace: ns)
            guard await cluster.waitReady("app", namespace: ns, timeout: .seconds(180)) else { return }
            #expect(await cluster.get("pod/app", namespace: ns, "{.spec.nodeName}") == other)
            #expect(try await cluster.ok(["logs", "-n", ns, "app"]) == "survived\n")
            #expect(await cluster.get("volumeattachments", "{range .items[?(@.spec.source.persistentVolumeName==\"\(pv)\")]}{.spec.nodeName} {end}") == other + " ")
            // The node comes back: its kubelet cleans up what the deleted pod left there.
            #expect(try await cluster.ballast(["node", "start", dead]).status == 0)
            try await cluster.ok(["taint", "node", dead, "node.kubernetes.io/out-of-service-"])
            await cluster.waitFor("\(dead) Ready again", namespace: ns) {
                await cluster.get("node/" + dead, "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
            }

            // down, then up on the same data dir: the same pod, Running on the same data.
            let uid = await cluster.get("pod/app", namespace: ns, "{.metadata.uid}")
            let down = try await cluster.ballast(["down"], timeout: .seconds(240))
            #expect(down.status == 0, "\(down)")
            let status = try await cluster.ballast(["status"])
            #expect(status.status == 1 && status.stdout.contains("not running"), "\(status)")
            // A clean stop gives the leases up: the next up's controller manager and scheduler lead at once.
            for component in ["controller-manager", "scheduler"] {
                let log = (try? String(contentsOfFile: cluster.data + "/logs/\(component).log", encoding: .utf8)) ?? ""
                #expect(log.contains("released the lease"), "\(component) did not release its lease when stopped")
            }
            let up = try await cluster.ballast(["up", "--detach"], timeout: .seconds(300))
            guard up.status == 0 else {
                Issue.record("ballast up again failed: \(up.stdout)\(up.stderr)")
                return
            }
            // The pod's status still says Ready from before `down` until its kubelet syncs it:
            // judged by exec, which reaches the container the new kubelet started.
            await cluster.waitFor("the pod back on its data after up", namespace: ns, timeout: .seconds(180)) {
                try await cluster.kubectl(["exec", "-n", ns, "app", "--", "cat", "/data/f"]).stdout == "survived\n"
            }
            #expect(await cluster.get("pod/app", namespace: ns, "{.metadata.uid}") == uid)
        }
    }

    /// `--cloud-faults`: create and attach fail at random inside the cloud; every claim still
    /// ends Bound and every pod Running, the failures retried and visible as events.
    @Test func cloudFaults() async throws {
        try await withCluster(nodes: 2, flags: ["--cloud-faults", "attach=0.2,create=0.1"]) { cluster in
            let ns = try await cluster.namespace("e2e-faults")
            let pods = 6
            var yaml = ""
            for i in 1...pods { yaml += claimYAML("v\(i)") + "---\n" + podYAML("p\(i)", claim: "v\(i)", command: "exec sleep 3600") + "---\n" }
            try await cluster.apply(yaml, namespace: ns)
            for i in 1...pods { await cluster.waitReady("p\(i)", namespace: ns, timeout: .seconds(240)) }
            let phases = await cluster.get("pvc", namespace: ns, "{.items[*].status.phase}")
            #expect(phases == Array(repeating: "Bound", count: pods).joined(separator: " "), "\(phases)")
            let injectedLines = ((try? String(contentsOfFile: cluster.data + "/logs/cloud.log", encoding: .utf8)) ?? "")
                .split(separator: "\n").filter { $0.contains("injected fault") }
            let injected = injectedLines.count
            let events = try await cluster.ok(["get", "events", "-n", ns])
            let retried = events.components(separatedBy: "injected fault").count - 1
            print("cloud faults: \(injected) injected faults in the cloud's log, \(retried) events name one")
            if injected > 0 {
                if retried == 0 {
                    // Which requests failed, and what the components that made them logged of it.
                    var logs = ""
                    for component in ["csi-controller", "controller-manager", "cloud-controller-manager"] {
                        let log = (try? String(contentsOfFile: cluster.data + "/logs/\(component).log", encoding: .utf8)) ?? ""
                        let lines = log.split(separator: "\n").filter { $0.contains("injected") || $0.contains("error") || $0.contains("warning") }
                        logs += "$ grep injected|error|warning \(component).log\n\(lines.suffix(20).joined(separator: "\n"))\n"
                    }
                    Issue.record("the cloud injected \(injected) faults, no event says so:\n\(injectedLines.joined(separator: "\n"))\n\(events)\n\(logs)")
                }
            }
        }
    }

    /// Ballast on a 3-member etcd cluster: a member killed while a volume is provisioned and
    /// attached, then restarted; the pod runs on its volume and no write is lost.
    @Test func threeMemberEtcd() async throws {
        guard await EtcdProcess.isInstalled() else {
            print("⚠️  SKIPPED: etcd is not installed (make deps)")
            return
        }
        let etcd = try await EtcdCluster.start()
        defer { etcd.stop() }
        try await withCluster(nodes: 1, flags: ["--etcd-servers", etcd.endpoints]) { cluster in
            let ns = try await cluster.namespace("e2e-etcd")
            try await cluster.apply(claimYAML("data") + "---\n" + podYAML("app", claim: "data", command: "echo on-etcd > /data/f && cat /data/f && exec sleep 3600"),
                                    namespace: ns)
            let victim = etcd.members[0]
            await etcd.kill(victim)
            for i in 1...20 { try await cluster.ok(["create", "configmap", "c\(i)", "-n", ns, "--from-literal=i=\(i)"]) }
            try etcd.restart(victim)
            #expect(await etcd.waitHealthy(victim), "\(etcd.log(victim).suffix(2000))")
            guard await cluster.waitReady("app", namespace: ns, timeout: .seconds(180)) else { return }
            #expect(try await cluster.ok(["logs", "-n", ns, "app"]) == "on-etcd\n")
            #expect(await cluster.get("configmaps", namespace: ns, "{range .items[*]}{.metadata.name} {end}").split(separator: " ").filter { $0.hasPrefix("c") }.count == 20)
            // Every member has every write: the restarted one caught up.
            let keys = try await run("etcdctl", ["--endpoints", victim.endpoint, "--consistency=s", "get", "--prefix", "--keys-only",
                                                 "/registry/configmaps/\(ns)/c"], env: ["ETCDCTL_API": "3"])
            #expect(keys.stdout.split(separator: "\n").filter { !$0.isEmpty }.count == 20, "the restarted member's own data: \(keys.stdout)\(keys.stderr)")
        }
    }
}
