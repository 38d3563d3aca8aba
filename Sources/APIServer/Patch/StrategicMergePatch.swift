import ClusterAPI

/// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`): a JSON
/// merge patch in which lists of objects with a merge key (containers by `name`, ports by
/// `containerPort`, conditions by `type`, …) merge element by element instead of being
/// replaced, and lists of strings such as finalizers merge as sets. Directives:
/// `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>`,
/// `$deleteFromPrimitiveList/<list>`; `null` removes a member.
///
/// Worked example (a Pod, merge key `name`):
///
///     live:  {"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y"}]}}
///     patch: {"spec":{"containers":[{"name":"a","image":"x:2"}]}}
///     result {"spec":{"containers":[{"name":"a","image":"x:2"},{"name":"b","image":"y"}]}}
///
/// A JSON merge patch would have dropped container `b`.
public enum StrategicMergePatch {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// How a list field merges.
    public enum ListStrategy: Equatable, Sendable {
        case replace
        case mergeByKey(String)
        case mergePrimitives
    }

    /// The merge strategy of the list at `path` (field names from the object root, no
    /// indices) in objects of `kind` — the `patchStrategy`/`patchMergeKey` Go struct tags.
    public static func listStrategy(kind: String, path: [String]) -> ListStrategy {
        let joined = path.joined(separator: ".")
        switch joined {
        case "metadata.finalizers": return .mergePrimitives
        case "metadata.ownerReferences": return .mergeByKey("uid")
        case "status.conditions": return .mergeByKey("type")
        default: break
        }
        switch kind {
        case "StatefulSet", "Deployment", "ReplicaSet", "Job":
            // The pod template merges as a Pod does.
            if path.count > 2, path[0] == "spec", path[1] == "template" {
                return listStrategy(kind: "Pod", path: Array(path.dropFirst(2)))
            }
            return .replace
        case "Pod":
            let containerLists: Set<String> = ["spec.containers", "spec.initContainers", "spec.ephemeralContainers"]
            if containerLists.contains(joined) { return .mergeByKey("name") }
            if path.count == 3, containerLists.contains(path[0...1].joined(separator: ".")) {
                switch path[2] {
                case "env": return .mergeByKey("name")
                case "ports": return .mergeByKey("containerPort")
                case "volumeMounts": return .mergeByKey("mountPath")
                case "volumeDevices": return .mergeByKey("devicePath")
                default: return .replace
                }
            }
            switch joined {
            case "spec.volumes", "spec.imagePullSecrets": return .mergeByKey("name")
            case "spec.hostAliases", "status.podIPs", "status.hostIPs": return .mergeByKey("ip")
            default: return .replace
            }
        case "Node":
            return joined == "status.addresses" ? .mergeByKey("type") : .replace
        case "Service":
            return joined == "spec.ports" ? .mergeByKey("port") : .replace
        case "CSINode":
            return joined == "spec.drivers" ? .mergeByKey("name") : .replace
        default:
            return .replace
        }
    }

    /// Applies `patch` to `original`, an object of `kind`.
    public static func apply(_ patch: JSONValue, to original: JSONValue, kind: String) throws(Failure) -> JSONValue {
        guard case .object(let patchMembers) = patch else {
            throw Failure("a strategic merge patch must be a JSON object")
        }
        return .object(try mergeMap(original.objectValue ?? [:], patchMembers, path: [], kind: kind) ?? [:])
    }

    /// Merges a map; nil means the map itself is deleted (`$patch: delete`).
    static func mergeMap(_ original: [String: JSONValue], _ patch: [String: JSONValue], path: [String],
                         kind: String) throws(Failure) -> [String: JSONValue]? {
        if let directive = patch["$patch"] {
            switch directive.stringValue {
            case "replace": return try stripDirectives(.object(patch.filter { $0.key != "$patch" }), path: path, kind: kind).objectValue
            case "delete": return nil
            case "merge", nil: break
            default: throw Failure("unknown patch directive \(directive) at \(display(path)): expected replace, delete or merge")
            }
        }
        var result = original
        var orders: [(String, [JSONValue])] = []
        var deletions: [(String, [JSONValue])] = []
        for (key, value) in patch {
            if key == "$patch" || key == "$retainKeys" { continue }
            if key.hasPrefix("$setElementOrder/") {
                orders.append((String(key.dropFirst("$setElementOrder/".count)), value.arrayValue ?? []))
                continue
            }
            if key.hasPrefix("$deleteFromPrimitiveList/") {
                deletions.append((String(key.dropFirst("$deleteFromPrimitiveList/".count)), value.arrayValue ?? []))
                continue
            }
            let childPath = path + [key]
            switch value {
            case .null:
                result[key] = nil
            case .object(let members):
                if case .object(let existing)? = result[key] {
                    result[key] = try mergeMap(existing, members, path: childPath, kind: kind).map(JSONValue.object)
                } else {
                    result[key] = try mergeMap([:], members, path: childPath, kind: kind).map(JSONValue.object)
                }
            case .array(let elements):
                result[key] = .array(try mergeList(result[key]?.arrayValue, elements, path: childPath, kind: kind))
            default:
                result[key] = value
            }
        }
        for (field, removed) in deletions {
            if case .array(let elements)? = result[field] {
                let gone = Set(removed)
                result[field] = .array(elements.filter { !gone.contains($0) })
            }
        }
        for (field, order) in orders {
            if case .array(let elements)? = result[field] {
                result[field] = .array(reorder(elements, by: order, strategy: listStrategy(kind: kind, path: path + [field])))
            }
        }
        if case .array(let retain)? = patch["$retainKeys"] {
            let keep = Set(retain.compactMap(\.stringValue))
            result = result.filter { keep.contains($0.key) }
        }
        return result
    }

    static func mergeList(_ original: [JSONValue]?, _ patch: [JSONValue], path: [String], kind: String) throws(Failure) -> [JSONValue] {
        let strategy = listStrategy(kind: kind, path: path)
        if patch.contains(where: { $0["$patch"]?.stringValue == "replace" }) {
            return try patch.filter { $0["$patch"]?.stringValue != "replace" }.map { e throws(Failure) in try stripDirectives(e, path: path, kind: kind) }
        }
        switch strategy {
        case .replace:
            return try patch.map { e throws(Failure) in try stripDirectives(e, path: path, kind: kind) }
        case .mergePrimitives:
            var result = original ?? []
            var present = Set(result)
            for element in patch where present.insert(element).inserted { result.append(element) }
            return result
        case .mergeByKey(let key):
            // Elements are found by their merge key through an index, not a scan: a patch of
            // n elements costs O(n), however long the list.
            var slots: [JSONValue?] = (original ?? []).map { $0 }
            var positions: [JSONValue: [Int]] = [:]
            for (i, e) in slots.enumerated() {
                if let k = e?[key] { positions[k, default: []].append(i) }
            }
            for element in patch {
                guard case .object(let members) = element else {
                    throw Failure("\(display(path)): expected objects with merge key \"\(key)\", found \(element)")
                }
                guard let keyValue = members[key] else {
                    throw Failure("\(display(path)): element \(element) has no merge key \"\(key)\"")
                }
                if members["$patch"]?.stringValue == "delete" {
                    for i in positions.removeValue(forKey: keyValue) ?? [] { slots[i] = nil }
                    continue
                }
                if let index = positions[keyValue]?.first {
                    let merged = try mergeMap(slots[index]?.objectValue ?? [:], members, path: path, kind: kind)
                    if let merged {
                        slots[index] = .object(merged)
                    } else {
                        slots[index] = nil
                        positions[keyValue]?.removeFirst()
                        if positions[keyValue]?.isEmpty == true { positions[keyValue] = nil }
                    }
                } else if let stripped = try mergeMap([:], members, path: path, kind: kind) {
                    positions[keyValue, default: []].append(slots.count)
                    slots.append(.object(stripped))
                }
            }
            return slots.compactMap { $0 }
        }
    }

    /// `$setElementOrder`: listed elements first, in that order; the others after, as they were.
    static func reorder(_ elements: [JSONValue], by order: [JSONValue], strategy: ListStrategy) -> [JSONValue] {
        func identity(_ e: JSONValue) -> JSONValue {
            if case .mergeByKey(let key) = strategy { return e[key] ?? e }
            return e
        }
        var byIdentity: [JSONValue: [Int]] = [:]
        for (i, e) in elements.enumerated() { byIdentity[identity(e), default: []].append(i) }
        var taken = [Bool](repeating: false, count: elements.count)
        var result: [JSONValue] = []
        for k in order.map(identity) {
            guard var indices = byIdentity[k], !indices.isEmpty else { continue }
            let i = indices.removeFirst()
            byIdentity[k] = indices
            taken[i] = true
            result.append(elements[i])
        }
        for (i, e) in elements.enumerated() where !taken[i] { result.append(e) }
        return result
    }

    /// A value with every directive removed (for values that replace wholesale).
    static func stripDirectives(_ value: JSONValue, path: [String], kind: String) throws(Failure) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(try mergeMap([:], members.filter { $0.key != "$patch" }, path: path, kind: kind) ?? [:])
        case .array(let elements):
            return .array(try elements.map { e throws(Failure) in try stripDirectives(e, path: path, kind: kind) })
        default:
            return value
        }
    }

    static func display(_ path: [String]) -> String { path.isEmpty ? "the object" : path.joined(separator: ".") }
}
