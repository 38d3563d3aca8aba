// `ballast bench kubelet`, interrupted: Ctrl-C (SIGINT) while pods with fresh PVCs are being
// started must leave nothing behind — no mount, loop device, process or cgroup of the run.
// Not a benchmark: nothing here is timed; it runs the built binary with 2 + 3 pods.
import Foundation
import HostSystem
import Kubelet
import Testing
import TestSupport

/// What `bench kubelet` needs beyond the runtime tests: loop devices and mkfs.ext4.
let benchKubeletAvailable: Bool = {
    guard runtimeAvailable else { return false }
    let missing = ["/dev/loop-control", SystemCommand.resolve("mkfs.ext4"), SystemCommand.resolve("losetup")]
        .filter { !FileManager.default.fileExists(atPath: $0) }
    if !missing.isEmpty {
        FileHandle.standardError.write(Data("""
            ************************************************************************
            SKIPPING the bench kubelet test: missing \(missing.joined(separator: ", ")).
            ************************************************************************

            """.utf8))
    }
    return missing.isEmpty
}()

@Suite("bench kubelet", .enabled(if: benchKubeletAvailable))
struct BenchKubeletTests {
    @Test("Ctrl-C during the PVC phase removes every mount, loop device, process and cgroup of the run",
          .timeLimit(.minutes(5)))
    func interruptedRunLeavesNothing() async throws {
        let root = "/tmp/bkb-" + UUID().uuidString.prefix(8).lowercased()
        let cgroups = Cgroups.detect()
        let before = Set(cgroups.directories(of: "/ballast").flatMap { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] })
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bench = try ChildProcess([ballastBinary(), "bench", "kubelet", "--pods", "2", "--volume-pods", "3", "--dir", root],
                                     newSession: true, standardOutput: .discard, standardError: .stream)
        var sawPhase = false
        var transcript: [String] = []
        for try await line in bench.standardError!.lines {
            transcript.append(line)
            if line.contains("with a fresh PVC each") {
                sawPhase = true
                break
            }
        }
        let draining = Task { for try await line in bench.standardError!.lines { _ = line } }
        defer { draining.cancel() }
        #expect(sawPhase, "the run ended before its PVC phase: \(transcript.suffix(20).joined(separator: "\n"))")
        try await Task.sleep(for: .milliseconds(500))
        try bench.signal(SIGINT)
        let ended = await bench.wait(timeout: .seconds(240))
        if ended == nil { try? bench.signal(SIGKILL, toGroup: true) }
        // 130: interrupted; 0 when the phase had ended already (the teardown is not interrupted).
        #expect(ended == .exited(130) || ended == .exited(0), "bench kubelet ended \(ended.map { "\($0)" } ?? "not at all in 240 s")")

        let mounts = Mounts.current().filter { $0.mountPoint.hasPrefix(root + "/") }.map(\.mountPoint)
        #expect(mounts.isEmpty, "mounts left behind: \(mounts)")
        let loops = LoopDevices.all().filter { LoopDevices.backingFile(of: $0)?.hasPrefix(root + "/") == true }
        #expect(loops.isEmpty, "loop devices left behind: \(loops)")
        let processes = ProcessTable.pids { $0.contains { $0.contains(root + "/") } }
        #expect(processes.isEmpty, "processes left behind: \(processes)")
        let after = Set(cgroups.directories(of: "/ballast").flatMap { (try? FileManager.default.contentsOfDirectory(atPath: $0)) ?? [] })
        let left = after.subtracting(before).filter { $0.hasPrefix("kbench-") }
        #expect(left.isEmpty, "cgroups left behind under /ballast: \(left.sorted())")
    }
}
