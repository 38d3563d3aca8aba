// ChildProcess and SystemCommand against real processes: argv without a shell, environment and
// working directory, output streamed while the child runs (far beyond a pipe's 64 KiB), input,
// files, new sessions, signals, graceful termination with escalation, cancellation, and waits
// that never hold a thread of the cooperative pool. Every test stops what it started.
import Foundation
import HostSystem
import Testing

/// Runs `body` with `child`, and stops the child (and its group) however `body` ends.
func withChild<T>(_ child: ChildProcess, _ body: (ChildProcess) async throws -> T) async throws -> T {
    do {
        let result = try await body(child)
        await child.terminate(grace: .seconds(1))
        return result
    } catch {
        await child.terminate(grace: .seconds(1))
        throw error
    }
}

/// Field `index` (1-based, as proc(5) numbers them) of /proc/<pid>/stat.
func procStat(_ pid: pid_t, field index: Int) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    // Fields after the command name (2), which may hold spaces, start at 3.
    let rest = text[text.index(after: close)...].split(separator: " ")
    return index >= 3 && index - 3 < rest.count ? Int(rest[index - 3]) : nil
}

func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.path + "/hostsystem-" + UUID().uuidString.prefix(8)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite(.timeLimit(.minutes(1))) struct ChildProcessTests {
    @Test func argvReachesTheChildUnchangedWithoutAShell() async throws {
        let child = try ChildProcess(["/bin/echo", "a  b", "$HOME", "*", "; ls"], standardOutput: .stream)
        let output = try await child.standardOutput!.collect(upTo: 1000)
        #expect(try await child.wait() == .exited(0))
        #expect(output.text == "a  b $HOME * ; ls\n")
    }

    @Test func exitStatusEnvironmentAndWorkingDirectory() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try ChildProcess(["sh", "-c", "pwd; echo \"$FOO:$HOME\"; exit 3"], environment: ["FOO": "bar", "PATH": "/usr/bin:/bin"],
                                     workingDirectory: directory, standardOutput: .stream)
        let output = try await child.standardOutput!.collect(upTo: 1000)
        #expect(try await child.wait() == .exited(3))
        #expect(output.text == "\(directory)\nbar:\n")
        #expect(child.termination?.shellStatus == 3)
    }

    @Test func failuresToStartNameWhatIsMissing() async throws {
        #expect(throws: HostSystemError.self) { _ = try ChildProcess(["no-such-tool-anywhere"]) }
        do {
            _ = try ChildProcess(["/bin/true"], standardOutput: .file("/nonexistent-dir/out.log"))
            Issue.record("a missing log directory was accepted")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message.contains("/nonexistent-dir/out.log"))
        }
        #expect(throws: HostSystemError.self) { _ = try ChildProcess(["/bin/true"], workingDirectory: "/nonexistent-dir") }
        #expect(throws: HostSystemError.self) { _ = try ChildProcess([]) }
    }

    /// The old SystemCommand read its pipes after the tool exited: a tool printing more than a
    /// pipe holds (64 KiB) waited forever. Both outputs at once, well beyond that.
    @Test func outputsBeyondAPipeBufferAreReadWhileTheToolRuns() async throws {
        let result = try await SystemCommand.run(["sh", "-c", "head -c 300000 /dev/zero >&2; head -c 1000000 /dev/zero | tr '\\0' x"],
                                                 timeout: .seconds(30), outputLimit: 2 << 20)
        #expect(result.status == 0)
        #expect(result.stdout.utf8.count == 1_000_000 && result.stdout.allSatisfy { $0 == "x" })
        #expect(result.stderr.utf8.count == 300_000)
        #expect(!result.truncated)
    }

    @Test func outputBeyondTheLimitIsDiscardedNotBlocked() async throws {
        let result = try await SystemCommand.run(["head", "-c", "5000000", "/dev/zero"], timeout: .seconds(30), outputLimit: 1000)
        #expect(result.status == 0)
        #expect(result.stdout.utf8.count == 1000)
        #expect(result.truncated)
    }

    @Test func streamsLinesWhileTheChildRuns() async throws {
        let child = try ChildProcess(["sh", "-c", "echo ready; echo second; exec sleep 30"], standardOutput: .stream)
        try await withChild(child) { child in
            var lines = child.standardOutput!.lines.makeAsyncIterator()
            let first = try await lines.next(), second = try await lines.next()
            #expect(first == "ready" && second == "second")
            #expect(child.termination == nil, "it is still running")
            let start = ContinuousClock.now
            #expect(await child.terminate(grace: .seconds(5)) == .signaled(SIGTERM))
            #expect(ContinuousClock.now - start < .seconds(3))
            let end = try await lines.next()
            #expect(end == nil, "end of file once it is gone")
        }
    }

    /// `close()` from another task while a reader waits for output: the read ends (nil), and
    /// the closed number, which the next pipe opened is likely to get, carries no stale wait —
    /// a wait left on it would reach the new pipe's reader, or trip the reactor's one wait per
    /// descriptor (a process-ending precondition).
    @Test func closingAnOutputThatIsReadEndsTheReadAndLeavesItsNumberClean() async throws {
        for _ in 0..<20 {
            let child = try ChildProcess(["sleep", "30"], standardOutput: .stream)
            try await withChild(child) { child in
                let output = child.standardOutput!
                let reader = Task { try await output.collect(upTo: 100) }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...5)))
                output.close()
                let read = try await reader.value
                #expect(read.bytes.isEmpty)
                // New pipes now, read to the end while nothing else touches them.
                let echo = try ChildProcess(["echo", "after"], standardOutput: .stream)
                #expect(try await echo.standardOutput!.collect(upTo: 100).text == "after\n")
                #expect(try await echo.wait() == .exited(0))
            }
        }
    }

    @Test func inputIsWrittenWhileTheOutputIsRead() async throws {
        let bytes = (0..<400_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let child = try ChildProcess(["cat"], standardInput: .bytes(bytes), standardOutput: .stream)
        let output = try await child.standardOutput!.collect(upTo: 1 << 20)
        #expect(try await child.wait() == .exited(0))
        #expect(output.bytes == bytes)

        let piped = try ChildProcess(["tr", "a-z", "A-Z"], standardInput: .pipe, standardOutput: .stream)
        try await piped.standardInput!.write("hello ")
        try await piped.standardInput!.write("world")
        piped.standardInput!.close()
        #expect(try await piped.standardOutput!.collect(upTo: 100).text == "HELLO WORLD")
        #expect(try await piped.wait() == .exited(0))
    }

    @Test func outputsGoToFilesWithPrivateMode() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/child.log"
        for round in 1...2 {
            let child = try ChildProcess(["sh", "-c", "echo out \(round); echo err \(round) >&2"],
                                         standardOutput: .file(log), standardError: .sameAsOutput)
            #expect(try await child.wait() == .exited(0))
        }
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "out 1\nerr 1\nout 2\nerr 2\n", "appended, stderr with stdout")
        let mode = try FileManager.default.attributesOfItem(atPath: log)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let truncating = try ChildProcess(["echo", "fresh"], standardOutput: .file(log, append: false))
        try await truncating.wait()
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "fresh\n")
    }

    @Test func aNewSessionLeadsItsGroupAndTerminateReachesIt() async throws {
        // The shell ignores SIGTERM and starts a grandchild: only SIGKILL to the whole group
        // stops both.
        let child = try ChildProcess(["sh", "-c", "trap '' TERM; sleep 30 & echo $!; wait"], newSession: true, standardOutput: .stream)
        try await withChild(child) { child in
            var lines = child.standardOutput!.lines.makeAsyncIterator()
            let grandchild = try #require(try await lines.next().flatMap { pid_t($0) })
            #expect(procStat(child.pid, field: 6) == Int(child.pid), "the child leads its session")
            #expect(procStat(child.pid, field: 5) == Int(child.pid), "and its process group")
            #expect(procStat(grandchild, field: 5) == Int(child.pid), "the grandchild is in its group")
            let start = ContinuousClock.now
            #expect(await child.terminate(grace: .milliseconds(300)) == .signaled(SIGKILL))
            #expect(ContinuousClock.now - start < .seconds(5))
            // The grandchild is gone too (it may linger as a zombie of init for a moment).
            let deadline = ContinuousClock.now + .seconds(5)
            while kill(grandchild, 0) == 0, procStat(grandchild, field: 5) == Int(child.pid), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(kill(-child.pid, 0) != 0, "no process of the group is left")
        }
        // The shell ends at SIGTERM; the grandchild it leaves ignores it, and is killed with the
        // group when the shell is reaped.
        let leaving = try ChildProcess(["sh", "-c", "(trap '' TERM; exec sleep 30) & echo $!; wait"], newSession: true, standardOutput: .stream)
        try await withChild(leaving) { child in
            var lines = child.standardOutput!.lines.makeAsyncIterator()
            let grandchild = try #require(try await lines.next().flatMap { pid_t($0) })
            #expect(await child.terminate(grace: .seconds(5)) == .signaled(SIGTERM))
            let deadline = ContinuousClock.now + .seconds(5)
            while kill(grandchild, 0) == 0, procStat(grandchild, field: 5) == Int(child.pid), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(kill(-child.pid, 0) != 0, "the grandchild the leader left is gone")
        }
        let plain = try ChildProcess(["sleep", "30"])
        try await withChild(plain) { plain in
            #expect(procStat(plain.pid, field: 6) == procStat(getpid(), field: 6), "without newSession it stays in ours")
            #expect(throws: HostSystemError.self) { try plain.signal(SIGTERM, toGroup: true) }
        }
    }

    @Test func signalsAreDeliveredAndNeverAfterTheEnd() async throws {
        let child = try ChildProcess(["sleep", "30"])
        try child.signal(SIGUSR1)
        #expect(try await child.wait() == .signaled(SIGUSR1))
        try child.signal(SIGKILL)  // reaped already: nothing, and no error
        #expect(child.termination == .signaled(SIGUSR1))
    }

    /// Descriptor numbers are recycled at once under churn: a pidfd or pipe closed while
    /// epoll_wait was returning its event gets reused by the next child. No wait may be resumed
    /// by another's event — a long-running child stays unreaped, and every short one reports
    /// its own status and output.
    @Test func manyChildrenAtOnceEachGetTheirOwnEnd() async throws {
        let long = try ChildProcess(["sleep", "30"])
        try await withChild(long) { long in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<4 {
                    for index in 0..<40 {
                        group.addTask {
                            let code = Int32((round * 40 + index) % 100)
                            let child = try ChildProcess(["sh", "-c", "echo \(code); exit \(code)"], standardOutput: .stream)
                            let output = try await child.standardOutput!.collect(upTo: 64)
                            #expect(String(decoding: output.bytes, as: UTF8.self) == "\(code)\n")
                            #expect(try await child.wait() == .exited(code))
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(long.termination == nil, "the long-running child was not reaped by another's event")
        }
    }

    @Test func cancellingAWaitLeavesTheChildRunning() async throws {
        let child = try ChildProcess(["sleep", "30"])
        try await withChild(child) { child in
            let waiting = Task { try await child.wait() }
            try await Task.sleep(for: .milliseconds(100))
            waiting.cancel()
            await #expect(throws: CancellationError.self) { try await waiting.value }
            #expect(child.termination == nil)
            #expect(await child.wait(timeout: .milliseconds(100)) == nil)
        }
    }

    @Test func timedOutCommandsAreKilledAndSaySo() async throws {
        let start = ContinuousClock.now
        do {
            _ = try await SystemCommand.run(["sleep", "30"], timeout: .milliseconds(300))
            Issue.record("a 30 s sleep finished within 300 ms")
        } catch let error as CommandError {
            #expect(error.timedOut == .milliseconds(300))
            #expect(error.description.contains("did not finish within"))
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// A tool that leaves a daemon holding its stdout: the command ends with the tool, with
    /// what it printed, instead of waiting for the daemon to close the pipe.
    @Test func aDaemonHoldingThePipesDoesNotHoldTheCommand() async throws {
        let start = ContinuousClock.now
        let result = try await SystemCommand.run(["sh", "-c", "sleep 30 & echo $!"], timeout: .seconds(20))
        let daemon = try #require(pid_t(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(daemon, SIGKILL)
        #expect(result.status == 0)
        #expect(ContinuousClock.now - start < .seconds(5), "took \(ContinuousClock.now - start)")
    }

    @Test func childrenInheritNoDescriptorButTheStandardOnes() async throws {
        // A long-running child with pipes open in this process must not lend them to the next.
        let holder = try ChildProcess(["sleep", "30"], standardInput: .pipe, standardOutput: .stream, standardError: .stream)
        try await withChild(holder) { _ in
            let result = try await SystemCommand.run(["ls", "/proc/self/fd"])
            let fds = result.stdout.split(separator: "\n").compactMap { Int($0) }.filter { $0 > 2 }
            #expect(fds.count <= 1, "only ls's own directory descriptor above 2: \(fds)")
        }
    }

    /// Sixteen children awaited at once, each for a second: waits hold no thread of the
    /// cooperative pool (two threads on a two-core machine), or this would take eight seconds
    /// and the ticker below would stall.
    @Test func waitsDoNotHoldThreadsOfTheCooperativePool() async throws {
        let children = try (0..<16).map { _ in try ChildProcess(["sleep", "1"]) }
        let start = ContinuousClock.now
        let ticks = Task {
            var count = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
                count += 1
            }
            return count
        }
        let terminations = try await withThrowingTaskGroup(of: ChildProcess.Termination.self) { group in
            for child in children { group.addTask { try await child.wait() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        ticks.cancel()
        let elapsed = ContinuousClock.now - start
        #expect(terminations.allSatisfy { $0 == .exited(0) })
        #expect(elapsed < .seconds(4), "16 one-second children awaited together took \(elapsed)")
        #expect(await ticks.value > 20, "the pool kept running other tasks meanwhile")
    }
}
