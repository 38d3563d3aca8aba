// A WriteBatch is an ordered list of puts and deletes applied atomically. Its
// encoding is also the payload of a WAL record:
//
//   +--------------+-----------+---------------------------------------------+
//   | sequence u64 | count u32 | entries: kind u8, key (varint len + bytes), |
//   |  (LE, set at |  (LE)     |          value (varint len + bytes) if put  |
//   |  commit)     |           |                                             |
//   +--------------+-----------+---------------------------------------------+

/// An atomic group of puts and deletes. Value type; building one allocates a
/// single growing buffer, not one object per entry.
public struct WriteBatch: Sendable {
    static let headerSize = 12
    var rep: [UInt8]
    /// Number of puts and deletes in the batch.
    public private(set) var count: Int = 0
    /// Sum of key and value bytes, for statistics.
    private(set) var userBytes: Int = 0

    public init() {
        rep = [UInt8](repeating: 0, count: WriteBatch.headerSize)
    }

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        rep.append(EntryKind.value.rawValue)
        rep.appendLengthPrefixed(key)
        rep.appendLengthPrefixed(value)
        count += 1
        userBytes += key.count + value.count
    }

    /// Adds a put from borrowed bytes (no intermediate arrays).
    public mutating func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        rep.append(EntryKind.value.rawValue)
        rep.appendVarint(UInt64(key.count))
        rep.append(contentsOf: key)
        rep.appendVarint(UInt64(value.count))
        rep.append(contentsOf: value)
        count += 1
        userBytes += key.count + value.count
    }

    public mutating func delete(_ key: [UInt8]) {
        rep.append(EntryKind.deletion.rawValue)
        rep.appendLengthPrefixed(key)
        count += 1
        userBytes += key.count
    }

    public mutating func removeAll() {
        rep.removeSubrange(WriteBatch.headerSize...)
        count = 0
        userBytes = 0
    }

    public var isEmpty: Bool { count == 0 }

    /// Encoded size in bytes.
    public var byteSize: Int { rep.count }

    /// Calls `body` for each entry in order, with pointers valid during the call.
    static func forEach(
        _ rep: UnsafeRawBufferPointer,
        _ body: (UInt8, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var r = ByteReader(rep, offset: headerSize)
        let expected = Int(loadFixed32(rep.baseAddress! + 8))
        var seen = 0
        while !r.isAtEnd {
            guard let kind = r.byte(), let kl = r.varint32(), let key = r.bytes(kl) else {
                throw LSMError(.corruption, "write batch entry \(seen) is truncated")
            }
            var value = UnsafeRawBufferPointer(start: nil, count: 0)
            if kind == EntryKind.value.rawValue {
                guard let vl = r.varint32(), let v = r.bytes(vl) else {
                    throw LSMError(.corruption, "write batch entry \(seen) has a truncated value")
                }
                value = v
            } else if kind != EntryKind.deletion.rawValue {
                throw LSMError(.corruption, "write batch entry \(seen) has unknown kind \(kind)")
            }
            try body(kind, key, value)
            seen += 1
        }
        guard seen == expected else {
            throw LSMError(.corruption, "write batch holds \(seen) entries but its header says \(expected)")
        }
    }
}
