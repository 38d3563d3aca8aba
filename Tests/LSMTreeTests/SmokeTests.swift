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
