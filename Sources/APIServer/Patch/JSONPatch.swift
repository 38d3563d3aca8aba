import ClusterAPI

/// RFC 6902 JSON patch (`application/json-patch+json`): a list of add, remove, replace,
/// move, copy and test operations on RFC 6901 pointers, applied in order, all or nothing.
public enum JSONPatch {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    public static func apply(_ patch: JSONValue, to target: JSONValue) throws(Failure) -> JSONValue {
        guard case .array(let operations) = patch else {
            throw Failure("a JSON patch must be an array of operations, like [{\"op\":\"replace\",\"path\":\"/spec/x\",\"value\":1}]")
        }
        var document = target
        for (index, operation) in operations.enumerated() {
            guard let op = operation["op"]?.stringValue else { throw Failure("operation \(index): missing \"op\"") }
            guard let path = operation["path"]?.stringValue else { throw Failure("operation \(index) (\(op)): missing \"path\"") }
            let pointer = try parsePointer(path)
            switch op {
            case "add":
                guard let value = operation["value"] else { throw Failure("operation \(index) (add \(path)): missing \"value\"") }
                document = try add(document, pointer[...], value, path: path)
            case "remove":
                document = try remove(document, pointer[...], path: path).0
            case "replace":
                guard let value = operation["value"] else { throw Failure("operation \(index) (replace \(path)): missing \"value\"") }
                document = try remove(document, pointer[...], path: path).0
                document = try add(document, pointer[...], value, path: path)
            case "move":
                guard let from = operation["from"]?.stringValue else { throw Failure("operation \(index) (move): missing \"from\"") }
                let (without, value) = try remove(document, try parsePointer(from)[...], path: from)
                document = try add(without, pointer[...], value, path: path)
            case "copy":
                guard let from = operation["from"]?.stringValue else { throw Failure("operation \(index) (copy): missing \"from\"") }
                document = try add(document, pointer[...], try get(document, try parsePointer(from)[...], path: from), path: path)
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

    static func parsePointer(_ path: String) throws(Failure) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw Failure("invalid JSON pointer \"\(path)\": must start with /") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    static func get(_ node: JSONValue, _ pointer: ArraySlice<String>, path: String) throws(Failure) -> JSONValue {
        guard let head = pointer.first else { return node }
        switch node {
        case .object(let members):
            guard let child = members[head] else { throw Failure("path \(path) does not exist: no member \"\(head)\"") }
            return try get(child, pointer.dropFirst(), path: path)
        case .array(let elements):
            guard let i = Int(head), elements.indices.contains(i) else { throw Failure("path \(path): index \(head) out of range") }
            return try get(elements[i], pointer.dropFirst(), path: path)
        default:
            throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
        }
    }

    static func add(_ node: JSONValue, _ pointer: ArraySlice<String>, _ value: JSONValue, path: String) throws(Failure) -> JSONValue {
        guard let head = pointer.first else { return value }
        let last = pointer.count == 1
        switch node {
        case .object(var members):
            if last {
                members[head] = value
            } else {
                guard let child = members[head] else { throw Failure("path \(path) does not exist: no member \"\(head)\"") }
                members[head] = try add(child, pointer.dropFirst(), value, path: path)
            }
            return .object(members)
        case .array(var elements):
            if last {
                if head == "-" {
                    elements.append(value)
                } else {
                    guard let i = Int(head), i >= 0, i <= elements.count else { throw Failure("path \(path): index \(head) out of range") }
                    elements.insert(value, at: i)
                }
            } else {
                guard let i = Int(head), elements.indices.contains(i) else { throw Failure("path \(path): index \(head) out of range") }
                elements[i] = try add(elements[i], pointer.dropFirst(), value, path: path)
            }
            return .array(elements)
        default:
            throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
        }
    }

    static func remove(_ node: JSONValue, _ pointer: ArraySlice<String>, path: String) throws(Failure) -> (JSONValue, JSONValue) {
        guard let head = pointer.first else { throw Failure("cannot remove the whole document") }
        let last = pointer.count == 1
        switch node {
        case .object(var members):
            guard let child = members[head] else { throw Failure("path \(path) does not exist: no member \"\(head)\"") }
            if last {
                members[head] = nil
                return (.object(members), child)
            }
            let (updated, removed) = try remove(child, pointer.dropFirst(), path: path)
            members[head] = updated
            return (.object(members), removed)
        case .array(var elements):
            guard let i = Int(head), elements.indices.contains(i) else { throw Failure("path \(path): index \(head) out of range") }
            if last {
                let removed = elements.remove(at: i)
                return (.array(elements), removed)
            }
            let (updated, removed) = try remove(elements[i], pointer.dropFirst(), path: path)
            elements[i] = updated
            return (.array(elements), removed)
        default:
            throw Failure("path \(path) does not exist: \"\(head)\" is below a scalar")
        }
    }
}
