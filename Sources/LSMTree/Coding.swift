#if canImport(Glibc)
import Glibc
import Primitives
#endif

// Little-endian fixed-width integers and LEB128 varints, the two encodings every
// Ballast file format uses (WAL records, SSTable blocks, MANIFEST edits).

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendFixed32(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v))
        append(UInt8(truncatingIfNeeded: v >> 8))
        append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 24))
    }

    @inline(__always)
    mutating func appendFixed64(_ v: UInt64) {
        appendFixed32(UInt32(truncatingIfNeeded: v))
        appendFixed32(UInt32(truncatingIfNeeded: v >> 32))
    }

    @inline(__always)
    mutating func appendLengthPrefixed(_ bytes: [UInt8]) {
        appendVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }
}

@inline(__always)
func loadFixed32(_ p: UnsafeRawPointer) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
}

@inline(__always)
func loadFixed64(_ p: UnsafeRawPointer) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
}

@inline(__always)
func storeFixed32(_ p: UnsafeMutableRawPointer, _ v: UInt32) {
    p.storeBytes(of: v.littleEndian, as: UInt32.self)
}

@inline(__always)
func storeFixed64(_ p: UnsafeMutableRawPointer, _ v: UInt64) {
    p.storeBytes(of: v.littleEndian, as: UInt64.self)
}

func decodeFixed32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    bytes.withUnsafeBytes { loadFixed32($0.baseAddress! + offset) }
}

func decodeFixed64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
    bytes.withUnsafeBytes { loadFixed64($0.baseAddress! + offset) }
}

/// A forward reader over a byte buffer that never reads past its end: every
/// accessor returns nil on truncated or malformed input, so decoders turn
/// damaged bytes into a corruption error instead of a crash.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var isAtEnd: Bool { offset >= bytes.count }
    var remaining: Int { bytes.count - offset }

    @inline(__always)
    mutating func varint() -> UInt64? {
        readVarint(bytes, at: &offset)
    }

    @inline(__always)
    mutating func varint32() -> Int? {
        guard let v = varint(), v <= UInt64(UInt32.max) else { return nil }
        return Int(v)
    }

    mutating func fixed32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        defer { offset += 4 }
        return loadFixed32(bytes.baseAddress! + offset)
    }

    mutating func fixed64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        defer { offset += 8 }
        return loadFixed64(bytes.baseAddress! + offset)
    }

    mutating func byte() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, remaining >= n else { return nil }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    mutating func lengthPrefixed() -> [UInt8]? {
        guard let n = varint32(), let b = bytes(n) else { return nil }
        return [UInt8](b)
    }
}

/// Byte-wise comparison (memcmp order, shorter prefix first): the order of
/// user keys. Compares 8 bytes at a time as big-endian words, which beats a
/// call to memcmp for the short keys that dominate (measured in the memtable
/// insert path).
@inline(__always)
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let pa = a.baseAddress!
        let pb = b.baseAddress!
        var i = 0
        while i + 8 <= n {
            let x = UInt64(bigEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let y = UInt64(bigEndian: pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            if x != y { return x < y ? -1 : 1 }
            i += 8
        }
        while i < n {
            let x = pa.load(fromByteOffset: i, as: UInt8.self)
            let y = pb.load(fromByteOffset: i, as: UInt8.self)
            if x != y { return x < y ? -1 : 1 }
            i += 1
        }
    }
    return a.count < b.count ? -1 : (a.count > b.count ? 1 : 0)
}

@inline(__always)
func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int {
    a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in compareBytes(pa, pb) } }
}
