import CLZ4

/// LZ4 block compression through liblz4.
enum LZ4 {
    /// Compresses `input`; nil when liblz4 refuses (never for valid sizes).
    static func compress(_ input: [UInt8]) -> [UInt8]? {
        let bound = Int(LZ4_compressBound(Int32(input.count)))
        return input.withUnsafeBytes { src -> [UInt8]? in
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: bound) { dst, count in
                let n = LZ4_compress_default(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    UnsafeMutableRawPointer(dst.baseAddress!).assumingMemoryBound(to: CChar.self),
                    Int32(input.count), Int32(bound))
                if n <= 0 { ok = false; count = 0 } else { count = Int(n) }
            }
            return ok ? out : nil
        }
    }

    /// Decompresses `input` into exactly `rawSize` bytes, or returns nil if the
    /// input is malformed or does not produce that many bytes.
    static func decompress(_ input: UnsafeRawBufferPointer, rawSize: Int) -> [UInt8]? {
        var ok = true
        let out = [UInt8](unsafeUninitializedCapacity: max(rawSize, 1)) { dst, count in
            let n = LZ4_decompress_safe(
                input.baseAddress?.assumingMemoryBound(to: CChar.self),
                UnsafeMutableRawPointer(dst.baseAddress!).assumingMemoryBound(to: CChar.self),
                Int32(input.count), Int32(rawSize))
            if n != Int32(rawSize) { ok = false; count = 0 } else { count = rawSize }
        }
        return ok ? out : nil
    }
}
