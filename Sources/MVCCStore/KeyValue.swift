import LSMTree
import Primitives

/// One version of a key, as etcd's `mvccpb.KeyValue`.
public struct KeyValue: Equatable, Sendable {
    public var key: [UInt8]
    /// Revision of the last creation of the key.
    public var createRevision: Int64
    /// Revision of the last modification.
    public var modRevision: Int64
    /// 1 on creation, +1 on every put; a delete resets it.
    public var version: Int64
    public var value: [UInt8]
    /// Attached lease, 0 for none.
    public var lease: Int64

    public init(key: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, value: [UInt8], lease: Int64) {
        self.key = key
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.value = value
        self.lease = lease
    }
}

public enum EventType: Sendable, Equatable {
    case put
    case delete
}

/// A change to one key, as etcd's `mvccpb.Event`. A delete's `kv` carries the
/// key and the deletion revision as `modRevision`.
public struct Event: Equatable, Sendable {
    public var type: EventType
    public var kv: KeyValue
    public var prevKV: KeyValue?

    public init(type: EventType, kv: KeyValue, prevKV: KeyValue?) {
        self.type = type
        self.kv = kv
        self.prevKV = prevKV
    }
}

// Layout of the MVCC data in the LSM tree (all integers big-endian, so byte
// order is numeric order):
//
//   "c" key                         → current record of key (live or tombstone)
//   "h" len(key) u32, key, ~rev u64 → a superseded version of key, written when
//                                     its successor is; value = record + successor rev
//   "v" rev u64, sub u32            → the revision log: event type, key, previous mod revision
//   "l" lease id u64                → granted TTL of a lease
//   "m" name                        → store metadata: "rev" (current revision),
//                                     "compact" (compacted revision)
//
// Reading key K at revision R: the "c" row if its mod revision is <= R, else
// the first "h" row at or after (K, ~R) — the newest version <= R. Compact(C)
// makes three kinds of rows dead, and the engine's compaction filter drops them
// as it rewrites tables (no stop-the-world defragmentation):
//   "h" rows whose successor is <= C (every read at >= C sees the successor);
//   "c" tombstones at <= C; "v" rows below C.

enum Layout {
    static let current: UInt8 = 0x63  // "c"
    static let history: UInt8 = 0x68  // "h"
    static let log: UInt8 = 0x76      // "v"
    static let lease: UInt8 = 0x6C    // "l"
    static let meta: UInt8 = 0x6D     // "m"

    static func currentKey(_ key: [UInt8]) -> [UInt8] {
        var k: [UInt8] = [current]
        k.append(contentsOf: key)
        return k
    }

    static func historyPrefix(_ key: [UInt8]) -> [UInt8] {
        var k: [UInt8] = [history]
        k.appendBE32(UInt32(key.count))
        k.append(contentsOf: key)
        return k
    }

    static func historyKey(_ key: [UInt8], _ rev: Int64) -> [UInt8] {
        var k = historyPrefix(key)
        k.appendBE64(~UInt64(rev))
        return k
    }

    static func logKey(_ rev: Int64, _ sub: Int) -> [UInt8] {
        var k: [UInt8] = [log]
        k.appendBE64(UInt64(rev))
        k.appendBE32(UInt32(sub))
        return k
    }

    static func leaseKey(_ id: Int64) -> [UInt8] {
        var k: [UInt8] = [lease]
        k.appendBE64(UInt64(bitPattern: id))
        return k
    }

    static func metaKey(_ name: String) -> [UInt8] { [meta] + Array(name.utf8) }
}

/// A version as stored: the fields of KeyValue but the key, or a tombstone.
struct Record: Equatable {
    var createRevision: Int64
    var modRevision: Int64
    var version: Int64
    var lease: Int64
    var value: [UInt8]
    var isTombstone: Bool

    static func tombstone(at rev: Int64) -> Record {
        Record(createRevision: 0, modRevision: rev, version: 0, lease: 0, value: [], isTombstone: true)
    }

    func keyValue(_ key: [UInt8]) -> KeyValue {
        KeyValue(key: key, createRevision: createRevision, modRevision: modRevision, version: version,
                 value: value, lease: lease)
    }

    /// | flags u8 (1 = tombstone) | mod rev varint | create rev varint | version varint | lease varint | value |
    func encode(successor: Int64? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 24)
        out.append(isTombstone ? 1 : 0)
        out.appendVarint(UInt64(modRevision))
        out.appendVarint(UInt64(createRevision))
        out.appendVarint(UInt64(version))
        out.appendVarint(UInt64(bitPattern: lease))
        if let successor { out.appendVarint(UInt64(successor)) }
        out.append(contentsOf: value)
        return out
    }

    /// Decodes a record; `withSuccessor` for "h" rows.
    static func decode(_ bytes: UnsafeRawBufferPointer, withSuccessor: Bool) -> (Record, successor: Int64)? {
        var p = 0
        func uv() -> UInt64? { readVarint(bytes, at: &p) }
        guard bytes.count >= 1 else { return nil }
        let flags = bytes[0]
        p = 1
        guard let mod = uv(), let create = uv(), let version = uv(), let lease = uv() else { return nil }
        var successor: UInt64 = 0
        if withSuccessor {
            guard let s = uv() else { return nil }
            successor = s
        }
        // Revisions and versions this store writes are positive Int64s; anything above is damage, not a value.
        guard let create = Int64(exactly: create), let mod = Int64(exactly: mod), let version = Int64(exactly: version),
              let successor = Int64(exactly: successor)
        else { return nil }
        let r = Record(createRevision: create, modRevision: mod, version: version,
                       lease: Int64(bitPattern: lease), value: Array(bytes[p...]), isTombstone: flags & 1 != 0)
        return (r, successor)
    }

    static func decode(_ bytes: [UInt8], withSuccessor: Bool) -> (Record, successor: Int64)? {
        bytes.withUnsafeBytes { decode($0, withSuccessor: withSuccessor) }
    }

    /// The mod revision, tombstone flag and successor without copying the value.
    static func peek(_ bytes: UnsafeRawBufferPointer, withSuccessor: Bool) -> (modRevision: Int64, isTombstone: Bool, successor: Int64)? {
        guard let (r, s) = decode(UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, 64)]), withSuccessor: withSuccessor) else {
            return nil
        }
        return (r.modRevision, r.isTombstone, s)
    }
}

/// A revision-log row: what happened to which key at (rev, sub).
struct LogEntry {
    var type: EventType
    var key: [UInt8]
    /// Mod revision of the version this event replaced (0: none).
    var prevModRevision: Int64

    func encode() -> [UInt8] {
        var out: [UInt8] = [type == .put ? 0 : 1]
        out.appendVarint(UInt64(prevModRevision))
        out.append(contentsOf: key)
        return out
    }

    static func decode(_ bytes: [UInt8]) -> LogEntry? {
        guard bytes.count >= 2 else { return nil }
        var p = 1
        // A varint cut off by the end of the row, or longer than ten bytes, is damage.
        guard let prev = bytes.withUnsafeBytes({ readVarint($0, at: &p) }),
              let prevModRevision = Int64(exactly: prev) else { return nil }  // damage, not a revision
        return LogEntry(type: bytes[0] == 0 ? .put : .delete, key: Array(bytes[p...]), prevModRevision: prevModRevision)
    }
}

extension Array where Element == UInt8 {
    mutating func appendBE64(_ v: UInt64) {
        for i in stride(from: 56, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: v >> UInt64(i))) }
    }

    mutating func appendBE32(_ v: UInt32) {
        for i in stride(from: 24, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: v >> UInt32(i))) }
    }

    func readBE64(at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(self[offset + i]) }
        return v
    }

    func readBE32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(self[offset + i]) }
        return v
    }
}

/// etcd's range rules: empty end = the single key; "\0" = every key >= key.
struct KeyRange {
    let start: [UInt8]
    /// nil: unbounded above.
    let end: [UInt8]?
    let isSingleKey: Bool

    init(key: [UInt8], rangeEnd: [UInt8]) {
        if rangeEnd.isEmpty {
            start = key
            end = nil
            isSingleKey = true
        } else if rangeEnd == [0] {
            start = key
            end = nil
            isSingleKey = false
        } else {
            start = key
            end = rangeEnd
            isSingleKey = false
        }
    }

    func contains(_ k: [UInt8]) -> Bool {
        if isSingleKey { return k == start }
        if k.lexicographicallyPrecedes(start) { return false }
        if let end, !k.lexicographicallyPrecedes(end) { return false }
        return true
    }
}

/// The smallest key greater than every key with `prefix` (etcd's GetPrefixRangeEnd);
/// [0] ("all keys") when the prefix is all 0xFF.
public func prefixRangeEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xFF {
            end[end.count - 1] = last + 1
            return end
        }
        end.removeLast()
    }
    return [0]
}
