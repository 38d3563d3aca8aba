// LEB128 varints (protobuf's, and the engine's and the store's row formats): the one reader and
// writer of the project. The reader never reads past the buffer and refuses more than ten bytes,
// so damaged or hostile input is nil, not a crash or a silently shortened value.

/// Reads the varint at `offset` in `bytes` and moves `offset` past it; nil (with `offset`
/// unspecified) when the buffer ends inside it or it is longer than ten bytes. Bits beyond the
/// 64th in a tenth byte are dropped, as protobuf's decoders do.
@inlinable @inline(__always)
package func readVarint(_ bytes: UnsafeRawBufferPointer, at offset: inout Int) -> UInt64? {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    while offset < bytes.count && shift <= 63 {
        let b = bytes[offset]
        offset += 1
        result |= UInt64(b & 0x7F) << shift
        if b < 0x80 { return result }
        shift += 7
    }
    return nil
}

extension Array where Element == UInt8 {
    /// Appends `v` as a varint (one to ten bytes).
    @inlinable @inline(__always)
    package mutating func appendVarint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
}
