// Where the API server is and how to prove who we are: a server URL, the CA that signed its
// certificate, and a bearer token — from explicit values or from a kubeconfig file.
import ClusterAPI
import Foundation
import Yams

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

    /// Reads the current context of a kubeconfig (YAML or JSON, as kubectl reads it): its
    /// cluster's `server` and `certificate-authority-data` (or `certificate-authority`), and
    /// its user's `token` (or `tokenFile`).
    public static func kubeconfig(at path: String) throws -> Connection {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw APIError.configuration("cannot read the kubeconfig \(path)")
        }
        let document: Kubeconfig
        do {
            document = try YAMLDecoder().decode(Kubeconfig.self, from: text)
        } catch {
            throw APIError.configuration("\(path) is not a kubeconfig: \(error)")
        }
        let contextName = document.currentContext
        guard let context = document.contexts.first(where: { $0.name == contextName }) ?? document.contexts.first else {
            throw APIError.configuration("\(path) has no context \(contextName ?? "") naming a cluster and a user")
        }
        guard let cluster = document.clusters.first(where: { $0.name == context.context.cluster })?.cluster,
              let url = URL(string: cluster.server), url.host != nil else {
            throw APIError.configuration("\(path): cluster \(context.context.cluster) has no server URL")
        }
        var connection = Connection(server: url)
        if let data = cluster.certificateAuthorityData {
            guard let pem = Data(base64Encoded: data) else { throw APIError.configuration("\(path): certificate-authority-data is not base64") }
            connection.certificateAuthorityPEM = Array(pem)
        } else if let file = cluster.certificateAuthority {
            guard let pem = FileManager.default.contents(atPath: file) else { throw APIError.configuration("\(path): cannot read \(file)") }
            connection.certificateAuthorityPEM = Array(pem)
        }
        if let user = document.users.first(where: { $0.name == context.context.user })?.user {
            if let token = user.token {
                connection.token = token
            } else if let file = user.tokenFile {
                guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw APIError.configuration("\(path): cannot read the tokenFile \(file)")
                }
                connection.token = token.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return connection
    }
}
