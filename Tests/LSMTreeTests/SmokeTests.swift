import Foundation
import Testing
@testable import LSMTree

@Suite struct SmokeTests {
    @Test func putGetDeleteAcrossFlushAndReopen() throws {
        let dir = TempDir()
        do {
            let db = try LSMTree.open(path: dir.path, options: tinyOptions())
            for i in 0..<2000 {
                try db.put(bytes("key\(i)"), bytes("value\(i)"))
            }
            for i in stride(from: 0, to: 2000, by: 3) { try db.delete(bytes("key\(i)")) }
            #expect(string(try db.get(bytes("key1"))) == "value1")
            #expect(try db.get(bytes("key3")) == nil)
            try db.flush()
            try db.waitForCompactions()
            #expect(string(try db.get(bytes("key1999"))) == "value1999")
            #expect(try db.get(bytes("key999")) == nil)
            let all = try db.scan()
            #expect(all.count == 2000 - 667)
            let rev = try db.scan(reverse: true)
            #expect(rev.map(\.0) == all.map(\.0).reversed())
            try db.close()
        }
        let db = try LSMTree.open(path: dir.path, options: tinyOptions())
        #expect(string(try db.get(bytes("key1"))) == "value1")
        #expect(try db.get(bytes("key3")) == nil)
        #expect(try db.scan().count == 2000 - 667)
        try db.compactRange()
        #expect(try db.scan().count == 2000 - 667)
        let stats = db.statistics
        #expect(stats.levels[0].files == 0)
        try db.close()
    }
}

@Suite struct ResourceTests {
    /// Open file descriptors of this process on files under `directory` (other tests running
    /// in parallel open files and sockets of their own; only ours count).
    static func openFiles(under directory: String) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.compactMap { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)).flatMap { $0.hasPrefix(directory) ? $0 : nil }
        }
    }

    /// Closing a store releases its table cache: no open table file outlives it
    /// (the LRU list once held its entries in retain cycles).
    @Test func closingReleasesOpenTables() throws {
        let dir = TempDir("fds")
        // Twenty level-0 tables (no compaction), so the table cache's shards hold several each.
        var options = tinyOptions()
        options.level0CompactionTrigger = 100
        options.level0SlowdownTrigger = 200
        options.level0StopTrigger = 300
        options.maxOpenTables = 64
        do {
            let db = try LSMTree.open(path: dir.path, options: options)
            for i in 0..<3000 {
                try db.put(bytes("k\(i)"), bytes("v\(i)"))
                if i % 150 == 149 { try db.flush() }
            }
            #expect(db.statistics.levels[0].files >= 20)
            try db.close()
        }
        #expect(Self.openFiles(under: dir.path) == [])
        for _ in 0..<5 {
            let db = try LSMTree.open(path: dir.path, options: options)
            #expect(try db.scan().count == 3000)  // opens every table
            try db.close()
        }
        #expect(Self.openFiles(under: dir.path) == [], "table files stay open after close")
    }
}
