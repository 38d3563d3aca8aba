// `pods/log` and `pods/exec`, proxied to the kubelet of the pod's node, as kube-apiserver does:
// the node's address is its InternalIP (else the first address) and the kubelet's port from
// `status.daemonEndpoints.kubeletEndpoint.Port`; the request goes over HTTPS with the kubelet
// client token (`pki/kubelet-client.token`, given to kubelets as --authentication-token-file).
// The kubelet's self-signed serving certificate is not verified (Kubernetes' default without
// --kubelet-certificate-authority). Logs are streamed through (`follow`); exec is a WebSocket
// (v5.channel.k8s.io) relayed message by message between kubectl and the kubelet.
import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import NIOSSL
import Synchronization

/// How the API server reaches kubelets.
public final class KubeletProxy: Sendable {
    private let state = Mutex<String?>(nil)

    public init() {}

    /// The bearer token presented to kubelets.
    public var token: String? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }

    var tls: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = ["http/1.1"]
        return configuration
    }
}

extension APIHandler {
    /// The kubelet serving the pod in `stored`: (host, port), or a Status error.
    func kubelet(of stored: ObjectStore.Stored, pod name: String, namespace: String) async throws(APIError) -> (String, Int) {
        let node = stored.object["spec"]?["nodeName"]?.stringValue ?? ""
        guard !node.isEmpty else {
            throw APIError.badRequest("pod \(name) is not scheduled to a node yet; wait until it is bound (kubectl get pod \(name) -o wide)")
        }
        let nodes = registry.lookup(group: "", version: "v1", resource: "nodes")!
        let object: JSONValue
        do {
            object = try await load(nodes, namespace: nil, name: node).object
        } catch {
            throw APIError(.serviceUnavailable, "pod \(namespace)/\(name) is on node \"\(node)\", which is not registered: its kubelet has not started")
        }
        let addresses = object["status"]?["addresses"]?.arrayValue ?? []
        let internalIP = addresses.first { $0["type"]?.stringValue == "InternalIP" } ?? addresses.first
        guard let host = internalIP?["address"]?.stringValue,
              let port = object["status"]?["daemonEndpoints"]?["kubeletEndpoint"]?["Port"]?.int64Value, port > 0, port < 65536 else {
            throw APIError(.serviceUnavailable, "node \"\(node)\" reports no kubelet address (status.addresses, status.daemonEndpoints); is its kubelet running?")
        }
        return (host, Int(port))
    }

    /// The container a request names, or the pod's only (or default) one.
    func container(_ query: [String: String], pod object: JSONValue, name: String) throws(APIError) -> String {
        let names = ((object["spec"]?["containers"]?.arrayValue ?? []) + (object["spec"]?["initContainers"]?.arrayValue ?? []))
            .compactMap { $0["name"]?.stringValue }
        if let wanted = query["container"], !wanted.isEmpty {
            guard names.contains(wanted) else {
                throw APIError.badRequest("container \(wanted) is not valid for pod \(name)")
            }
            return wanted
        }
        if let preferred = object["metadata"]?["annotations"]?["kubectl.kubernetes.io/default-container"]?.stringValue, names.contains(preferred) {
            return preferred
        }
        let app = (object["spec"]?["containers"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        guard app.count == 1 else {
            throw APIError.badRequest("a container name must be specified for pod \(name), choose one of: [\(app.joined(separator: " "))]")
        }
        return app[0]
    }

    /// `GET …/pods/{name}/log`: the kubelet's `/containerLogs`, streamed through.
    func podLog(_ c: RequestContext, _ info: ResourceInfo) async throws -> HTTPResponse {
        let namespace = c.attributes.namespace ?? "default"
        let name = c.attributes.name
        let stored = try await load(info, namespace: namespace, name: name)
        let container = try container(c.query, pod: stored.object, name: name)
        let (host, port) = try await kubelet(of: stored, pod: name, namespace: namespace)
        var query: [String: String] = [:]
        for key in ["follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"] { query[key] = c.query[key] }
        for key in ["tailLines", "sinceSeconds", "limitBytes"] {
            if let value = query[key], Int64(value) == nil || Int64(value)! < 0 {
                throw APIError.badRequest("\(key) \"\(value)\" is not valid: expected a non-negative integer")
            }
        }
        var headers: HTTPHeaders = ["Accept": "*/*"]
        if let token = kubelets.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let client: HTTPClient
        do {
            client = try HTTPClient(host: host, port: port, tls: kubelets.tls, timeout: .seconds(30))
        } catch {
            throw APIError.internalError("cannot reach the kubelet at \(host):\(port): \(error)")
        }
        let path = "/containerLogs/\(Self.escape(namespace))/\(Self.escape(name))/\(Self.escape(container))"
        let response: HTTPStreamingResponse
        do {
            response = try await client.stream(HTTPRequest(method: .GET, path: path, query: query, headers: headers))
        } catch {
            throw APIError(.serviceUnavailable, "Get \"https://\(host):\(port)\(path)\": \(error)")
        }
        guard response.status == .ok else {
            var body = Data()
            for try await chunk in response.body { body.append(chunk); if body.count > 4096 { break } }
            let message = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw response.status == .notFound ? APIError(.notFound, message) : APIError.badRequest(message)
        }
        return .streaming(headers: ["Content-Type": "text/plain"]) { writer in
            for try await chunk in response.body { try await writer.write(chunk) }
        }
    }

    /// `…/pods/{name}/exec` asked without a WebSocket upgrade.
    func podExecWithoutUpgrade() throws -> HTTPResponse {
        throw APIError.badRequest("Upgrade request required")
    }

    /// The API server's WebSocket route: `pods/{name}/exec` of an authorized user, relayed to
    /// the pod's kubelet. nil lets the request through to the HTTP handler, which answers it
    /// with its error (unauthorized, forbidden, not found, …).
    public func webSocket(_ request: HTTPRequest) async -> WebSocketAcceptance? {
        let query = parseFormQuery(request.rawQuery)
        let attributes = RequestAttributes.parse(method: request.method.rawValue, segments: request.pathSegments, path: request.path, query: query)
        guard attributes.resource == "pods", attributes.group == "", attributes.subresource == "exec", !attributes.name.isEmpty,
              let user = try? authenticate(request) else { return nil }
        var execAttributes = attributes
        execAttributes.verb = "create"
        guard case .allow = authorizer.authorize(user, execAttributes),
              let info = registry.lookup(group: "", version: "v1", resource: "pods") else { return nil }
        let namespace = attributes.namespace ?? "default"
        guard let stored = try? await load(info, namespace: namespace, name: attributes.name),
              (try? container(query, pod: stored.object, name: attributes.name)) != nil,
              let (host, port) = try? await kubelet(of: stored, pod: attributes.name, namespace: namespace) else { return nil }
        let container = (try? container(query, pod: stored.object, name: attributes.name)) ?? ""
        let offered = (request.headers.first(name: "Sec-WebSocket-Protocol") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let subprotocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"].first(where: offered.contains) else { return nil }
        let kubeletQuery = request.rawQuery.split(separator: "&").filter { !$0.hasPrefix("container=") }.joined(separator: "&")
        let uri = "/exec/\(Self.escape(namespace))/\(Self.escape(attributes.name))/\(Self.escape(container))?\(kubeletQuery)"
        var kubeletHeaders: HTTPHeaders = [:]
        if let token = kubelets.token { kubeletHeaders.add(name: "Authorization", value: "Bearer \(token)") }
        let headers = kubeletHeaders
        let tls = kubelets.tls
        let logger = self.logger
        return WebSocketAcceptance(subprotocol: subprotocol) { client in
            do {
                try await WebSocketClient.connect(host: host, port: port, tls: tls, uri: uri, headers: headers, subprotocols: [subprotocol]) { kubelet in
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await message in client.messages { try? await kubelet.send(message.bytes, text: message.isText) }
                            await kubelet.close()
                        }
                        group.addTask {
                            for await message in kubelet.messages { try? await client.send(message.bytes, text: message.isText) }
                        }
                        await group.next()
                        group.cancelAll()
                    }
                }
            } catch {
                // The kubelet answers but refuses the upgrade when the container is not running
                // (yet, or any more): said as Kubernetes' kubelet says it.
                let refused = error is WebSocketClient.Failure
                let message = refused ? "unable to upgrade connection: container not found (\\\"\(container)\\\")"
                    : "cannot reach the kubelet of the pod's node at \(host):\(port)"
                logger.info("exec: the kubelet did not take it", metadata: ["kubelet": "\(host):\(port)", "error": "\(error)"])
                let status = "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"\(message)\",\"reason\":\"\(refused ? "BadRequest" : "InternalError")\",\"code\":\(refused ? 400 : 500)}"
                try? await client.send([3] + Array(status.utf8))
            }
        }
    }

    static func escape(_ segment: String) -> String {
        segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? segment
    }
}
