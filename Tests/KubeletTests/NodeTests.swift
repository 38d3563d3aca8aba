// The kubelet with everything real: `ballast apiserver`, the simulated cloud, the CSI controller
// and node plugins, the controller manager, the scheduler and `ballast kubelet` as processes,
// runc containers of the busybox image, loop-device volumes, and kubectl as users drive it.
import ClusterAPI
import HostSystem
import ClusterTesting
import Foundation
import Testing
import TestSupport

@Suite("Kubelet on a cluster", .enabled(if: clusterTestsCanRun))
struct NodeTests {
    @Test("a pod writes to its PVC and a second pod reads it; a block volume is a block device; logs and exec; nothing is left behind")
    func volumesLogsAndExec() async throws {
        try await withCluster(scheduler: true) { c in
            let node = try await c.startNode()
            try await c.createDefaultStorageClass()
            try await c.apply("""
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: 32Mi}}
                ---
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: raw}
                spec:
                  accessModes: [ReadWriteOnce]
                  volumeMode: Block
                  resources: {requests: {storage: 16Mi}}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: writer}
                spec:
                  terminationGracePeriodSeconds: 2
                  containers:
                  - name: w
                    image: busybox
                    command: ["sh", "-c", "echo hello > /data/f && sync && echo wrote && exec sleep 3600"]
                    volumeMounts: [{name: d, mountPath: /data}]
                    volumeDevices: [{name: r, devicePath: /dev/xvdb}]
                  volumes:
                  - {name: d, persistentVolumeClaim: {claimName: data}}
                  - {name: r, persistentVolumeClaim: {claimName: raw}}
                """)
            let writer = try await c.waitForPod("writer", "Running and ready", timeout: .seconds(90)) { $0.isRunning("w") && $0.isReady }
            #expect(writer.spec.nodeName == node.name)
            #expect(writer.status.podIP == node.ip, "a kubelet without --cluster-cidr keeps pods on the node's network")

            // Logs, with --tail.
            #expect(await waitUntil(timeout: .seconds(10)) { (try? await c.kubectl("logs", "writer"))?.stdout == "wrote\n" })
            // exec: output and exit code, stdin, a block device, a terminal.
            let exec = try await c.kubectl("exec", "writer", "--", "sh", "-c", "cat /data/f; test -b /dev/xvdb && echo block; exit 3")
            #expect(exec.status == 3, "\(exec.stderr)")
            #expect(exec.stdout == "hello\nblock\n")
            let stdin = try await c.kubectl("exec", "-i", "writer", "--", "sh", "-c", "tr a-z A-Z", input: "shout\n")
            #expect(stdin.status == 0 && stdin.stdout == "SHOUT\n", "\(stdin)")
            let tty = try await runCommand("script", ["-qec", "kubectl --kubeconfig \(c.kubeconfig) --cache-dir \(c.root)/kube-cache exec -it writer -- sh -c 'tty; exit 4'",
                                                      "/dev/null"], env: ["HOME": c.root], input: "")
            #expect(tty.stdout.contains("/dev/pts/"), "\(tty)")
            #expect(tty.status == 4, "\(tty)")
            // A client that goes while its input still waits to be written (the command reads
            // none: its stdin pipe is full): the command is stopped all the same.
            let isStuck = { (arguments: [String]) in arguments == ["sleep", "3601"] }
            let stuck = try ChildProcess(["kubectl", "--kubeconfig", c.kubeconfig, "--cache-dir", c.root + "/kube-cache",
                                          "exec", "-i", "writer", "--", "sleep", "3601"], standardInput: .pipe)
            #expect(await waitUntil(timeout: .seconds(20)) { !ProcessTable.pids(where: isStuck).isEmpty }, "the exec'd command runs")
            let typing = Task { try? await stuck.standardInput?.write([UInt8](repeating: 0x61, count: 1 << 20)) }
            try await Task.sleep(for: .seconds(1))
            try? stuck.signal(SIGKILL)
            _ = await stuck.terminate(grace: .zero)
            typing.cancel()
            #expect(await waitUntil(timeout: .seconds(20)) { ProcessTable.pids(where: isStuck).isEmpty }, "the command of a client gone is stopped")
            let mounts = node.leftovers().mounts
            #expect(mounts.contains { $0.hasSuffix("/mount") && $0.contains("kubernetes.io~csi") }, "\(mounts)")

            // The second pod, on the same node, reads what the first wrote.
            let deleted = try await c.kubectl(["delete", "pod", "writer", "--wait=true"], timeout: .seconds(60))
            #expect(deleted.status == 0, "\(deleted.stderr)")
            try await c.apply("""
                apiVersion: v1
                kind: Pod
                metadata: {name: reader}
                spec:
                  restartPolicy: Never
                  containers:
                  - name: r
                    image: busybox
                    command: ["cat", "/data/f"]
                    volumeMounts: [{name: d, mountPath: /data, readOnly: true}]
                  volumes:
                  - {name: d, persistentVolumeClaim: {claimName: data}}
                """)
            let reader = try await c.waitForPod("reader", "Succeeded", timeout: .seconds(90)) { $0.status.phase == "Succeeded" }
            #expect(reader.spec.nodeName == node.name)
            #expect(try await c.kubectl("logs", "reader").stdout == "hello\n")

            // Deleting the pods leaves no process, mount or cgroup of theirs behind.
            #expect(try await c.kubectl(["delete", "pod", "reader", "--wait=true"], timeout: .seconds(60)).status == 0)
            #expect(await waitUntil(timeout: .seconds(30)) {
                let left = node.leftovers()
                return left.mounts.isEmpty && left.cgroups.isEmpty && left.shims == 0
            }, "left behind: \(node.leftovers())")
            // No pod uses the volumes any more: unstaged, detached.
            #expect(await waitUntil(timeout: .seconds(60)) {
                let detached = (try? await c.client.list(VolumeAttachment.self).items.isEmpty) ?? false
                return detached && Mounts.current().allSatisfy { !$0.mountPoint.hasPrefix(node.root + "/") }
            }, "still staged or attached: \(Mounts.current().filter { $0.mountPoint.hasPrefix(node.root) })")
        }
    }

    @Test("restart policies, CrashLoopBackOff, probes, OOMKilled and bad input each say why, and the node keeps serving its other pods")
    func containersAndBadInput() async throws {
        try await withCluster { c in
            let node = try await c.startNode()
            let pods = [
                ("crash", "Always", #"command: ["sh", "-c", "echo dying; exit 2"]"#, ""),
                ("fails", "Never", #"command: ["sh", "-c", "exit 5"]"#, ""),
                ("counter", "Never", #"command: ["seq", "1", "5000"]"#, ""),
                // A restarted container has a fresh root: the mark survives in an emptyDir.
                ("retries", "OnFailure", #"command: ["sh", "-c", "test -f /state/x || (touch /state/x; exit 1)"]"#,
                 "volumeMounts: [{name: state, mountPath: /state}]\n  volumes: [{name: state, emptyDir: {}}]"),
                ("nocommand", "Never", #"command: ["/no/such/binary"]"#, ""),
                ("oom", "Never", #"command: ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)"]"#,
                 "resources: {limits: {memory: 32Mi}}"),
                ("liveness", "Always", #"command: ["sleep", "3600"]"#,
                 "livenessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1, failureThreshold: 1}"),
                ("unready", "Always", #"command: ["sleep", "3600"]"#,
                 "readinessProbe: {tcpSocket: {port: 1}, periodSeconds: 1}"),
                ("healthy", "Always", #"command: ["sleep", "3600"]"#,
                 "readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: 1}"),
                // HTTPS, its certificate not verified: the kubelet's own /healthz on the node's
                // address, which is the pod's (plain HTTP there fails).
                ("https", "Always", #"command: ["sleep", "3600"]"#,
                 "readinessProbe: {httpGet: {scheme: HTTPS, port: \(node.port), path: /healthz}, periodSeconds: 1}"),
                ("plainhttp", "Always", #"command: ["sleep", "3600"]"#,
                 "readinessProbe: {httpGet: {port: \(node.port), path: /healthz}, periodSeconds: 1}"),
            ]
            var manifest = pods.map { name, policy, command, extra in
                """
                apiVersion: v1
                kind: Pod
                metadata: {name: \(name)}
                spec:
                  nodeName: \(node.name)
                  restartPolicy: \(policy)
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: c
                    image: busybox
                    \(command)
                    \(extra)
                """
            }
            manifest.append("""
                apiVersion: v1
                kind: Pod
                metadata: {name: noimage}
                spec:
                  nodeName: \(node.name)
                  containers:
                  - {name: c, image: "registry.example/app:1.0"}
                """)
            manifest.append("""
                apiVersion: v1
                kind: Pod
                metadata: {name: nfs}
                spec:
                  nodeName: \(node.name)
                  containers:
                  - {name: c, image: busybox, command: ["sleep", "3600"], volumeMounts: [{name: v, mountPath: /v}]}
                  volumes:
                  - {name: v, nfs: {server: 127.0.0.1, path: /export}}
                """)
            manifest.append("""
                apiVersion: v1
                kind: ConfigMap
                metadata: {name: settings}
                data: {mode: fast}
                ---
                apiVersion: v1
                kind: Secret
                metadata: {name: creds}
                stringData: {password: s3cret, 1st: skipped}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: keyed}
                spec:
                  nodeName: \(node.name)
                  restartPolicy: Never
                  containers:
                  - name: c
                    image: busybox
                    command: ["sh", "-c", "cat /cfg/mode /creds/password; touch /cfg/x 2>/dev/null || echo ' read-only'"]
                    volumeMounts: [{name: cfg, mountPath: /cfg}, {name: creds, mountPath: /creds}]
                  volumes:
                  - {name: cfg, configMap: {name: settings}}
                  - {name: creds, secret: {secretName: creds}}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: envs}
                spec:
                  nodeName: \(node.name)
                  restartPolicy: Never
                  containers:
                  - name: c
                    image: busybox
                    command: ["sh", "-c", "echo $MODE $PASSWORD $CFG_mode ${MISSING:-unset}"]
                    env:
                    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
                    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
                    - {name: MISSING, valueFrom: {configMapKeyRef: {name: absent, key: k, optional: true}}}
                    envFrom:
                    - {prefix: CFG_, configMapRef: {name: settings}}
                    - {secretRef: {name: creds}}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: badenv}
                spec:
                  nodeName: \(node.name)
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: c
                    image: busybox
                    command: ["sleep", "3600"]
                    env:
                    - {name: X, valueFrom: {configMapKeyRef: {name: settings, key: nope}}}
                """)
            try await c.apply(manifest.joined(separator: "\n---\n"))

            try await c.waitForPod("crash", "in CrashLoopBackOff", timeout: .seconds(60)) {
                $0.waitingReason("c") == "CrashLoopBackOff" && $0.restartCount("c") >= 1
            }
            let fails = try await c.waitForPod("fails", "Failed") { $0.status.phase == "Failed" }
            #expect(fails.containerStatus("c")?["state"]?["terminated"]?["exitCode"]?.int64Value == 5)
            #expect(fails.terminatedReason("c") == "Error")
            let retries = try await c.waitForPod("retries", "Succeeded") { $0.status.phase == "Succeeded" }
            #expect(retries.restartCount("c") == 1)
            #expect(retries.terminatedReason("c") == "Completed")
            let nocommand = try await c.waitForPod("nocommand", "Failed") { $0.status.phase == "Failed" }
            #expect(nocommand.terminatedReason("c") == "StartError")
            #expect(nocommand.containerStatus("c")?["state"]?["terminated"]?["message"]?.stringValue?.contains("/no/such/binary") == true)
            #expect(await c.hasEvent(of: "nocommand") { $0.hasPrefix("Failed: ") && $0.contains("/no/such/binary") })
            try await c.waitForPod("oom", "OOMKilled") { $0.terminatedReason("c") == "OOMKilled" }
            try await c.waitForPod("liveness", "restarted by its liveness probe", timeout: .seconds(60)) { $0.restartCount("c") >= 1 }
            #expect(await c.hasEvent(of: "liveness") { $0.hasPrefix("Killing: Container c failed liveness probe") })
            let unready = try await c.waitForPod("unready", "running") { $0.isRunning("c") }
            #expect(!unready.isReady)
            #expect(await c.hasEvent(of: "unready") { $0.hasPrefix("Unhealthy: Readiness probe failed") })
            let noimage = try await c.waitForPod("noimage", "waiting on ErrImageNeverPull") { $0.waitingReason("c") == "ErrImageNeverPull" }
            let message = noimage.containerStatus("c")?["state"]?["waiting"]?["message"]?.stringValue ?? ""
            #expect(message.contains("registry.example/app:1.0") && message.contains("ballast images import"), "\(message)")
            let mountFailed = await c.hasEvent(of: "nfs", timeout: .seconds(30)) { $0.hasPrefix("FailedMount: ") && $0.contains("nfs") }
            let nfsEvents = (try? await c.events(of: "nfs")) ?? []
            #expect(mountFailed, "no FailedMount event naming the volume type: \(nfsEvents)")
            try await c.waitForPod("healthy", "ready") { $0.isReady }
            try await c.waitForPod("https", "ready") { $0.isReady }
            let plain = try await c.waitForPod("plainhttp", "running") { $0.isRunning("c") }
            #expect(!plain.isReady)
            // Logs: whole, the tail, limited, followed to the container's end (streamed in pieces).
            try await c.waitForPod("counter", "Succeeded") { $0.status.phase == "Succeeded" }
            let counted = (1...5000).map { "\($0)\n" }.joined()
            #expect(try await c.kubectl("logs", "counter").stdout == counted)
            #expect(try await c.kubectl("logs", "counter", "--tail", "3").stdout == "4998\n4999\n5000\n")
            #expect(try await c.kubectl("logs", "counter", "--limit-bytes", "10").stdout == "1\n2\n3\n4\n5\n")
            #expect(try await c.kubectl("logs", "counter", "--tail", "2", "--timestamps").stdout.hasSuffix("Z 5000\n"))
            #expect(try await c.kubectl(["logs", "-f", "counter"], timeout: .seconds(30)).stdout == counted)
            try await c.waitForPod("keyed", "Succeeded") { $0.status.phase == "Succeeded" }
            let keyed = try await c.kubectl("logs", "keyed").stdout
            #expect(keyed == "fasts3cret read-only\n", "\(keyed)")
            // env from ConfigMaps and Secrets: keys, envFrom with a prefix, an optional one missing.
            try await c.waitForPod("envs", "Succeeded") { $0.status.phase == "Succeeded" }
            let envs = try await c.kubectl("logs", "envs").stdout
            #expect(envs == "fast s3cret fast unset\n", "\(envs)")
            // A key that is no variable name is skipped, with Kubernetes' event.
            #expect(await c.hasEvent(of: "envs") {
                $0 == "InvalidEnvironmentVariableNames: Keys [1st] from the EnvFrom secret default/creds were skipped since they are considered invalid environment variable names."
            })
            let badenv = try await c.waitForPod("badenv", "waiting on CreateContainerConfigError") { $0.waitingReason("c") == "CreateContainerConfigError" }
            let badMessage = badenv.containerStatus("c")?["state"]?["waiting"]?["message"]?.stringValue ?? ""
            #expect(badMessage == "couldn't find key nope in ConfigMap default/settings", "\(badMessage)")
            // exec into a container that is not running: the kubelet refuses, and says so as Kubernetes does.
            let refused = try await c.kubectl("exec", "badenv", "--", "true")
            #expect(refused.status != 0 && refused.stderr.contains(#"unable to upgrade connection: container not found ("c")"#), "\(refused.stderr)")

            // Every pod deleted: nothing of them is left on the node.
            let deleted = try await c.kubectl(["delete", "pods", "--all", "--wait=true"], timeout: .seconds(90))
            let remaining = (try? await c.kubectl("get", "pods", "-o", "wide"))?.stdout ?? ""
            #expect(deleted.status == 0, "\(deleted)\npods left:\n\(remaining)\n\(node.kubelet.output.suffix(3000))")
            #expect(await waitUntil(timeout: .seconds(30)) {
                let left = node.leftovers()
                return left.mounts.isEmpty && left.cgroups.isEmpty && left.shims == 0
            }, "left behind: \(node.leftovers())")
        }
    }

    @Test("a kubelet killed with SIGKILL and started again adopts its pods and keeps their mounts; two kubelets never touch each other's volumes")
    func restartAndTwoNodes() async throws {
        try await withCluster(scheduler: true) { c in
            let first = try await c.startNode()
            let second = try await c.startNode()
            try await c.createDefaultStorageClass()
            let manifest = [first, second].map { node in
                """
                apiVersion: v1
                kind: PersistentVolumeClaim
                metadata: {name: data-\(node.index)}
                spec:
                  accessModes: [ReadWriteOnce]
                  resources: {requests: {storage: 16Mi}}
                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: app-\(node.index)}
                spec:
                  nodeSelector: {kubernetes.io/hostname: \(node.name)}
                  terminationGracePeriodSeconds: 1
                  containers:
                  - name: c
                    image: busybox
                    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do date >> /data/log; sleep 0.2; done"]
                    volumeMounts: [{name: d, mountPath: /data}]
                  volumes:
                  - {name: d, persistentVolumeClaim: {claimName: data-\(node.index)}}
                """
            }.joined(separator: "\n---\n")
            try await c.apply(manifest + """

                ---
                apiVersion: v1
                kind: Pod
                metadata: {name: done}
                spec:
                  nodeName: \(first.name)
                  restartPolicy: Never
                  containers:
                  - {name: c, image: busybox, command: ["sh", "-c", "exit 3"]}
                """)
            try await c.waitForPod("done", "Failed") { $0.status.phase == "Failed" }
            let before = try await c.waitForPod("app-1", "Running", timeout: .seconds(90)) { $0.isRunning("c") && $0.isReady }
            try await c.waitForPod("app-2", "Running", timeout: .seconds(90)) { $0.isRunning("c") && $0.isReady }
            let mountsBefore = first.leftovers().mounts
            #expect(!mountsBefore.isEmpty)
            #expect(mountsBefore.allSatisfy { !$0.hasPrefix(second.root) })

            await first.kubelet.kill9()
            try first.restartKubelet()
            try await c.waitForNodeReady(first)
            try await Task.sleep(for: .seconds(3))   // a few passes of the restarted kubelet's workers
            let after = try await c.waitForPod("app-1", "running again") { $0.isRunning("c") && $0.isReady }
            #expect(after.containerID("c") == before.containerID("c"), "the running container was adopted, not restarted")
            #expect(after.restartCount("c") == 0)
            #expect(first.leftovers().mounts == mountsBefore)
            // A pod that ended before the restart keeps the status it ended with.
            let done = try await c.pod("done")
            #expect(done.status.phase == "Failed")
            #expect(done.containerStatus("c")?["state"]?["terminated"]?["exitCode"]?.int64Value == 3, "\(done.status.containerStatuses ?? [])")
            let exec = try await c.kubectl("exec", "app-1", "--", "sh", "-c", "test -s /data/log && echo ok")
            #expect(exec.stdout == "ok\n", "\(exec)")

            // The first node's pod goes; the second node's pod and mounts stay as they were.
            let secondMounts = second.leftovers().mounts
            #expect(try await c.kubectl(["delete", "pod", "app-1", "--wait=true"], timeout: .seconds(60)).status == 0)
            #expect(await waitUntil(timeout: .seconds(30)) { first.leftovers().mounts.isEmpty })
            #expect(second.leftovers().mounts == secondMounts)
            let app2 = try await c.pod("app-2")
            #expect(app2.isRunning("c") && app2.restartCount("c") == 0)
            #expect(!second.kubelet.output.contains("unstaged volume"), "the second kubelet unstaged a volume")
        }
    }
}
