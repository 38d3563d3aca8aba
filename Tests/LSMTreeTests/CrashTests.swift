import Foundation
import Testing
import TestSupport
@testable import LSMTree
import Primitives

/// SIGKILLs a real writer process (`ballast debug lsm-crash-writer`, writing
/// with sync always from 4 threads) at random moments, reopens the store and
/// checks that every acknowledged write survived and nothing else changed.
/// BALLAST_CRASH_CYCLES sets the number of cycles (default 12).
@Suite struct CrashTests {
    /// Same derivation as the writer's `crashValue`.
    static func expectedValue(_ key: String) -> [UInt8] {
        let k = Array(key.utf8)
        let n = 20 + Int(k.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xFFFF } % 400)
        return (0..<n).map { k[$0 % k.count] }
    }

    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        let binary = ballastBinary()
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "the crash test needs the ballast binary at \(binary): run `swift build --build-tests` first (make test does)")
        let cycles = Int(ProcessInfo.processInfo.environment["BALLAST_CRASH_CYCLES"] ?? "") ?? 12
        let dir = TempDir("crash")
        let store = dir.sub("store")
        var rng = SplitMix64(seed: 0xC0FFEE)
        var puts = Set<String>()      // acknowledged puts
        var deleting = Set<String>()  // delete issued, not acknowledged
        var deleted = Set<String>()   // acknowledged deletes
        var totalAcks = 0
        for cycle in 0..<cycles {
            let child = try ChildProcess([binary, "debug", "lsm-crash-writer", "--dir", store, "--prefix", "c\(cycle)",
                                          "--threads", "4", "--seed", String(cycle + 1)],
                                         standardOutput: .stream, standardError: .inherit)
            // Its acknowledgements are read while it writes (a full pipe would stall it).
            let acknowledged = Task { try await child.standardOutput!.collect(upTo: 64 << 20) }
            // Let it write for a random while, then kill it mid-flight.
            try await Task.sleep(for: .microseconds(80_000 + Int(rng.next() % 400_000)))
            try child.signal(SIGKILL)
            try await child.wait()
            let data = try await acknowledged.value.bytes
            child.standardOutput!.close()
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { continue }
                let key = String(parts[1])
                switch parts[0] {
                case "P": puts.insert(key); totalAcks += 1
                case "X": deleting.insert(key)
                case "D": deleting.remove(key); deleted.insert(key); puts.remove(key); totalAcks += 1
                case "E": Issue.record("writer failed in cycle \(cycle): \(key)")
                default: break
                }
            }
            // Reopen in this process and check every acknowledged write.
            let db = try LSMTree.open(path: store, options: LSMOptions())
            var present = Set<String>()
            let it = try db.makeIterator()
            while let (k, v) = try it.next() {
                let key = String(decoding: k, as: UTF8.self)
                #expect(v == Self.expectedValue(key), "cycle \(cycle): \(key) has a wrong value")
                present.insert(key)
            }
            for key in puts where !deleting.contains(key) {
                #expect(present.contains(key), "cycle \(cycle): acknowledged put of \(key) was lost")
            }
            for key in deleted {
                #expect(!present.contains(key), "cycle \(cycle): acknowledged delete of \(key) was lost")
            }
            // Point reads agree with the scan.
            for key in puts.prefix(200) {
                #expect((try db.get(Array(key.utf8)) != nil) == present.contains(key))
            }
            // Resolve in-flight deletes by what survived, so the next cycle's checks are exact.
            for key in deleting {
                if present.contains(key) { puts.insert(key) } else { puts.remove(key); deleted.insert(key) }
            }
            deleting.removeAll()
            try db.close()
        }
        print("crash test: \(cycles) SIGKILL cycles, \(totalAcks) acknowledged writes checked")
        #expect(totalAcks > cycles * 10, "the writer acknowledged too few writes to test anything")
    }
}
