import Testing
import TestSupport
@testable import LSMTree
import Primitives

@Suite struct CompressionTests {
    /// Writes 20k entries (16-byte keys, 100-byte values: 50 random bytes then 50 zeros), compacts
    /// everything, and returns (sum of .sst sizes) / (raw key + value bytes).
    func storedRatio(compression: Bool) throws -> Double {
        let dir = TempDir("compression")
        var options = tinyOptions()
        options.compression = compression
        options.writeBufferSize = 4 << 20
        options.blockSize = 4096
        options.targetFileSize = 1 << 20
        options.levelBaseBytes = 16 << 20
        let db = try LSMTree.open(path: dir.path, options: options)
        var rng = SplitMix64(seed: 2024)
        let count = 20_000
        var raw = 0
        var batch = WriteBatch()
        for i in 0..<count {
            let key = bytes(String(format: "key-%012d", i * 7919 % 1_000_003))
            precondition(key.count == 16)
            var value = [UInt8](repeating: 0, count: 100)
            for j in 0..<50 { value[j] = UInt8(truncatingIfNeeded: rng.next()) }
            batch.put(key, value)
            raw += key.count + value.count
            if batch.count == 500 { try db.write(batch); batch = WriteBatch() }
        }
        try db.write(batch)
        try db.compactRange()
        let tables = dir.files(withSuffix: ".sst")
        let stored = tables.reduce(0) { $0 + fileSize($1) }
        let stats = db.statistics
        #expect(stats.levels[0].files == 0)
        #expect(try db.scan().count == count)
        try db.close()
        let ratio = Double(stored) / Double(raw)
        print("compression \(compression ? "on" : "off"): \(tables.count) tables, \(stored) B stored for \(raw) B of keys and values: ratio \(ratio)")
        return ratio
    }

    @Test func lz4ShrinksHalfZeroValues() async throws {
        try await onOwnThread {
            let ratio = try storedRatio(compression: true)
            #expect(ratio <= 0.60)
        }
    }

    @Test func withoutCompressionTablesKeepTheirSize() async throws {
        try await onOwnThread {
            let ratio = try storedRatio(compression: false)
            #expect(ratio > 0.90)
        }
    }
}
