import ClusterAPI

/// RFC 6902 JSON patch (`application/json-patch+json`): a list of add, remove, replace,
/// move, copy and test operations on RFC 6901 pointers, applied in order, all or nothing.
///
/// Bounded as kube-apiserver bounds it: at most `maxOperations` operations (more is 413
/// before anything is applied), and `copy` operations may add at most `maxCopyBytes` of
/// JSON in all (kube-apiserver's `JSONPatchMaxCopyBytes`, 3 MiB): without it, a kilobyte
/// of `copy` operations each doubling the object grows it beyond any memory. Operations
/// change the document in place, so each costs the length of its path, not the size of
/// the document.
public enum JSONPatch {
    public struct Failure: Error, CustomStringConvertible {
        public enum Kind: Sendable { case invalid, tooManyOperations }
        public let description: String
        public let kind: Kind
        init(_ d: String, kind: Kind = .invalid) {
            description = d
            self.kind = kind
        }
    }

    /// kube-apiserver's `maxJSONPatchOperations`.
    public static let maxOperations = 10_000
    /// kube-apiserver's `JSONPatchMaxCopyBytes`.
    public static let maxCopyBytes = 3 << 20

    public static func apply(_ patch: JSONValue, to target: JSONValue) throws(Failure) -> JSONValue {
        guard case .array(let operations) = patch else {
            throw Failure("a JSON patch must be an array of operations, like [{\"op\":\"replace\",\"path\":\"/spec/x\",\"value\":1}]")
        }
        if operations.count > maxOperations {
            throw Failure("The allowed maximum operations in a JSON patch is \(maxOperations), got \(operations.count)", kind: .tooManyOperations)
        }
        var document = target
        var copied = 0
        for (index, operation) in operations.enumerated() {
            guard let op = operation["op"]?.stringValue else { throw Failure("operation \(index): missing \"op\"") }
            guard let path = operation["path"]?.stringValue else { throw Failure("operation \(index) (\(op)): missing \"path\"") }
            let pointer = try parsePointer(path)
            switch op {
            case "add":
                guard let value = operation["value"] else { throw Failure("operation \(index) (add \(path)): missing \"value\"") }
                try add(&document, pointer[...], value, path: path)
            case "remove":
                _ = try remove(&document, pointer[...], path: path)
            case "replace":
                guard let value = operation["value"] else { throw Failure("operation \(index) (replace \(path)): missing \"value\"") }
                _ = try remove(&document, pointer[...], path: path)
                try add(&document, pointer[...], value, path: path)
            case "move":
                guard let from = operation["from"]?.stringValue else { throw Failure("operation \(index) (move): missing \"from\"") }
                let source = try parsePointer(from)
                if source.count < pointer.count && Array(pointer.prefix(source.count)) == source {
                    throw Failure("operation \(index) (move \(from) to \(path)): a value cannot be moved into itself")
                }
                let value = try remove(&document, source[...], path: from)
                try add(&document, pointer[...], value, path: path)
            case "copy":
                guard let from = operation["from"]?.stringValue else { throw Failure("operation \(index) (copy): missing \"from\"") }
                let value = try get(document, try parsePointer(from)[...], path: from)
                copied += encodedSize(value, limit: maxCopyBytes - copied + 1)
                if copied > maxCopyBytes {
                    throw Failure("Unable to complete the copy, the accumulated size increase of copy is \(copied), exceeding the limit \(maxCopyBytes)")
                }
                try add(&document, pointer[...], value, path: path)
            case "test":
                let actual = try get(document, pointer[...], path: path)
                if actual != (operation["value"] ?? .null) {
                    throw Failure("testing value \(path) failed")
                }
            default:
                throw Failure("operation \(index): unknown op \"\(op)\" (expected add, remove, replace, move, copy or test)")
            }
        }
        return document
    }

    /// The length of `value`'s compact JSON encoding, counted up to `limit` (then it stops:
    /// the answer is only known to exceed the limit).
    static func encodedSize(_ value: JSONValue, limit: Int) -> Int {
        var total = 0
        addEncodedSize(value, to: &total, limit: limit)
        return total
    }

    private static func addEncodedSize(_ value: JSONValue, to total: inout Int, limit: Int) {
        if total > limit { return }
        switch value {
        case .null: total += 4
        case .bool(let b): total += b ? 4 : 5
        case .integer(let i):
            var digits = i < 0 ? 2 : 1
            var rest = i.magnitude
            while rest >= 10 {
                rest /= 10
                digits += 1
            }
            total += digits
        case .number: total += 24  // at most, as Go prints a float64
        case .string(let s): total += s.utf8.count + 2
        case .array(let elements):
            total += 1 + elements.count
            for e in elements {
                addEncodedSize(e, to: &total, limit: limit)
                if total > limit { return }
            }
        case .object(let members):
            total += 1 + members.count
            for (k, e) in members {
                total += k.utf8.count + 3
                addEncodedSize(e, to: &total, limit: limit)
                if total > limit { return }
            }
        }
    }

    static func parsePointer(_ path: String) throws(Failure) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw Failure("invalid JSON pointer \"\(path)\": must start with /") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    /// An array index as RFC 6901 writes it: digits only (no sign), within `count`.
    static func index(_ token: String, in count: Int, path: String, allowEnd: Bool = false) throws(Failure) -> Int {
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let i = Int(token),
              i < count || (allowEnd && i == count) else {
            throw Failure("path \(path): index \(token) out of range")
        }
        return i
    }

    static func get(_ node: JSONValue, _ pointer: ArraySlice<String>, path: String) throws(Failure) -> JSONValue {
        var current = node
        for head in pointer {
            switch current {
            case .object(let members):
                guard let child = members[head] else { throw Failure("path \(path) does not exist: no member \"\(head)\"") }
                current = child
            case .array(let elements):
                current = elements[try index(head, in: elements.count, path: path)]
            default:
                throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
            }
        }
        return current
    }

    /// Adds `value` at `pointer`, changing `node` in place: each container on the path is
    /// taken out of its parent while it changes, so it is never copied.
    static func add(_ node: inout JSONValue, _ pointer: ArraySlice<String>, _ value: JSONValue, path: String) throws(Failure) {
        guard let head = pointer.first else {
            node = value
            return
        }
        let last = pointer.count == 1
        switch node {
        case .object(var members):
            node = .null
            defer { node = .object(members) }
            if last {
                members[head] = value
            } else {
                guard var child = members.removeValue(forKey: head) else {
                    throw Failure("path \(path) does not exist: no member \"\(head)\"")
                }
                defer { members[head] = child }
                try add(&child, pointer.dropFirst(), value, path: path)
            }
        case .array(var elements):
            node = .null
            defer { node = .array(elements) }
            if last {
                if head == "-" {
                    elements.append(value)
                } else {
                    elements.insert(value, at: try index(head, in: elements.count, path: path, allowEnd: true))
                }
            } else {
                let i = try index(head, in: elements.count, path: path)
                var child = elements[i]
                elements[i] = .null
                defer { elements[i] = child }
                try add(&child, pointer.dropFirst(), value, path: path)
            }
        default:
            throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
        }
    }

    /// Removes the value at `pointer` from `node` in place and returns it.
    static func remove(_ node: inout JSONValue, _ pointer: ArraySlice<String>, path: String) throws(Failure) -> JSONValue {
        guard let head = pointer.first else { throw Failure("cannot remove the whole document") }
        let last = pointer.count == 1
        switch node {
        case .object(var members):
            node = .null
            defer { node = .object(members) }
            guard var child = members.removeValue(forKey: head) else {
                throw Failure("path \(path) does not exist: no member \"\(head)\"")
            }
            if last { return child }
            defer { members[head] = child }
            return try remove(&child, pointer.dropFirst(), path: path)
        case .array(var elements):
            node = .null
            defer { node = .array(elements) }
            let i = try index(head, in: elements.count, path: path)
            if last { return elements.remove(at: i) }
            var child = elements[i]
            elements[i] = .null
            defer { elements[i] = child }
            return try remove(&child, pointer.dropFirst(), path: path)
        default:
            throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
        }
    }
}
