import ClusterAPI
import Foundation
import HTTPKit
import Logging
import ServiceLifecycle
import MVCCStore
import NIOCore
import NIOSSL
import Synchronization

/// How to run an API server.
public struct APIServerOptions: Sendable {
    /// Holds pki/, admin.kubeconfig and (for the embedded store) store/.
    public var dataDir: String
    public var bindAddress = "127.0.0.1"
    /// 0: the kernel picks (tests).
    public var securePort = 6443
    /// `--token-auth-file`; the generated admin token works besides.
    public var tokenAuthFile: String?
    /// Plain HTTP instead of HTTPS (debugging only).
    public var insecureHTTP = false
    /// History kept for watches: every interval, the store is compacted to the revision
    /// it had one interval earlier (Kubernetes: 5 minutes).
    public var compactionInterval: Duration = .seconds(300)
    public var requestTimeout: Duration = .seconds(60)
    public var maxBodyBytes = 3 << 20
    /// `--max-requests-inflight`: read-only requests served at once (0: no limit).
    public var maxRequestsInflight = 400
    /// `--max-mutating-requests-inflight`: mutating requests served at once (0: no limit).
    public var maxMutatingRequestsInflight = 200
    /// The queue of each priority level and kind when its seats are taken (`InflightLimiter`).
    public var inflightQueue = InflightQueueLimits()
    /// Connection bounds of the HTTPS server (`maxBodyBytes` above wins over the one in here).
    public var http = HTTPServerLimits()
    /// How far a watch's client may fall behind before the watch is closed.
    public var watchBuffer = WatchBufferLimits()
    /// The watch cache's windows and bookmark interval.
    public var watchCache = WatchCacheOptions()
    /// The token presented to kubelets (`pods/log`, `pods/exec`); nil: `pki/kubelet-client.token`,
    /// generated on first start (give it to kubelets as --authentication-token-file).
    public var kubeletClientTokenFile: String?
    /// Admission plugins turned off (`StorageAdmission.plugins`).
    public var disabledAdmissionPlugins: Set<String> = []
    /// `--service-cluster-ip-range` and `--service-node-port-range`.
    public var serviceNetwork = ServiceNetwork.standard
    /// How often the Service allocations are repaired and the `kubernetes` Service checked
    /// (Kubernetes: 3 minutes for the repair, 10 s for the Service).
    public var serviceRepairInterval: Duration = .seconds(60)
    /// Repair runs an allocation must be seen without a Service before it is freed.
    public var serviceLeakRepairs = 3

    public init(dataDir: String) { self.dataDir = dataDir }
}

/// The Kubernetes API server: REST and watch over a `KeyValueStore`, HTTPS with a
/// generated CA, bearer tokens, node authorization. `start` binds and writes
/// `DATA_DIR/admin.kubeconfig`; `run` serves until `shutdown`.
public final class APIServer: Sendable {
    public let handler: APIHandler
    public let options: APIServerOptions
    private let http: HTTPServer
    private let logger: Logger
    private let compactor: Task<Void, Never>
    private let serviceMaintenance: Task<Void, Never>
    /// The admin's bearer token (also in admin.kubeconfig).
    public let adminToken: String
    public let kubeconfigPath: String

    public var port: Int { http.port }

    private init(handler: APIHandler, options: APIServerOptions, http: HTTPServer, logger: Logger,
                 compactor: Task<Void, Never>, serviceMaintenance: Task<Void, Never>, adminToken: String, kubeconfigPath: String) {
        self.handler = handler
        self.options = options
        self.http = http
        self.logger = logger
        self.compactor = compactor
        self.serviceMaintenance = serviceMaintenance
        self.adminToken = adminToken
        self.kubeconfigPath = kubeconfigPath
    }

    public static func start(options: APIServerOptions, store kv: any KeyValueStore, logger: Logger) async throws -> APIServer {
        try SecretFiles.makePrivateDirectory(options.dataDir)
        let pkiDir = options.dataDir + "/pki"
        try SecretFiles.makePrivateDirectory(pkiDir)

        var authenticator = try options.tokenAuthFile.map { try TokenAuthenticator.load(file: $0) } ?? TokenAuthenticator()
        let adminToken = try loadOrCreateAdminToken(pkiDir + "/admin.token")
        authenticator.add(token: adminToken, user: UserInfo(name: "admin", uid: "admin", groups: ["system:masters"]))

        var ips = ["127.0.0.1"]
        if options.bindAddress != "0.0.0.0", options.bindAddress != "127.0.0.1", PKI.ipv4Bytes(options.bindAddress) != nil {
            ips.append(options.bindAddress)
        }
        let store = ObjectStore(kv)
        let clientHost = options.bindAddress == "0.0.0.0" ? "127.0.0.1" : options.bindAddress
        let box = HandlerBox()
        var initializer: HTTPChannelInitializer?
        var caPEM = ""
        if !options.insecureHTTP {
            let pki = try PKI.loadOrCreate(directory: pkiDir, ipAddresses: ips)
            caPEM = pki.caCertificatePEM
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(pki.servingCertificatePEM.utf8)).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(pki.servingKeyPEM.utf8), format: .pem)))
            tls.applicationProtocols = ["http/1.1"]  // kubectl would speak HTTP/2 if offered
            tls.minimumTLSVersion = .tlsv12
            let context = try NIOSSLContext(configuration: tls)
            initializer = { channel in
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
            }
        }
        var limits = options.http
        limits.maxBodyBytes = options.maxBodyBytes
        let http = try await HTTPServer(host: options.bindAddress, port: options.securePort, limits: limits,
                                        logger: logger, channelInitializer: initializer,
                                        tooLargeResponse: APIHandler.tooLargeResponse(limit: options.maxBodyBytes),
                                        headCheck: { request in box.handler.map { $0.checkHead(request) } ?? HandlerBox.starting },
                                        webSocket: { request in await box.handler?.webSocket(request) }) { request in
            guard let handler = box.handler else { return HandlerBox.starting }
            return await handler.handle(request)
        }
        let handler = APIHandler(store: store, serverAddress: "\(clientHost):\(http.port)", authenticator: authenticator,
                                 logger: logger, requestTimeout: options.requestTimeout, watchBuffer: options.watchBuffer,
                                 maxRequestsInflight: options.maxRequestsInflight,
                                 maxMutatingRequestsInflight: options.maxMutatingRequestsInflight,
                                 inflightQueue: options.inflightQueue,
                                 disabledAdmissionPlugins: options.disabledAdmissionPlugins, watchCache: options.watchCache,
                                 serviceNetwork: options.serviceNetwork)
        if let file = options.kubeletClientTokenFile {
            guard let token = try SecretFiles.readText(file)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
                throw PKI.Failure.unreadable(file, "the kubelet client token file is missing or empty")
            }
            handler.kubelets.token = token
        } else {
            handler.kubelets.token = try loadOrCreateAdminToken(pkiDir + "/kubelet-client.token")
        }
        box.handler = handler
        try await bootstrap(handler)
        // The Service bitmaps are rebuilt from the Services before the first request (a
        // changed range, a crash between an allocation and its Service), then kept.
        let repair = ServiceRepair(allocator: handler.services, logger: logger, leakRuns: options.serviceLeakRepairs)
        try await repair.runOnce()
        let apiPort = http.port
        try await KubernetesService.ensure(handler, address: clientHost, port: apiPort)
        try await handler.startWatchCache()
        let repairInterval = options.serviceRepairInterval
        let serviceMaintenance = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: repairInterval)
                if Task.isCancelled { break }
                do {
                    try await repair.runOnce()
                    try await KubernetesService.ensure(handler, address: clientHost, port: apiPort)
                } catch {
                    logger.warning("Service allocation repair failed; it runs again in \(repairInterval)", metadata: ["error": "\(error)"])
                }
            }
        }
        let scheme = options.insecureHTTP ? "http" : "https"
        let kubeconfigPath = options.dataDir + "/admin.kubeconfig"
        try writeAtomically(kubeconfigPath, try kubeconfig(server: "\(scheme)://\(clientHost):\(http.port)", caPEM: caPEM, token: adminToken),
                            mode: 0o600)
        let interval = options.compactionInterval
        let compactor = Task {
            var previous: Int64 = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                guard let now = try? await kv.currentRevision() else { continue }
                if previous > 0 {
                    do {
                        try await kv.compact(previous)
                        logger.debug("compacted the store", metadata: ["revision": "\(previous)"])
                    } catch {
                        logger.debug("compaction skipped", metadata: ["error": "\(error)"])
                    }
                }
                previous = now
            }
        }
        logger.info("serving", metadata: ["address": "\(scheme)://\(clientHost):\(http.port)", "kubeconfig": "\(kubeconfigPath)"])
        return APIServer(handler: handler, options: options, http: http, logger: logger, compactor: compactor,
                         serviceMaintenance: serviceMaintenance, adminToken: adminToken, kubeconfigPath: kubeconfigPath)
    }

    /// Serves until `shutdown()`, or until a `ServiceGroup` it runs in shuts down gracefully
    /// (which calls `shutdown()`) or is cancelled.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await http.run()
        } onGracefulShutdown: {
            self.shutdown()
        }
        compactor.cancel()
        serviceMaintenance.cancel()
    }

    /// Stops accepting connections, ends the watches, gives requests in flight a moment.
    public func shutdown() {
        logger.info("stopping")
        handler.stopWatches()
        compactor.cancel()
        serviceMaintenance.cancel()
        http.shutdown(grace: .seconds(2))
    }

    /// The namespaces every cluster has.
    static func bootstrap(_ handler: APIHandler) async throws {
        let info = handler.registry.lookup(group: "", version: "v1", resource: "namespaces")!
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = try Mutation.prepareCreate(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(name)]],
                                                    info: info, namespace: nil)
            let key = info.key(namespace: nil, name: name)
            if try await handler.store.get(key) != nil { continue }
            let created: JSONValue? = try? await handler.store.create(key, object, alreadyExists: APIError.alreadyExists(info, name))
            if created == nil, try await handler.store.get(key) == nil {
                throw APIError.internalError("cannot create the \(name) namespace")
            }
        }
    }

    static func loadOrCreateAdminToken(_ path: String) throws -> String {
        if let existing = try SecretFiles.readText(path), !existing.isEmpty {
            return existing
        }
        var bytes = [UInt8](repeating: 0, count: 24)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        try writeAtomically(path, token + "\n", mode: 0o600)
        return token
    }

    /// A kubeconfig kubectl uses as is, as JSON.
    static func kubeconfig(server: String, caPEM: String, token: String) throws -> String {
        let config = Kubeconfig.single(server: server, certificateAuthorityData: caPEM.isEmpty ? nil : Data(caPEM.utf8).base64EncodedString(),
                                       token: token)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(config), as: UTF8.self) + "\n"
    }
}

extension APIServer: ServiceLifecycle.Service {}

/// Lets the HTTP server's closures reach the handler built after the port is known. The socket
/// accepts connections from the moment it is bound: a request that comes before the handler is
/// ready (a client retrying across a restart) is told to come back.
final class HandlerBox: Sendable {
    private let current = Mutex<APIHandler?>(nil)

    var handler: APIHandler? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    static let starting: HTTPResponse = {
        var response = HTTPResponse.text("the API server is starting; try again in a moment\n", status: .serviceUnavailable)
        response.headers.replaceOrAdd(name: "Retry-After", value: "1")
        return response
    }()
}
