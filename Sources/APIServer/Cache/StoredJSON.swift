import Foundation

/// An object's JSON as the store holds it turned into the JSON it is served as, without writing
/// the object again: the stored value is the writer's compact JSON (keys sorted by their UTF-8
/// bytes) without `metadata.resourceVersion`, so the served JSON is the same bytes with
/// `"resourceVersion":"N"` inserted into the top-level `metadata` object, before the first key
/// that sorts after it (or at its end):
///
///     {"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","uid":"8c…"},"spec":{…}}
///                                                                              ^ "resourceVersion":"42",
///
/// The result equals what `JSONValue.jsonBytes` writes of the decoded object with its resource
/// version set (tested against it). Bytes of another shape (not an object, no `metadata` object,
/// `metadata` twice, a `resourceVersion` already there, an escaped key where one is compared,
/// a line break anywhere, which would split a watch line) give nil: the caller encodes the tree.
enum StoredJSON {
    /// `stored` with `"resourceVersion":"<revision>"` in its metadata; nil when `stored` is not
    /// of the shape described above.
    static func withResourceVersion(_ stored: [UInt8], _ revision: Int64) -> [UInt8]? {
        stored.withUnsafeBufferPointer { bytes -> [UInt8]? in
            guard let base = bytes.baseAddress, memchr(base, 0x0A, bytes.count) == nil, memchr(base, 0x0D, bytes.count) == nil,
                  let at = insertion(in: bytes) else { return nil }
            let version = String(revision).utf8
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + version.count + 22)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[..<at.offset]))
            if at.commaBefore { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #""resourceVersion":""#.utf8)
            out.append(contentsOf: version)
            out.append(UInt8(ascii: "\""))
            if at.commaAfter { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[at.offset...]))
            return out
        }
    }

    private static let metadataKey = Array("metadata".utf8)
    private static let resourceVersionKey = Array("resourceVersion".utf8)

    /// Where the member goes: its offset in `bytes`, and whether a comma goes before or after it.
    static func insertion(in bytes: UnsafeBufferPointer<UInt8>) -> (offset: Int, commaBefore: Bool, commaAfter: Bool)? {
        var scanner = Scanner(bytes: bytes)
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        var found: (offset: Int, commaBefore: Bool, commaAfter: Bool)?
        if scanner.take(UInt8(ascii: "}")) { return nil }
        while true {
            guard let key = scanner.key(), scanner.take(UInt8(ascii: ":")) else { return nil }
            if key.escaped || !key.bytes.elementsEqual(metadataKey) {
                guard scanner.skipValue() else { return nil }
            } else {
                guard found == nil, let at = scanner.metadataInsertion() else { return nil }  // `metadata` twice: not ours
                found = at
            }
            if scanner.take(UInt8(ascii: ",")) { continue }
            guard scanner.take(UInt8(ascii: "}")), scanner.atEnd else { return nil }
            return found
        }
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var atEnd: Bool { index == bytes.count }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A member's key: the bytes between its quotes, and whether it has an escape.
        mutating func key() -> (bytes: UnsafeBufferPointer<UInt8>, escaped: Bool)? {
            let start = index
            guard let escaped = skipString() else { return nil }
            return (UnsafeBufferPointer(rebasing: bytes[(start + 1)..<(index - 1)]), escaped)
        }

        /// Skips a string (at its opening quote); whether it had an escape, nil if unterminated.
        mutating func skipString() -> Bool? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var escaped = false
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\\"):
                    escaped = true
                    index += 2
                case UInt8(ascii: "\""):
                    index += 1
                    return escaped
                default:
                    index += 1
                }
            }
            return nil
        }

        /// Skips one value of any kind.
        mutating func skipValue() -> Bool {
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return skipString() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        guard skipString() != nil else { return false }
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            return true
                        }
                    default:
                        break
                    }
                    index += 1
                }
                return false
            default:  // a number, true, false or null
                let start = index
                while index < bytes.count {
                    let byte = bytes[index]
                    if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") { break }
                    index += 1
                }
                return index > start
            }
        }

        /// In the metadata object (at its `{`): where `resourceVersion` goes, the object skipped.
        mutating func metadataInsertion() -> (offset: Int, commaBefore: Bool, commaAfter: Bool)? {
            guard take(UInt8(ascii: "{")) else { return nil }
            if bytes.count > index, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return (index - 1, false, false)
            }
            var found: (offset: Int, commaBefore: Bool, commaAfter: Bool)?
            while true {
                let memberStart = index
                guard let key = scanKeyForOrder() else { return nil }
                if key == .equal { return nil }  // already has one: not a stored object
                if found == nil && key == .after { found = (memberStart, false, true) }
                guard take(UInt8(ascii: ":")), skipValue() else { return nil }
                if take(UInt8(ascii: ",")) { continue }
                guard index < bytes.count, bytes[index] == UInt8(ascii: "}") else { return nil }
                if found == nil { found = (index, true, false) }
                index += 1
                return found
            }
        }

        enum Order { case before, equal, after }

        /// A metadata key compared with `resourceVersion` by its bytes; nil when escaped.
        mutating func scanKeyForOrder() -> Order? {
            guard let key = key(), !key.escaped else { return nil }
            if key.bytes.elementsEqual(StoredJSON.resourceVersionKey) { return .equal }
            return key.bytes.lexicographicallyPrecedes(StoredJSON.resourceVersionKey) ? .before : .after
        }
    }
}
