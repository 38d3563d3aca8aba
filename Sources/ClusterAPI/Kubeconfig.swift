// A kubeconfig (clientcmd's `Config`, apiVersion v1): where the API server is, the CA that
// signed its certificate, and who the client is. The API server writes one as JSON (kubectl
// reads JSON and YAML alike); `APIClient` reads the user's, in either form.

/// The parts of a kubeconfig Ballast reads and writes; other fields are ignored on read.
public struct Kubeconfig: Codable, Sendable, Equatable {
    public var apiVersion = "v1"
    public var kind = "Config"
    public var clusters: [NamedCluster] = []
    public var users: [NamedUser] = []
    public var contexts: [NamedContext] = []
    public var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case apiVersion, kind, clusters, users, contexts
        case currentContext = "current-context"
    }

    public init(clusters: [NamedCluster] = [], users: [NamedUser] = [], contexts: [NamedContext] = [], currentContext: String? = nil) {
        self.clusters = clusters
        self.users = users
        self.contexts = contexts
        self.currentContext = currentContext
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? "v1"
        kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? "Config"
        clusters = try container.decodeIfPresent([NamedCluster].self, forKey: .clusters) ?? []
        users = try container.decodeIfPresent([NamedUser].self, forKey: .users) ?? []
        contexts = try container.decodeIfPresent([NamedContext].self, forKey: .contexts) ?? []
        currentContext = try container.decodeIfPresent(String.self, forKey: .currentContext)
    }

    /// A kubeconfig of one cluster, one user with a bearer token, and the context joining them.
    public static func single(server: String, certificateAuthorityData: String?, token: String,
                              name: String = "ballast", user: String = "admin", namespace: String = "default") -> Kubeconfig {
        Kubeconfig(clusters: [NamedCluster(name: name, cluster: Cluster(server: server, certificateAuthorityData: certificateAuthorityData))],
                   users: [NamedUser(name: user, user: AuthInfo(token: token))],
                   contexts: [NamedContext(name: name, context: Context(cluster: name, user: user, namespace: namespace))],
                   currentContext: name)
    }

    public struct NamedCluster: Codable, Sendable, Equatable {
        public var name: String
        public var cluster: Cluster
        public init(name: String, cluster: Cluster) {
            self.name = name
            self.cluster = cluster
        }
    }

    public struct Cluster: Codable, Sendable, Equatable {
        public var server: String
        /// PEM of the CA, base64.
        public var certificateAuthorityData: String?
        /// A file holding the CA's PEM.
        public var certificateAuthority: String?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthorityData = "certificate-authority-data"
            case certificateAuthority = "certificate-authority"
        }

        public init(server: String, certificateAuthorityData: String? = nil, certificateAuthority: String? = nil) {
            self.server = server
            self.certificateAuthorityData = certificateAuthorityData
            self.certificateAuthority = certificateAuthority
        }
    }

    public struct NamedUser: Codable, Sendable, Equatable {
        public var name: String
        public var user: AuthInfo
        public init(name: String, user: AuthInfo) {
            self.name = name
            self.user = user
        }
    }

    public struct AuthInfo: Codable, Sendable, Equatable {
        public var token: String?
        public var tokenFile: String?
        public init(token: String? = nil, tokenFile: String? = nil) {
            self.token = token
            self.tokenFile = tokenFile
        }
    }

    public struct NamedContext: Codable, Sendable, Equatable {
        public var name: String
        public var context: Context
        public init(name: String, context: Context) {
            self.name = name
            self.context = context
        }
    }

    public struct Context: Codable, Sendable, Equatable {
        public var cluster: String
        public var user: String
        public var namespace: String?
        public init(cluster: String, user: String, namespace: String? = nil) {
            self.cluster = cluster
            self.user = user
            self.namespace = namespace
        }
    }
}
