// `ballast debug lsm-crash-writer`: the child process of the engine's crash
// test (Tests/LSMTreeTests/CrashTests.swift). Hidden from help: it exists so
// that a test can SIGKILL a real writer at a random moment.
import ArgumentParser
import Foundation
import LSMTree

struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Helpers for Ballast's own tests.",
        shouldDisplay: false,
        subcommands: [LSMCrashWriterCommand.self]
    )
}

/// Writes with `sync always` from several threads and reports every
/// acknowledged write on stdout, one line per write, written with a single
/// write(2) so that lines never interleave:
///
///     P <key>   a put of <key> was acknowledged (its value is crashValue(key))
///     X <key>   a delete of <key> is about to be issued
///     D <key>   that delete was acknowledged
struct LSMCrashWriterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lsm-crash-writer")

    @Option(help: "Store directory.") var dir: String
    @Option(help: "Prefix of every key this run writes (unique per run).") var prefix: String
    @Option(help: "Writer threads.") var threads: Int = 4
    @Option(help: "Seed for the value sizes and the choice of deletes.") var seed: UInt64 = 1

    func run() throws {
        var options = LSMOptions()
        options.syncMode = .always
        options.writeBufferSize = 64 << 10
        options.blockSize = 1024
        options.levelBaseBytes = 256 << 10
        options.targetFileSize = 64 << 10
        options.level0CompactionTrigger = 2
        let tree = try LSMTree.open(path: dir, options: options)
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let prefix = "\(self.prefix)-t\(t)"
            let seed = self.seed &+ UInt64(t) &* 7919
            Thread.detachNewThread {
                defer { group.leave() }
                var rng = seed | 1
                var written: [String] = []
                var i = 0
                while true {
                    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
                    do {
                        if rng % 5 == 0, !written.isEmpty {
                            let key = written.remove(at: Int(rng >> 8) % written.count)
                            report("X \(key)\n")
                            try tree.delete(Array(key.utf8))
                            report("D \(key)\n")
                        } else {
                            let key = "\(prefix)-\(i)"
                            i += 1
                            var batch = WriteBatch()
                            batch.put(Array(key.utf8), crashValue(key))
                            try tree.write(batch)
                            written.append(key)
                            report("P \(key)\n")
                        }
                    } catch {
                        report("E \(error)\n")
                        return
                    }
                }
            }
        }
        group.wait()
    }
}

/// The value the crash writer stores under `key`: its bytes repeated to a
/// length derived from the key, so a reader can check it without a log.
func crashValue(_ key: String) -> [UInt8] {
    let k = Array(key.utf8)
    let n = 20 + Int(k.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF } % 400)
    return (0..<n).map { k[$0 % k.count] }
}

private func report(_ line: String) {
    var bytes = Array(line.utf8)
    bytes.withUnsafeMutableBytes { _ = Foundation.write(1, $0.baseAddress!, $0.count) }
}
