#if canImport(Glibc)
import Glibc
#endif

// Internal keys: every entry the engine stores is a user key plus an 8-byte
// trailer packing the sequence number of the write and its kind:
//
//   +-----------------------+--------------------------------------+
//   | user key (n bytes)    | trailer: (sequence << 8 | kind) LE64 |
//   +-----------------------+--------------------------------------+
//
// Internal keys sort by user key ascending (bytewise), then by trailer
// descending, so the newest version of a key comes first. A read at sequence S
// seeks to (key, S, 0xFF): the first entry at or after it is the newest
// version visible at S.

/// Sequence numbers are 56 bits; the low byte of a trailer is the entry kind.
typealias SequenceNumber = UInt64
let maxSequenceNumber: SequenceNumber = (1 << 56) - 1

enum EntryKind: UInt8 {
    case deletion = 0
    case value = 1
    /// The kind used in seek targets: sorts before every real entry of the same sequence.
    static let seek: UInt8 = 0xFF
}

@inline(__always)
func packTrailer(_ seq: SequenceNumber, _ kind: UInt8) -> UInt64 { (seq << 8) | UInt64(kind) }

@inline(__always)
func trailerSequence(_ trailer: UInt64) -> SequenceNumber { trailer >> 8 }

@inline(__always)
func trailerKind(_ trailer: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: trailer) }

func makeInternalKey(_ userKey: [UInt8], _ seq: SequenceNumber, _ kind: UInt8) -> [UInt8] {
    var k = userKey
    k.reserveCapacity(userKey.count + 8)
    k.appendFixed64(packTrailer(seq, kind))
    return k
}

func makeInternalKey(_ userKey: UnsafeRawBufferPointer, _ seq: SequenceNumber, _ kind: UInt8) -> [UInt8] {
    var k = [UInt8](userKey)
    k.appendFixed64(packTrailer(seq, kind))
    return k
}

/// Compares two internal keys (each at least 8 bytes).
@inline(__always)
func compareInternalKeys(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let ua = UnsafeRawBufferPointer(rebasing: a[0..<(a.count - 8)])
    let ub = UnsafeRawBufferPointer(rebasing: b[0..<(b.count - 8)])
    let c = compareBytes(ua, ub)
    if c != 0 { return c }
    let ta = loadFixed64(a.baseAddress! + a.count - 8)
    let tb = loadFixed64(b.baseAddress! + b.count - 8)
    return ta > tb ? -1 : (ta < tb ? 1 : 0)
}

@inline(__always)
func compareInternalKeys(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in compareInternalKeys(pa, pb) } }
}

extension Array where Element == UInt8 {
    /// The user-key part of an internal key.
    var userKeyPart: ArraySlice<UInt8> { self[0..<(count - 8)] }
    /// The trailer of an internal key.
    var trailer: UInt64 { decodeFixed64(self, at: count - 8) }
}

@inline(__always)
func userKeysEqual(_ internalKey: [UInt8], _ userKey: [UInt8]) -> Bool {
    internalKey.count - 8 == userKey.count && internalKey.withUnsafeBytes { a in
        userKey.withUnsafeBytes { b in
            b.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, b.count) == 0
        }
    }
}

@inline(__always)
func compareUserKey(ofInternal internalKey: [UInt8], with userKey: [UInt8]) -> Int {
    internalKey.withUnsafeBytes { a in
        userKey.withUnsafeBytes { b in
            compareBytes(UnsafeRawBufferPointer(rebasing: a[0..<(a.count - 8)]), b)
        }
    }
}

@inline(__always)
func compareUserKeysOfInternal(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            compareBytes(UnsafeRawBufferPointer(rebasing: pa[0..<(pa.count - 8)]),
                         UnsafeRawBufferPointer(rebasing: pb[0..<(pb.count - 8)]))
        }
    }
}
