#if canImport(Glibc)
import Glibc
#endif

// Log files: WAL segments (NNNNNN.log) and the MANIFEST share this framing.
//
//   record: | CRC-32C u32 | payload length u32 | kind u8 | log number u32 | payload |
//           CRC over kind ‖ log number ‖ payload; all integers little-endian.
//
// Segments reserve disk ahead of their writes (AppendFile's preallocation
// step) so that an fdatasync never has to grow the file; a zero header marks
// the reserved, never-written rest of a segment. The log number in every
// header keeps a record from being mistaken for one of another segment.
//
// Recovery reads records until the end. A damaged record (short, bad CRC) with
// no valid record of the same log after it is a torn tail: the file is
// truncated there. A damaged record followed by valid ones is corruption,
// reported with the file and offset — never skipped.

let logRecordHeaderSize = 13
let logRecordKindFull: UInt8 = 1

/// Appends framed records to one log file.
final class LogWriter {
    let number: UInt64
    let file: AppendFile

    /// Creates a log file (and makes its directory entry durable), reserving
    /// disk `preallocationStep` bytes at a time ahead of the writes. `exclusive`: a file already
    /// there is an error rather than emptied (a WAL may hold acknowledged writes).
    init(directory: String, path: String, number: UInt64, preallocationStep: Int = 0, exclusive: Bool = false) throws {
        self.number = number
        file = try AppendFile(path: path, truncate: !exclusive, exclusive: exclusive, preallocationStep: preallocationStep)
        try FileIO.syncDirectory(directory)
    }

    /// Frames `payload` (bytes after the header space) in place: `buffer` must
    /// start with `logRecordHeaderSize` bytes reserved for the header.
    static func frame(_ buffer: inout [UInt8], number: UInt64) {
        let length = UInt32(buffer.count - logRecordHeaderSize)
        buffer.withUnsafeMutableBytes { p in
            let base = p.baseAddress!
            storeFixed32(base + 4, length)
            base.storeBytes(of: logRecordKindFull, toByteOffset: 8, as: UInt8.self)
            storeFixed32(base + 9, UInt32(truncatingIfNeeded: number))
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(p)[8...]))
            storeFixed32(base, crc)
        }
    }

    /// Writes an already framed buffer (one or more records).
    func write(framed: [UInt8]) throws {
        try file.append(framed)
    }

    /// Frames and writes one record.
    func addRecord(_ payload: [UInt8]) throws {
        var buf = [UInt8](repeating: 0, count: logRecordHeaderSize)
        buf.append(contentsOf: payload)
        LogWriter.frame(&buf, number: number)
        try file.append(buf)
    }

    func sync() throws { try file.sync(dataOnly: true) }

    func close() { file.close() }

    var size: Int { file.size }
}

/// Reads every intact record of one log file.
enum LogReader {
    struct Result {
        var records: [[UInt8]] = []
        /// Offset of the end of the last intact record.
        var validEnd = 0
        /// Whether a torn tail was found after `validEnd`.
        var tornTail = false
    }

    static func read(path: String, number: UInt64) throws -> Result {
        let data = try FileIO.readWholeFile(path)
        return try data.withUnsafeBytes { try parse($0, path: path, number: number) }
    }

    /// The header at `pos` frames a complete, checksummed record of this log.
    private static func intactRecord(_ p: UnsafeRawBufferPointer, at pos: Int, number: UInt32) -> Int? {
        guard pos + logRecordHeaderSize <= p.count else { return nil }
        let base = p.baseAddress! + pos
        let length = Int(loadFixed32(base + 4))
        guard base.load(fromByteOffset: 8, as: UInt8.self) == logRecordKindFull,
              loadFixed32(base + 9) == number,
              length <= p.count - pos - logRecordHeaderSize
        else { return nil }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base + 8, count: 5 + length))
        return crc == loadFixed32(base) ? length : nil
    }

    /// The offset of the first intact record of this log after `pos`, if any.
    private static func firstIntactRecord(_ p: UnsafeRawBufferPointer, after pos: Int, number: UInt32) -> Int? {
        var probe = pos + 1
        while probe + logRecordHeaderSize <= p.count {
            // Cheap filter first: the kind byte must match before the checksum is computed.
            if p[probe + 8] == logRecordKindFull, intactRecord(p, at: probe, number: number) != nil { return probe }
            probe += 1
        }
        return nil
    }

    static func parse(_ p: UnsafeRawBufferPointer, path: String, number: UInt64) throws -> Result {
        var result = Result()
        let n32 = UInt32(truncatingIfNeeded: number)
        var pos = 0
        while pos + logRecordHeaderSize <= p.count {
            let base = p.baseAddress! + pos
            if loadFixed64(base) == 0 && loadFixed32(base + 8) == 0 && base.load(fromByteOffset: 12, as: UInt8.self) == 0 {
                // Preallocated space, the clean end — unless intact records follow (zeroed damage).
                if let later = firstIntactRecord(p, after: pos, number: n32) {
                    throw LSMError.corruption(path, offset: pos, "log record is zeroed, and an intact record follows at offset \(later)")
                }
                break
            }
            if let length = intactRecord(p, at: pos, number: n32) {
                result.records.append(Array(UnsafeRawBufferPointer(start: base + logRecordHeaderSize, count: length)))
                pos += logRecordHeaderSize + length
                continue
            }
            // A stale record of a recycled file, written under another log number, ends this log.
            if loadFixed32(base + 9) != n32, loadFixed32(base + 4) <= UInt32(p.count - pos - logRecordHeaderSize),
               CRC32C.checksum(UnsafeRawBufferPointer(start: base + 8, count: 5 + Int(loadFixed32(base + 4)))) == loadFixed32(base) {
                break
            }
            // Damaged here. If an intact record of this log follows, the damage is in the middle.
            if let later = firstIntactRecord(p, after: pos, number: n32) {
                throw LSMError.corruption(path, offset: pos, "log record fails its checksum or length check, and an intact record follows at offset \(later)")
            }
            result.tornTail = true
            break
        }
        if !result.tornTail && pos < p.count && pos + logRecordHeaderSize > p.count {
            // A few trailing bytes that are not zeros: a header torn mid-write.
            let rest = UnsafeRawBufferPointer(rebasing: p[pos...])
            if rest.contains(where: { $0 != 0 }) { result.tornTail = true }
        }
        result.validEnd = pos
        return result
    }
}
