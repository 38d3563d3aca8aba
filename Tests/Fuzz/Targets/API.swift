// Fuzz targets of the API server and its object model: the Kubernetes protobuf envelope, JSON
// bodies and the four patch types, label and field selectors, quantities, Go durations.
//
// Each target parses what a client could send; a parse error is the expected answer to bad
// input. Properties checked on top: what parses prints back to something that parses to the
// same value (selectors, quantities, durations), and bounded work: a patch never produces
// more than a fixed multiple of what it was given, and a quantity at the length cap parses
// in milliseconds.
import APIServer
import ClusterAPI
import Foundation

extension FuzzTargets {
    static let api: [FuzzTarget] = [
        FuzzTarget("k8s-protobuf", maxLength: 8192) { input in
            _ = try? ProtobufBody.decode(input)
            // With the envelope's magic in front, so that mutations reach the fields.
            _ = try? ProtobufBody.decode(ProtobufBody.magic + input)
        },
        FuzzTarget("json-value", maxLength: 16384) { input in
            // The direct reader against Foundation's: what both read, they read the same
            // (numbers compared by value: Foundation reads Int64.min in an array as a Double; a
            // repeated key aside: which one Foundation keeps is not specified). Foundation also
            // reads some texts RFC 8259 and Go's encoding/json refuse (a trailing comma), and
            // refuses some bytes that are not UTF-8, which this reader replaces as Go's does.
            // What the writer writes reads back to the same value, through both readers.
            let direct = try? JSONValue(parsing: input)
            if let direct, let foundation = try? JSONDecoder().decode(JSONValue.self, from: Data(input)), !hasDuplicateKeys(input) {
                fuzzCheck(sameJSON(direct, foundation), "\(input) read as \(direct), Foundation \(foundation)")
            }
            guard let direct else { return }
            // (An integral Double is written in integer form and reads back as an integer.)
            let again = try? JSONValue(parsing: direct.jsonBytes)
            fuzzCheck(again.map { sameJSON($0, direct) } ?? false, "\(direct) does not read back from \(direct.jsonBytes)")
            let back = try? JSONDecoder().decode(JSONValue.self, from: direct.jsonData)
            fuzzCheck(back.map { sameJSON($0, direct) } ?? false, "Foundation does not read \(direct) back")
        },
        FuzzTarget("json-body", maxLength: 16384) { input in
            guard input.count > 1, let body = try? JSONValue(parsing: input.dropFirst()) else { return }
            // The first byte picks the kind, so one corpus covers them all.
            let resources = ResourceRegistry.standard.resources
            let info = resources[Int(input[0]) % resources.count]
            let created = try? Mutation.prepareCreate(body, info: info, namespace: info.namespaced ? "default" : nil)
            if let created {
                _ = try? Mutation.prepareUpdate(body, old: created, info: info, subresource: "")
                _ = try? Mutation.prepareUpdate(body, old: created, info: info, subresource: "status")
            }
        },
        FuzzTarget("json-patch", maxLength: 16384) { input in
            patchTarget(input) { patch, object in try JSONPatch.apply(patch, to: object) }
        },
        FuzzTarget("merge-patch", maxLength: 16384) { input in
            patchTarget(input) { patch, object in JSONMergePatch.apply(patch, to: object) }
        },
        FuzzTarget("strategic-merge-patch", maxLength: 16384) { input in
            patchTarget(input) { patch, object in
                try StrategicMergePatch.apply(patch, to: object, kind: object["kind"]?.stringValue ?? "")
            }
        },
        FuzzTarget("apply-patch", maxLength: 16384) { input in
            // Server-side apply merges the applied configuration with the strategic rules after
            // checking its type against the URL's resource.
            patchTarget(input) { patch, object in
                let info = ResourceRegistry.standard.resource(forKind: object["kind"]?.stringValue ?? "", group: "")!
                guard case .object = patch else { return object }
                var config = patch
                config["apiVersion"] = object["apiVersion"]
                config["kind"] = object["kind"]
                let merged = try StrategicMergePatch.apply(config, to: object, kind: info.kind)
                return (try? Mutation.prepareUpdate(merged, old: object, info: info, subresource: "")) ?? merged
            }
        },
        FuzzTarget("structural-schema", maxLength: 16384) { input in
            // {"schema": …, "object": …}: a CRD author's schema, then a custom resource through
            // it. Patterns are dropped: ICU's backtracking regular expressions can take
            // exponential time on a hostile pattern (see docs/security.md).
            guard let body = try? JSONValue(parsing: input), let schemaJSON = body["schema"] else { return }
            let (schema, _) = StructuralSchema.parse(withoutPatterns(schemaJSON), path: "schema")
            guard let schema, let object = body["object"] else { return }
            let (prepared, _, _) = CustomResourceObjects.prepare(object, old: nil, schema: schema, namespaced: true)
            // Pruning and defaulting are idempotent.
            var again = prepared
            schema.prune(&again)
            schema.applyDefaults(&again)
            fuzzCheck(again == prepared, "pruning and defaulting \(prepared) again changed it to \(again)")
        },
        FuzzTarget("printer-jsonpath", maxLength: 1024) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let path = try? SimpleJSONPath(text) else { return }
            _ = path.evaluate(["metadata": ["name": "a"], "status": ["conditions": [["type": "Ready", "status": "True"]]],
                               "spec": ["list": [1, [2], ["x": 3]]]])
        },
        FuzzTarget("label-selector", maxLength: 1024) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let selector = try? LabelSelector(parsing: text) else { return }
            let printed = selector.description
            let again = try? LabelSelector(parsing: printed)
            fuzzCheck(again != nil, "label selector \(text.debugDescription) printed as \(printed.debugDescription), which does not parse")
            fuzzCheck(again?.description == printed, "label selector \(printed.debugDescription) does not print back to itself")
            _ = selector.matches(["app": "web", "tier": "1"])
        },
        FuzzTarget("field-selector", maxLength: 1024) { input in
            let text = String(decoding: input, as: UTF8.self)
            guard let selector = try? FieldSelector(parsing: text) else { return }
            // Field names are paths such as spec.nodeName (any other is refused by the resource),
            // and only values are escaped in the printed form.
            let fieldPath = { (field: String) in field.utf8.allSatisfy { $0 == 0x2E || $0 == 0x2D || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) } }
            guard selector.requirements.allSatisfy({ fieldPath($0.field) }) else { return }
            let printed = selector.description
            let again = try? FieldSelector(parsing: printed)
            fuzzCheck(again != nil, "field selector \(text.debugDescription) printed as \(printed.debugDescription), which does not parse")
            // Terms are sorted by their source text (as apimachinery does), which printing may
            // change ("a==x" sorts before "a=E", "a=x" after): the terms, not their order, agree.
            fuzzCheck(Set(again?.requirements ?? []) == Set(selector.requirements),
                      "field selector \(printed.debugDescription) parses to other terms than \(text.debugDescription)")
        },
        FuzzTarget("quantity", maxLength: 256) { input in
            let text = String(decoding: input, as: UTF8.self)
            let clock = ContinuousClock()
            let started = clock.now
            guard let quantity = try? Quantity(text) else { return }
            let printed = quantity.description
            let canonical = quantity.canonicalString
            guard let again = try? Quantity(printed), let fromCanonical = try? Quantity(canonical) else {
                fuzzCheck(false, "quantity \(text.debugDescription) printed as \(printed.debugDescription) / \(canonical.debugDescription), which does not parse")
                return
            }
            fuzzCheck(again == quantity && fromCanonical == quantity,
                      "quantity \(text.debugDescription) printed as \(canonical.debugDescription), which parses to another value")
            _ = quantity + again
            _ = quantity - Quantity(milli: 1)  // exponents far apart: aligning them was unbounded
            _ = quantity.milliValue
            #if BALLAST_LIBFUZZER
            // Under libFuzzer only (`make fuzz`, a process of its own): in `make test` the suites
            // share two cores and a descheduled thread would fail this check, not the parser.
            fuzzCheck(started.duration(to: clock.now) < .milliseconds(200), "quantity \(text.debugDescription) took \(started.duration(to: clock.now))")
            #else
            _ = started
            #endif
        },
    ]

    /// The objects patches are applied to: a Pod and a Node as kubectl shows them.
    static let patchedObjects: [JSONValue] = [
        ["apiVersion": "v1", "kind": "Pod",
         "metadata": ["name": "web", "namespace": "default", "labels": ["app": "web"], "uid": "1",
                      "ownerReferences": [["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "2"]]],
         "spec": ["nodeName": "node-a",
                  "containers": [["name": "app", "image": "nginx", "ports": [["containerPort": 80]],
                                  "env": [["name": "A", "value": "1"]], "volumeMounts": [["name": "data", "mountPath": "/data"]]]],
                  "volumes": [["name": "data", "persistentVolumeClaim": ["claimName": "data"]]]],
         "status": ["phase": "Running", "conditions": [["type": "Ready", "status": "True"]]]],
        ["apiVersion": "v1", "kind": "Node",
         "metadata": ["name": "node-a", "labels": ["kubernetes.io/hostname": "node-a"], "uid": "3"],
         "spec": ["podCIDR": "10.0.0.0/24"],
         "status": ["addresses": [["type": "InternalIP", "address": "127.0.1.1"]],
                    "capacity": ["cpu": "2", "memory": "4Gi"], "conditions": [["type": "Ready", "status": "True"]]]],
    ]

    /// Decodes the input (after its first byte, which picks the object) as a patch and applies
    /// it; the result may not be larger than the object, the patch and the copy allowance.
    static func patchTarget(_ input: [UInt8], _ apply: (JSONValue, JSONValue) throws -> JSONValue) {
        guard input.count > 1, let patch = try? JSONValue(parsing: input.dropFirst()) else { return }
        let object = patchedObjects[Int(input[0]) % patchedObjects.count]
        guard let result = try? apply(patch, object) else { return }
        let size = (try? JSONEncoder().encode(result).count) ?? 0
        let bound = 4096 + 2 * input.count + JSONPatch.maxCopyBytes
        fuzzCheck(size <= bound, "a patch of \(input.count) bytes produced \(size) bytes")
    }
}

/// Whether some object in the JSON text `input` names a key twice (the fuzz target's only
/// allowed disagreement with Foundation).
private func hasDuplicateKeys(_ input: [UInt8]) -> Bool {
    // The writer writes each key once: a text that names one twice has more keys than the text
    // of what it read.
    guard let value = try? JSONValue(parsing: input) else { return false }
    return keyCount(input) != keyCount(value.jsonBytes)
}

/// How many strings of the JSON text are followed by ':' (its object keys).
private func keyCount(_ text: [UInt8]) -> Int {
    var count = 0, inString = false, escaped = false, index = 0
    while index < text.count {
        let byte = text[index]
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") {
                inString = false
                var next = index + 1
                while next < text.count, [0x20, 0x09, 0x0A, 0x0D].contains(text[next]) { next += 1 }
                if next < text.count, text[next] == UInt8(ascii: ":") { count += 1 }
            }
        } else if byte == UInt8(ascii: "\"") {
            inString = true
        }
        index += 1
    }
    return count
}

/// Equal trees, numbers compared by value (an integer and the Double of the same value match).
private func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.integer(let x), .number(let y)), (.number(let y), .integer(let x)): return Double(x) == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { sameJSON(value, $0) } ?? false }
    default: return a == b
    }
}

/// `value` with every `pattern` keyword removed, recursively.
func withoutPatterns(_ value: JSONValue) -> JSONValue {
    switch value {
    case .object(var members):
        members["pattern"] = nil
        for (key, child) in members { members[key] = withoutPatterns(child) }
        return .object(members)
    case .array(let elements):
        return .array(elements.map(withoutPatterns))
    default:
        return value
    }
}
