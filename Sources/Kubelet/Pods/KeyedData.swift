// The data of a ConfigMap or a Secret as a kubelet reads it (one GET, which node authorization
// allows for the objects its pods refer to): every key's bytes, `data` and `binaryData` of a
// ConfigMap, a Secret's base64 `data` decoded. For configMap and secret volumes and for env.
import APIClient
import ClusterAPI
import Foundation

enum KeyedData {
    /// The keys and bytes of ConfigMap (or, `secret`, Secret) `name`; nil when it does not exist.
    static func fetch(_ client: KubeClient, namespace: String, name: String, secret: Bool) async throws -> [String: Data]? {
        let resource = secret ? "secrets" : "configmaps"
        let response = try await client.send(.GET, "/api/v1/namespaces/\(namespace)/\(resource)/\(name)")
        if response.status.code == 404 { return nil }
        guard (200..<300).contains(response.status.code) else {
            throw KubeletError(.volume, "cannot read \(resource) \(namespace)/\(name): HTTP \(response.status.code) \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        let object = try JSONValue(parsing: response.body)
        var files: [String: Data] = [:]
        for (key, value) in object["data"]?.objectValue ?? [:] {
            guard let text = value.stringValue else { continue }
            files[key] = secret ? (Data(base64Encoded: text) ?? Data()) : Data(text.utf8)
        }
        for (key, value) in object["binaryData"]?.objectValue ?? [:] {
            if let text = value.stringValue, let bytes = Data(base64Encoded: text) { files[key] = bytes }
        }
        return files
    }
}

/// The ConfigMaps and Secrets a container's `env` (configMapKeyRef, secretKeyRef) and `envFrom`
/// name, read before its config is built (`ContainerBuilder` is synchronous). A missing object
/// is recorded as such: whether that is an error depends on `optional`.
struct EnvSources: Sendable {
    /// "configmap/<name>" or "secret/<name>" → its keys' values (nil: it does not exist).
    var objects: [String: [String: String]?] = [:]

    static func key(_ name: String, secret: Bool) -> String { (secret ? "secret/" : "configmap/") + name }

    static func fetch(for container: Container, namespace: String, client: KubeClient) async throws -> EnvSources {
        var wanted: [(name: String, secret: Bool)] = []
        for variable in container.env ?? [] {
            guard let json = variable.valueFrom, let source = try? json.decode(as: EnvVarSource.self) else { continue }
            if let ref = source.configMapKeyRef { wanted.append((ref.name ?? "", false)) }
            if let ref = source.secretKeyRef { wanted.append((ref.name ?? "", true)) }
        }
        for json in container.envFrom ?? [] {
            guard let source = try? json.decode(as: EnvFromSource.self) else { continue }
            if let ref = source.configMapRef { wanted.append((ref.name ?? "", false)) }
            if let ref = source.secretRef { wanted.append((ref.name ?? "", true)) }
        }
        var sources = EnvSources()
        for (name, secret) in wanted where sources.objects[key(name, secret: secret)] == nil {
            let data = try await KeyedData.fetch(client, namespace: namespace, name: name, secret: secret)
            sources.objects[key(name, secret: secret)] = .some(data.map { $0.mapValues { String(decoding: $0, as: UTF8.self) } })
        }
        return sources
    }

    /// The keys of an object, nil when it does not exist.
    func values(_ name: String, secret: Bool) -> [String: String]? {
        objects[Self.key(name, secret: secret)] ?? nil
    }
}
