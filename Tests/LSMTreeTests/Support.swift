import Foundation
import Testing
@testable import LSMTree
import Primitives

/// A temporary directory removed when the value is dropped, even if a test fails.
final class TempDir {
    let path: String

    init(_ name: String = "lsm") {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/ballast-test-\(name)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) -> String { path + "/" + name }

    func files(withSuffix suffix: String, in dir: String? = nil) -> [String] {
        let d = dir ?? path
        return ((try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [])
            .filter { $0.hasSuffix(suffix) }.sorted().map { d + "/" + $0 }
    }
}

/// Options small enough that a few thousand keys exercise flushes, many
/// levels and compactions.
func tinyOptions() -> LSMOptions {
    var o = LSMOptions()
    o.writeBufferSize = 32 << 10
    o.blockSize = 512
    o.blockRestartInterval = 4
    o.levelBaseBytes = 64 << 10
    o.targetFileSize = 16 << 10
    o.level0CompactionTrigger = 2
    o.level0SlowdownTrigger = 6
    o.level0StopTrigger = 10
    o.blockCacheCapacity = 64 << 10
    o.maxOpenTables = 16
    o.syncMode = .none
    return o
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func string(_ b: [UInt8]?) -> String? { b.map { String(decoding: $0, as: UTF8.self) } }

extension LSMTree {
    /// All key/value pairs in the range, as strings.
    func scan(from: String? = nil, to: String? = nil, reverse: Bool = false, snapshot: Snapshot? = nil) throws -> [(String, String)] {
        let it = try makeIterator(from: from.map(bytes), to: to.map(bytes), reverse: reverse, snapshot: snapshot)
        var out: [(String, String)] = []
        while let (k, v) = try it.next() { out.append((string(k)!, string(v)!)) }
        return out
    }
}

// MARK: File helpers for damage tests

func readBytes(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

func writeBytes(_ b: [UInt8], to path: String) {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(b)), "cannot write \(path)")
}

/// XORs one byte of the file with `mask`.
func flipByte(in path: String, at offset: Int, mask: UInt8 = 0x5A) {
    var b = readBytes(path)
    precondition(offset < b.count, "offset \(offset) is past the end of \(path) (\(b.count) bytes)")
    b[offset] ^= mask
    writeBytes(b, to: path)
}

func truncateFile(_ path: String, to size: Int) {
    let b = readBytes(path)
    precondition(size <= b.count)
    writeBytes(Array(b[0..<size]), to: path)
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
}

/// Every regular file in `dir` with its contents, to check that an operation modified nothing.
func directoryContents(_ dir: String) -> [String: [UInt8]] {
    var out: [String: [UInt8]] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        out[name] = readBytes(dir + "/" + name)
    }
    return out
}

/// Runs `body`, which must throw an `LSMError`; returns it (nil, with a recorded issue, otherwise).
@discardableResult
func expectLSMError<T>(_ code: LSMError.Code, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> T) -> LSMError? {
    do {
        _ = try body()
        Issue.record("expected an LSMError \(code) but nothing was thrown \(what)", sourceLocation: sourceLocation)
        return nil
    } catch let e as LSMError {
        if e.code != code {
            Issue.record("expected an LSMError \(code), got \(e.code): \(e) \(what)", sourceLocation: sourceLocation)
        }
        return e
    } catch {
        Issue.record("expected an LSMError \(code), got \(error) \(what)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Records an issue naming every file of `dir` that was created, removed or changed since `before`.
func expectUnchanged(_ dir: String, since before: [String: [UInt8]], sourceLocation: SourceLocation = #_sourceLocation) {
    let after = directoryContents(dir)
    let created = Set(after.keys).subtracting(before.keys).sorted()
    let removed = Set(before.keys).subtracting(after.keys).sorted()
    let changed = before.keys.filter { after[$0] != nil && after[$0] != before[$0] }.sorted()
    #expect(created.isEmpty, "files created: \(created)", sourceLocation: sourceLocation)
    #expect(removed.isEmpty, "files removed: \(removed)", sourceLocation: sourceLocation)
    #expect(changed.isEmpty, "files changed: \(changed)", sourceLocation: sourceLocation)
}
