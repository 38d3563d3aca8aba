import ClusterAPI
import Foundation
import Primitives

// Kubernetes' protobuf envelope, as `kubectl create namespace` sends it:
//
//   "k8s\0" magic | runtime.Unknown {
//       1: TypeMeta { 1: apiVersion, 2: kind }
//       2: raw        -> the object, e.g. Namespace { 1: ObjectMeta, 2: spec, 3: status }
//       3: contentEncoding, 4: contentType }
//   ObjectMeta { 1: name, 2: generateName, 3: namespace,
//                11: labels (map entries {1: key, 2: value}), 12: annotations (same) }
//
// Decoded: the type, the object's metadata, and the fields `kubectl create
// configmap|secret|service|deployment|job` fill in (ConfigMap data, binaryData, immutable; Secret
// data, type, stringData, immutable; a Service's spec; a Deployment's or Job's spec down to its
// containers' name, image, command, args and ports). Any other content is refused (415) with a message
// that says to send JSON.

/// Decodes the protobuf bodies kubectl's `create <generator>` commands send.
package enum ProtobufBody {
    package static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    package struct Failure: Error {
        package let message: String
        /// A well-formed body this decoder does not handle (415); otherwise the body is malformed (400).
        var unsupported = false
    }

    /// The object as JSON (`apiVersion`, `kind`, `metadata`).
    package static func decode(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        guard bytes.starts(with: magic) else { throw Failure(message: "protobuf body without the k8s\\0 envelope") }
        var unknown = Reader(bytes: bytes, position: 4)
        var apiVersion = "", kind = ""
        var raw: [UInt8] = []
        while let (field, value) = try unknown.next() {
            switch (field, value) {
            case (1, .bytes(let typeMeta)):
                var r = Reader(bytes: typeMeta, position: 0)
                while let (f, v) = try r.next() {
                    if case .bytes(let s) = v {
                        if f == 1 { apiVersion = String(decoding: s, as: UTF8.self) }
                        if f == 2 { kind = String(decoding: s, as: UTF8.self) }
                    }
                }
            case (2, .bytes(let r)): raw = r
            default: break
            }
        }
        var object: JSONValue = ["apiVersion": .string(apiVersion), "kind": .string(kind)]
        var maps: [String: [String: JSONValue]] = [:]
        var reader = Reader(bytes: raw, position: 0)
        while let (field, value) = try reader.next() {
            switch (kind, field, value) {
            case (_, 1, .bytes(let payload)): object["metadata"] = try decodeObjectMeta(payload)
            case ("Namespace", _, _): break  // spec and status: what the server sets itself
            // ConfigMap { 2: data map<string, string>, 3: binaryData map<string, bytes>, 4: immutable }
            case ("ConfigMap", 2, .bytes(let entry)): try addEntry(entry, to: &maps, "data", binary: false)
            case ("ConfigMap", 3, .bytes(let entry)): try addEntry(entry, to: &maps, "binaryData", binary: true)
            case ("ConfigMap", 4, .varint(let flag)), ("Secret", 5, .varint(let flag)): object["immutable"] = .bool(flag != 0)
            // Secret { 2: data map<string, bytes>, 3: type, 4: stringData map<string, string>, 5: immutable }
            case ("Secret", 2, .bytes(let entry)): try addEntry(entry, to: &maps, "data", binary: true)
            case ("Secret", 3, .bytes(let type)): object["type"] = .string(String(decoding: type, as: UTF8.self))
            case ("Secret", 4, .bytes(let entry)): try addEntry(entry, to: &maps, "stringData", binary: false)
            // Deployment { 2: spec }, Job { 2: spec }: what `kubectl create deployment|job` fills in.
            case ("Deployment", 2, .bytes(let payload)): object["spec"] = try Self.decode(payload, Schema.deploymentSpec, path: "spec")
            case ("Job", 2, .bytes(let payload)): object["spec"] = try Self.decode(payload, Schema.jobSpec, path: "spec")
            // Service { 2: spec, 3: status }: what `kubectl create service` fills in.
            case ("Service", 2, .bytes(let payload)): object["spec"] = try Self.decode(payload, Schema.serviceSpec, path: "spec")
            case ("Deployment", 3, _), ("Job", 3, _), ("Service", 3, _): break  // status: what the controllers write
            case (_, _, .bytes(let payload)) where payload.isEmpty: break
            default:
                throw Failure(message: "this server decodes protobuf bodies of Namespaces, ConfigMaps, Secrets, Services, Deployments and Jobs only; send the \(kind) as JSON (Content-Type: application/json)",
                              unsupported: true)
            }
        }
        for (name, entries) in maps { object[name] = .object(entries) }
        return object
    }

    // MARK: Workload specs

    /// The fields of a message this decoder knows, by field number (from k8s.io/api's
    /// generated.proto). A field it does not know makes the body unsupported (415): nothing is
    /// dropped silently.
    indirect enum Field: Sendable {
        /// Scalars: absent when empty, false or zero (gogo-protobuf writes Kubernetes' non-pointer
        /// fields even then; JSON omits them). `int32` keeps a zero: pointer fields (replicas) are
        /// written only when set, and 0 then means 0.
        case string, int32, int32OmitZero, bool, stringMap, strings
        /// `intstr.IntOrString { 1: type (0 int, 1 string), 2: intVal, 3: strVal }` as a JSON number or string.
        case intOrString
        case message(Schema)
        case messages(Schema)
        case objectMeta
    }

    struct Schema: Sendable {
        let fields: [Int: (name: String, type: Field)]

        static let containerPort = Schema(fields: [1: ("name", .string), 2: ("hostPort", .int32OmitZero), 3: ("containerPort", .int32),
                                                   4: ("protocol", .string), 5: ("hostIP", .string)])
        static let resources = Schema(fields: [:])
        static let container = Schema(fields: [1: ("name", .string), 2: ("image", .string), 3: ("command", .strings),
                                               4: ("args", .strings), 5: ("workingDir", .string),
                                               6: ("ports", .messages(containerPort)), 8: ("resources", .message(resources)),
                                               13: ("terminationMessagePath", .string), 14: ("imagePullPolicy", .string),
                                               16: ("stdin", .bool), 17: ("stdinOnce", .bool), 18: ("tty", .bool),
                                               20: ("terminationMessagePolicy", .string)])
        static let podSpec = Schema(fields: [2: ("containers", .messages(container)), 3: ("restartPolicy", .string),
                                             4: ("terminationGracePeriodSeconds", .int32), 6: ("dnsPolicy", .string),
                                             8: ("serviceAccountName", .string), 9: ("serviceAccount", .string), 10: ("nodeName", .string),
                                             11: ("hostNetwork", .bool), 12: ("hostPID", .bool), 13: ("hostIPC", .bool),
                                             16: ("hostname", .string), 17: ("subdomain", .string), 19: ("schedulerName", .string),
                                             24: ("priorityClassName", .string)])
        static let template = Schema(fields: [1: ("metadata", .objectMeta), 2: ("spec", .message(podSpec))])
        static let labelSelector = Schema(fields: [1: ("matchLabels", .stringMap)])
        static let deploymentStrategy = Schema(fields: [1: ("type", .string)])
        static let deploymentSpec = Schema(fields: [1: ("replicas", .int32), 2: ("selector", .message(labelSelector)),
                                                    3: ("template", .message(template)), 4: ("strategy", .message(deploymentStrategy)),
                                                    5: ("minReadySeconds", .int32OmitZero), 6: ("revisionHistoryLimit", .int32),
                                                    7: ("paused", .bool), 9: ("progressDeadlineSeconds", .int32)])
        // k8s.io/api core/v1 ServicePort and ServiceSpec (pointer fields are written only when set).
        static let servicePort = Schema(fields: [1: ("name", .string), 2: ("protocol", .string), 3: ("port", .int32),
                                                 4: ("targetPort", .intOrString), 5: ("nodePort", .int32OmitZero), 6: ("appProtocol", .string)])
        static let clientIPConfig = Schema(fields: [1: ("timeoutSeconds", .int32)])
        static let sessionAffinityConfig = Schema(fields: [1: ("clientIP", .message(clientIPConfig))])
        static let serviceSpec = Schema(fields: [1: ("ports", .messages(servicePort)), 2: ("selector", .stringMap), 3: ("clusterIP", .string),
                                                 4: ("type", .string), 5: ("externalIPs", .strings), 7: ("sessionAffinity", .string),
                                                 8: ("loadBalancerIP", .string), 9: ("loadBalancerSourceRanges", .strings),
                                                 10: ("externalName", .string), 11: ("externalTrafficPolicy", .string),
                                                 12: ("healthCheckNodePort", .int32OmitZero), 13: ("publishNotReadyAddresses", .bool),
                                                 14: ("sessionAffinityConfig", .message(sessionAffinityConfig)), 17: ("ipFamilyPolicy", .string),
                                                 18: ("clusterIPs", .strings), 19: ("ipFamilies", .strings),
                                                 20: ("allocateLoadBalancerNodePorts", .bool), 21: ("loadBalancerClass", .string),
                                                 22: ("internalTrafficPolicy", .string)])
        static let jobSpec = Schema(fields: [1: ("parallelism", .int32), 2: ("completions", .int32), 4: ("selector", .message(labelSelector)),
                                             5: ("manualSelector", .bool), 6: ("template", .message(template)), 7: ("backoffLimit", .int32),
                                             8: ("ttlSecondsAfterFinished", .int32), 10: ("suspend", .bool)])
    }

    /// One message as JSON, by its schema; `path` names it in errors.
    static func decode(_ bytes: [UInt8], _ schema: Schema, path: String) throws(Failure) -> JSONValue {
        var object: [String: JSONValue] = [:]
        var reader = Reader(bytes: bytes, position: 0)
        while let (field, value) = try reader.next() {
            guard let (name, type) = schema.fields[field] else {
                if case .bytes(let payload) = value, payload.isEmpty { continue }
                throw Failure(message: "this server does not decode field \(field) of \(path) in protobuf bodies; send the object as JSON (Content-Type: application/json)",
                              unsupported: true)
            }
            switch (type, value) {
            case (.string, .bytes(let text)): if !text.isEmpty { object[name] = .string(String(decoding: text, as: UTF8.self)) }
            case (.int32, .varint(let number)): object[name] = .integer(Int64(Int32(truncatingIfNeeded: number)))
            case (.int32OmitZero, .varint(let number)): if number != 0 { object[name] = .integer(Int64(Int32(truncatingIfNeeded: number))) }
            case (.bool, .varint(let flag)): if flag != 0 { object[name] = .bool(true) }
            case (.strings, .bytes(let text)): object[name] = .array((object[name]?.arrayValue ?? []) + [.string(String(decoding: text, as: UTF8.self))])
            case (.stringMap, .bytes(let entry)):
                let (key, value) = try mapEntry(entry)
                var map = object[name]?.objectValue ?? [:]
                map[key] = .string(String(decoding: value, as: UTF8.self))
                object[name] = .object(map)
            case (.message(let inner), .bytes(let payload)): object[name] = try decode(payload, inner, path: path + "." + name)
            case (.messages(let inner), .bytes(let payload)):
                object[name] = .array((object[name]?.arrayValue ?? []) + [try decode(payload, inner, path: path + "." + name)])
            case (.objectMeta, .bytes(let payload)): object[name] = try decodeObjectMeta(payload)
            case (.intOrString, .bytes(let payload)):
                var inner = Reader(bytes: payload, position: 0)
                var isString = false, number: Int64 = 0, text = ""
                while let (f, v) = try inner.next() {
                    switch (f, v) {
                    case (1, .varint(let type)): isString = type == 1
                    case (2, .varint(let n)): number = Int64(Int32(truncatingIfNeeded: n))
                    case (3, .bytes(let s)): text = String(decoding: s, as: UTF8.self)
                    default: throw Failure(message: "protobuf field \(f) of \(path).\(name) is not part of an IntOrString")
                    }
                }
                object[name] = isString ? .string(text) : .integer(number)
            default: throw Failure(message: "protobuf field \(field) of \(path) has the wrong wire type")
            }
        }
        return .object(object)
    }

    /// A map entry { 1: key, 2: value }.
    static func mapEntry(_ bytes: [UInt8]) throws(Failure) -> (key: String, value: [UInt8]) {
        var entry = Reader(bytes: bytes, position: 0)
        var key = "", value: [UInt8] = []
        while let (f, v) = try entry.next() {
            if case .bytes(let s) = v {
                if f == 1 { key = String(decoding: s, as: UTF8.self) } else if f == 2 { value = s }
            }
        }
        return (key, value)
    }

    /// A map entry into `maps[name]`: the value as a string, or base64 when `binary`.
    static func addEntry(_ bytes: [UInt8], to maps: inout [String: [String: JSONValue]], _ name: String, binary: Bool) throws(Failure) {
        let (key, value) = try mapEntry(bytes)
        maps[name, default: [:]][key] = .string(binary ? Data(value).base64EncodedString() : String(decoding: value, as: UTF8.self))
    }

    static func decodeObjectMeta(_ bytes: [UInt8]) throws(Failure) -> JSONValue {
        var meta: [String: JSONValue] = [:]
        var labels: [String: JSONValue] = [:], annotations: [String: JSONValue] = [:]
        var r = Reader(bytes: bytes, position: 0)
        while let (field, value) = try r.next() {
            guard case .bytes(let payload) = value else { continue }
            switch field {
            case 1: meta["name"] = .string(String(decoding: payload, as: UTF8.self))
            case 2: meta["generateName"] = .string(String(decoding: payload, as: UTF8.self))
            case 3: meta["namespace"] = .string(String(decoding: payload, as: UTF8.self))
            case 11, 12:
                let (key, bytes) = try mapEntry(payload)
                let value = JSONValue.string(String(decoding: bytes, as: UTF8.self))
                if field == 11 { labels[key] = value } else { annotations[key] = value }
            default: break
            }
        }
        if !labels.isEmpty { meta["labels"] = .object(labels) }
        if !annotations.isEmpty { meta["annotations"] = .object(annotations) }
        for (k, v) in meta where v.stringValue == "" { meta[k] = nil }
        return .object(meta)
    }

    enum Value { case varint(UInt64), bytes([UInt8]), fixed }

    struct Reader {
        let bytes: [UInt8]
        var position: Int

        mutating func varint() throws(Failure) -> UInt64 {
            var at = position
            guard let value = bytes.withUnsafeBytes({ readVarint($0, at: &at) }) else {
                throw Failure(message: "truncated protobuf varint")
            }
            position = at
            return value
        }

        mutating func skip(_ count: Int, field: Int) throws(Failure) {
            guard count <= bytes.count - position else { throw Failure(message: "truncated protobuf field \(field)") }
            position += count
        }

        mutating func next() throws(Failure) -> (Int, Value)? {
            guard position < bytes.count else { return nil }
            let tag = try varint()
            let field = Int(tag >> 3)
            switch tag & 7 {
            case 0: return (field, .varint(try varint()))
            case 1:
                try skip(8, field: field)
                return (field, .fixed)
            case 2:
                // Compared as unsigned before any conversion: a 10-byte varint length is up to 2^64-1.
                let length = try varint()
                guard length <= UInt64(bytes.count - position) else {
                    throw Failure(message: "truncated protobuf field \(field): \(length) bytes declared, \(bytes.count - position) left")
                }
                let start = position
                position += Int(length)
                return (field, .bytes(Array(bytes[start..<position])))
            case 5:
                try skip(4, field: field)
                return (field, .fixed)
            default:
                throw Failure(message: "unsupported protobuf wire type \(tag & 7) in field \(field)")
            }
        }
    }
}
