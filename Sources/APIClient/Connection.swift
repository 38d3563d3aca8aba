// Where the API server is and how to prove who we are: a server URL, the CA that signed its
// certificate, and a bearer token — from explicit values or from a kubeconfig file.
import Foundation

public struct Connection: Sendable {
    /// "https://127.0.0.1:6443" (or http:// for a plain server).
    public var server: URL
    /// PEM of the CA that signed the server's certificate; nil trusts the system's roots.
    public var certificateAuthorityPEM: [UInt8]?
    public var token: String?
    /// The per-request timeout (watches: only until the response head).
    public var timeout: Duration = .seconds(30)

    public init(server: URL, certificateAuthorityPEM: [UInt8]? = nil, token: String? = nil) {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.token = token
    }

    /// Reads the current context of a kubeconfig: its cluster's `server` and
    /// `certificate-authority-data` (or `certificate-authority`), and its user's `token` (or
    /// `tokenFile`). Understands the block YAML that kubeconfigs are written in and JSON.
    public static func kubeconfig(at path: String) throws -> Connection {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw APIError.configuration("cannot read the kubeconfig \(path)")
        }
        let document = try KubeconfigDocument(text, path: path)
        let contextName = document.currentContext
        guard let context = document.named("contexts", contextName ?? "") ?? document.list("contexts").first,
              let clusterName = context["context.cluster"], let userName = context["context.user"] else {
            throw APIError.configuration("\(path) has no context \(contextName ?? "") naming a cluster and a user")
        }
        guard let cluster = document.named("clusters", clusterName), let server = cluster["cluster.server"], let url = URL(string: server) else {
            throw APIError.configuration("\(path): cluster \(clusterName) has no server URL")
        }
        var connection = Connection(server: url)
        if let data = cluster["cluster.certificate-authority-data"] {
            guard let pem = Data(base64Encoded: data) else { throw APIError.configuration("\(path): certificate-authority-data is not base64") }
            connection.certificateAuthorityPEM = Array(pem)
        } else if let file = cluster["cluster.certificate-authority"] {
            guard let pem = FileManager.default.contents(atPath: file) else { throw APIError.configuration("\(path): cannot read \(file)") }
            connection.certificateAuthorityPEM = Array(pem)
        }
        if let user = document.named("users", userName) {
            if let token = user["user.token"] {
                connection.token = token
            } else if let file = user["user.tokenFile"] {
                connection.token = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return connection
    }
}

/// The part of a kubeconfig the client needs: `current-context` and the named lists
/// `clusters`, `contexts`, `users`, each entry flattened to "section.key" → value.
struct KubeconfigDocument {
    let currentContext: String?
    private let lists: [String: [[String: String]]]

    init(_ text: String, path: String) throws {
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            (currentContext, lists) = try Self.parseJSON(Data(text.utf8), path: path)
        } else {
            (currentContext, lists) = Self.parseYAML(text)
        }
    }

    /// The block YAML subset kubeconfigs use: top-level keys, lists of "- name: …" entries with
    /// one level of nested mappings.
    private static func parseYAML(_ text: String) -> (String?, [String: [[String: String]]]) {
        var currentContext: String?
        var lists: [String: [[String: String]]] = [:]
        var list: String?
        var entry: [String: String]?
        var entryIndent = 0
        var section: String?
        func flush() {
            if let list, let entry { lists[list, default: []].append(entry) }
            entry = nil
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            var indent = line.prefix { $0 == " " }.count
            var content = line.trimmingCharacters(in: .whitespaces)
            if content.hasPrefix("- "), list != nil {
                // A new entry of the current list; its keys line up after the dash.
                flush()
                entry = [:]
                section = nil
                content = String(content.dropFirst(2)).trimmingCharacters(in: .whitespaces)
                indent += 2
                entryIndent = indent
            } else if indent == 0 {
                flush()
                section = nil
                let (key, value) = pair(content)
                if key == "current-context" { currentContext = value }
                list = ["clusters", "contexts", "users"].contains(key) ? key : nil
                continue
            }
            guard entry != nil else { continue }
            let (key, value) = pair(content)
            if indent <= entryIndent { section = nil }
            if let value {
                entry?[section.map { "\($0).\(key)" } ?? key] = value
            } else if indent <= entryIndent {
                section = key
            }
        }
        flush()
        return (currentContext, lists)
    }

    private static func parseJSON(_ json: Data, path: String) throws -> (String?, [String: [[String: String]]]) {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw APIError.configuration("\(path) is not a kubeconfig")
        }
        var lists: [String: [[String: String]]] = [:]
        let currentContext = object["current-context"] as? String
        for name in ["clusters", "contexts", "users"] {
            for item in object[name] as? [[String: Any]] ?? [] {
                var entry: [String: String] = [:]
                for (key, value) in item {
                    if let text = value as? String { entry[key] = text }
                    for (inner, innerValue) in value as? [String: Any] ?? [:] {
                        if let text = innerValue as? String { entry["\(key).\(inner)"] = text }
                    }
                }
                lists[name, default: []].append(entry)
            }
        }
        return (currentContext, lists)
    }

    func list(_ name: String) -> [[String: String]] { lists[name] ?? [] }

    func named(_ list: String, _ name: String) -> [String: String]? {
        lists[list]?.first { $0["name"] == name }
    }

    /// "key: value" → (key, value without quotes); "key:" → (key, nil).
    private static func pair(_ content: String) -> (String, String?) {
        guard let colon = content.firstIndex(of: ":") else { return (content, nil) }
        let key = String(content[..<colon]).trimmingCharacters(in: .whitespaces)
        var value = String(content[content.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        if value.isEmpty { return (key, nil) }
        if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
            value = String(value.dropFirst().dropLast())
        }
        return (key, value)
    }
}
