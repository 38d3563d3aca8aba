// The OCI runtime driver with the real runc, busybox built from busybox-static, overlayfs roots
// and the shim: exit codes, CRI logs, limits (OOM), stop with a grace period, exec, and a
// restarted driver adopting a running container.
import Foundation
import HostSystem
import Kubelet
import Logging
import Testing
import TestSupport

@Suite("OCI runtime", .enabled(if: runtimeAvailable))
struct RuntimeTests {
    @Test("a busybox container's exit code and its output in the CRI log", arguments: ["runc", "crun"])
    func exitCodeAndLogs(runtime: String) async throws {
        guard FileManager.default.isExecutableFile(atPath: SystemCommand.resolve(runtime)) else {
            FileHandle.standardError.write(Data("SKIPPING the \(runtime) case: \(runtime) is not installed (make deps)\n".utf8))
            return
        }
        if runtime == "crun" && Cgroups.detect().isHybrid {
            // crun refuses systemd's hybrid layout: the kubelet says so at start.
            #expect(throws: KubeletError.self) { try RuntimeHarness(runtimeName: runtime) }
            FileHandle.standardError.write(Data("SKIPPING running a crun container: this machine's cgroups are hybrid, which crun refuses\n".utf8))
            return
        }
        let node = try RuntimeHarness(runtimeName: runtime)
        try await withCleanup {
            let (config, layers) = try await node.config(["sh", "-c", "echo out; echo err >&2; echo \"host=$(hostname)\"; exit 3"])
            let record = try await node.runtime.start(config, layers: layers)
            let exit = try await node.runtime.waitForExit(record.id)
            #expect(exit.exitCode == 3)
            // The runtime's messages are kept only when a runtime command failed, and runc's
            // pid file is not used: neither file is made on a start and end that went well.
            if runtime == "runc" {
                for name in ["runtime.log", "pid"] {
                    #expect(!FileManager.default.fileExists(atPath: node.runtime.directory(record.id) + "/" + name), "\(name)")
                }
            }
            #expect(exit.signal == nil)
            #expect(!exit.oomKilled)
            let log = try String(contentsOfFile: config.logPath, encoding: .utf8)
            let entries = CRILog.select(log, tailLines: nil, since: nil)
            // stdout and stderr are two pipes: their lines interleave in no fixed order.
            #expect(CRILog.render(entries.filter { $0.stream == "stdout" }, timestamps: false) == "out\nhost=pod1\n")
            #expect(CRILog.render(entries.filter { $0.stream == "stderr" }, timestamps: false) == "err\n")
            try await node.runtime.remove(record.id)
            #expect(!FileManager.default.fileExists(atPath: node.runtime.directory(record.id)))
        } cleanup: {
            await node.close()
        }
    }

    @Test("a running container's large log is rotated: the shim goes on in a new file, no line is lost, old files are removed, a follower goes on")
    func logRotation() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            // ~200 lines a second, numbered.
            let (config, layers) = try await node.config(["sh", "-c", "i=0; while true; do for j in 0 1 2 3 4 5 6 7 8 9; do echo line $i; i=$((i+1)); done; sleep 0.05; done"])
            let record = try await node.runtime.start(config, layers: layers)
            let follower = try #require(CRILogStream(path: config.logPath, from: 0, options: .init(follow: true)))
            var followed = ""
            let policy = LogRotationPolicy(maxBytes: 4096, maxFiles: 3)
            let start = Date()
            for round in 0..<4 {
                #expect(await waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
                    (try? FileManager.default.attributesOfItem(atPath: config.logPath)[.size] as? Int).map { $0 > 4096 } ?? false
                }, "round \(round): the log grows")
                followed += CRILogTailTests.drain(follower)
                #expect(node.runtime.rotateLogs(policy, now: start.addingTimeInterval(Double(round))) == [config.logPath], "round \(round)")
                #expect(node.runtime.rotateLogs(policy, now: start.addingTimeInterval(Double(round))) == [], "a new file is not rotated at once")
                // The shim reopens the path: lines go on in a new file.
                #expect(await waitUntil(timeout: .seconds(10), interval: .milliseconds(20)) {
                    (try? FileManager.default.attributesOfItem(atPath: config.logPath)[.size] as? Int).map { $0 > 0 } ?? false
                }, "round \(round): the shim writes to the path again")
            }
            followed += CRILogTailTests.drain(follower)
            let rotated = ContainerLogFiles.rotations(of: config.logPath)
            #expect(rotated.count == 2, "maxFiles 3: the current file and two rotated ones: \(rotated)")
            // The kept files and the current one, oldest first, hold consecutive lines.
            var numbers: [Int] = []
            for file in rotated + [config.logPath] {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                numbers += CRILog.select(text, tailLines: nil, since: nil).compactMap { Int($0.content.dropFirst("line ".count)) }
            }
            #expect(numbers.count > 100 && numbers == Array(numbers[0]..<(numbers[0] + numbers.count)), "lines lost at a rotation")
            // The follower read every line from the first on, across the four rotations.
            let seen = followed.split(separator: "\n").compactMap { Int($0.dropFirst("line ".count)) }
            #expect(seen.count > 300 && seen == Array(0..<seen.count), "the follower lost lines")
            let running: Bool = { if case .running = node.runtime.state(record.id) { return true } else { return false } }()
            #expect(running, "the shim lives on after SIGUSR1")
            _ = await node.runtime.stop(record.id, grace: .seconds(1))
            #expect(node.runtime.rotateLogs(policy) == [], "an ended container's log is not rotated")
        } cleanup: {
            await node.close()
        }
    }

    @Test("the pod's namespaces, made in the kubelet: the container has the pod's hostname, its own network with lo up, and the pins go with the sandbox")
    func sandboxNamespaces() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let sandbox = PodSandbox(directory: node.root + "/kubelet/pods/netpod/sandbox")
            #expect(try await sandbox.create(hostname: "netpod", nodeIP: "127.0.0.1", network: true))
            #expect(sandbox.isReady(network: true))
            var (config, layers) = try await node.config(["sh", "-c", "hostname; ip -o link show lo; ip -o addr show lo"], pod: "netpod")
            config.netNamespace = sandbox.netNamespace
            let record = try await node.runtime.start(config, layers: layers)
            let exit = try await node.runtime.waitForExit(record.id)
            #expect(exit.exitCode == 0)
            let output = CRILog.render(CRILog.select(try String(contentsOfFile: config.logPath, encoding: .utf8), tailLines: nil, since: nil),
                                       timestamps: false)
            #expect(output.hasPrefix("netpod\n"), "\(output)")
            #expect(output.contains("<LOOPBACK,UP,LOWER_UP>") && output.contains("inet 127.0.0.1/8"), "\(output)")
            #expect(!output.contains("eth0"), "a network namespace of its own: \(output)")
            try await node.runtime.remove(record.id)
            try await sandbox.remove()
            #expect(!FileManager.default.fileExists(atPath: sandbox.directory))
        } cleanup: {
            await node.close()
        }
    }

    @Test("the directories that get one directory per container are marked for spreading over ext4's block groups (chattr +T)")
    func topDirectories() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let lsattr = SystemCommand.resolve("lsattr")
            let fileSystem = try? await SystemCommand.run(["stat", "-f", "-c", "%T", node.root], timeout: .seconds(10))
            guard FileManager.default.isExecutableFile(atPath: lsattr), fileSystem?.stdout.hasPrefix("ext2/ext3") == true else {
                FileHandle.standardError.write(Data("SKIPPING the +T check: \(node.root) is not on ext4, or lsattr (e2fsprogs) is missing\n".utf8))
                return
            }
            for path in [node.runtime.containersDirectory, node.runtime.stateDirectory] {
                let result = try await SystemCommand.run([lsattr, "-d", path], timeout: .seconds(10))
                let flags = result.stdout.split(separator: " ").first ?? ""
                #expect(flags.contains("T"), "\(path): \(result.stdout)\(result.stderr)")
            }
        } cleanup: {
            await node.close()
        }
    }

    @Test("a container directory without a readable record (a machine crash before meta.json reached the disk) is removed once it is a minute old; recorded and new ones stay")
    func unrecordedDirectories() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["sleep", "30"])
            let record = try await node.runtime.start(config, layers: layers)
            let crashed = node.runtime.directory("0123456789abcdef0123456789abcdef")
            let fresh = node.runtime.directory("fedcba9876543210fedcba9876543210")
            for dir in [crashed, fresh] {
                try FileManager.default.createDirectory(atPath: dir + "/rootfs", withIntermediateDirectories: true)
                #expect(FileManager.default.createFile(atPath: dir + "/meta.json", contents: Data()))
            }
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-120)], ofItemAtPath: crashed)
            #expect(node.runtime.removeUnrecorded() == ["0123456789abcdef0123456789abcdef"])
            #expect(!FileManager.default.fileExists(atPath: crashed))
            #expect(FileManager.default.fileExists(atPath: fresh))
            #expect(node.runtime.records().map(\.id) == [record.id])
            try FileManager.default.removeItem(atPath: fresh)
            _ = await node.runtime.stop(record.id, grace: .seconds(1))
            try await node.runtime.remove(record.id)
        } cleanup: {
            await node.close()
        }
    }

    @Test("a command missing from the image is a start failure with the runtime's message")
    func missingCommand() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["/no/such/binary"])
            await #expect(throws: KubeletError.self) { try await node.runtime.start(config, layers: layers) }
            let record = try #require(node.runtime.records().first)
            guard case .exited(let exit) = node.runtime.state(record.id) else { Issue.record("not exited"); return }
            #expect(exit.exitCode == 128)
            #expect(exit.startFailure?.contains("no such file") == true || exit.startFailure?.contains("not found") == true,
                    "\(exit.startFailure ?? "")")
            // What the runtime said is kept for people: runtime.log, JSON lines with the error.
            let messages = (try? String(contentsOfFile: node.runtime.directory(record.id) + "/runtime.log", encoding: .utf8)) ?? ""
            #expect(messages.contains("\"level\":\"error\""), "\(messages)")
        } cleanup: {
            await node.close()
        }
    }

    @Test("a missing shim executable is a start failure naming the file and the build command, and makes nothing")
    func missingShim() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let missing = node.root + "/bin/" + OCIRuntime.shimName
            let runtime = try OCIRuntime(name: node.runtime.name, root: node.root + "/kubelet", nodeName: node.node, executable: ballastBinary(),
                                         shimExecutable: missing, logger: Logger(label: "test.runtime"))
            let (config, layers) = try await node.config(["true"])
            do {
                _ = try await runtime.start(config, layers: layers)
                Issue.record("started without a shim")
            } catch let error as KubeletError {
                #expect(error.message.contains(missing) && error.message.contains("swift build"), "\(error.message)")
            }
            #expect(runtime.records().isEmpty)
        } cleanup: {
            await node.close()
        }
    }

    @Test("a memory limit ends a hungry container as OOMKilled")
    func oomKilled() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
                                                         memoryLimit: 24 << 20)
            let record = try await node.runtime.start(config, layers: layers)
            let exit = try await node.runtime.waitForExit(record.id)
            #expect(exit.oomKilled, "exit \(exit)")
            #expect(exit.exitCode == 137)
        } cleanup: {
            await node.close()
        }
    }

    @Test("stop: SIGTERM, then SIGKILL after the grace period (PID 1 ignores SIGTERM without a handler)")
    func stopWithGrace() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["sleep", "1000"])
            let record = try await node.runtime.start(config, layers: layers)
            guard case .running(let running) = node.runtime.state(record.id) else { Issue.record("not running"); return }
            // `runc run --detach` returns once the container's init was told to exec, which it
            // may not have done yet: a TERM then reaches runc's init (Go), which exits with 2 as
            // PID 1 (it ignores the signal it re-raises). The test is about `sleep` as PID 1.
            let execed = await waitUntil(timeout: .seconds(10), interval: .milliseconds(10)) {
                (try? String(contentsOfFile: "/proc/\(running.pid)/comm", encoding: .utf8)) == "sleep\n"
            }
            #expect(execed, "the container's init did not become sleep")
            let started = ContinuousClock.now
            let exit = await node.runtime.stop(record.id, grace: .seconds(1))
            #expect(exit?.exitCode == 137)
            #expect(ContinuousClock.now - started >= .seconds(1))

            let (trapping, _) = try await node.config(["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"],
                                                      name: "t")
            let second = try await node.runtime.start(trapping, layers: layers)
            try await Task.sleep(for: .milliseconds(300))
            let graceful = await node.runtime.stop(second.id, grace: .seconds(10))
            #expect(graceful?.exitCode == 0)
            #expect(try String(contentsOfFile: trapping.logPath, encoding: .utf8).contains("stdout F bye"))
        } cleanup: {
            await node.close()
        }
    }

    @Test("exec runs a command in the container's namespaces and returns its status")
    func exec() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["sh", "-c", "echo hi > /tmp/mark; sleep 1000"])
            let record = try await node.runtime.start(config, layers: layers)
            try await Task.sleep(for: .milliseconds(200))
            let result = try await node.runtime.execSync(record.id, command: ["sh", "-c", "cat /tmp/mark; hostname; exit 4"],
                                                         timeout: .seconds(10))
            #expect(result.status == 4)
            #expect(result.output == "hi\npod1\n")
        } cleanup: {
            await node.close()
        }
    }

    @Test("a restarted driver adopts a running container, stops it and learns its exit")
    func adoption() async throws {
        let node = try RuntimeHarness()
        try await withCleanup {
            let (config, layers) = try await node.config(["sh", "-c", "trap 'exit 7' TERM; touch /tmp/trapped; while true; do sleep 0.1; done"])
            let record = try await node.runtime.start(config, layers: layers)
            // The TERM must find the trap set: a shell killed before it exits 2, not 7.
            var trapped = false
            for _ in 0..<100 where !trapped {
                trapped = (try? await node.runtime.execSync(record.id, command: ["test", "-e", "/tmp/trapped"], timeout: .seconds(5)))?.status == 0
                if !trapped { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(trapped, "the container's shell set its trap")
            let restarted = try node.restartedRuntime()
            #expect(restarted.records().map(\.id) == [record.id])
            guard case .running(let started) = restarted.state(record.id) else { Issue.record("adopted container not running"); return }
            #expect(started.pid > 0)
            // The shim's pid of the container is the runtime's (`runc state`).
            let state = try await SystemCommand.run([node.runtime.binary, "--root", node.runtime.stateDirectory, "state", record.id],
                                                    timeout: .seconds(10))
            let runtimePID = try JSONSerialization.jsonObject(with: Data(state.stdout.utf8)) as? [String: Any]
            #expect((runtimePID?["pid"] as? Int).map(Int32.init) == started.pid, "\(state.stdout)")
            let exit = await restarted.stop(record.id, grace: .seconds(10))
            #expect(exit?.exitCode == 7)
            try await restarted.remove(record.id)
        } cleanup: {
            await node.close()
        }
    }
}
