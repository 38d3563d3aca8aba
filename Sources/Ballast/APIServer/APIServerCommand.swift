import APIServer
import ArgumentParser
import EtcdAPI
import Foundation
import HTTPKit
import Logging
import MVCCStore

/// `ballast apiserver`: the Kubernetes API server (docs/apiserver.md). HTTPS on
/// --bind-address:--secure-port with a CA generated into DATA_DIR/pki, objects in the
/// embedded store (DATA_DIR/store) or an etcd cluster; writes DATA_DIR/admin.kubeconfig.
/// Stops cleanly on SIGTERM and SIGINT.
struct APIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apiserver",
        abstract: "Serve the Kubernetes API (kubectl works against it) over the embedded store or etcd.")

    @OptionGroup var data: DataDirOptions
    @OptionGroup var logging: LoggingOptions
    var dataDir: String { data.dataDir }

    @Option(help: "Port of the HTTPS API.")
    var securePort: Int = 6443

    @Option(help: "Address to listen on.")
    var bindAddress: String = "127.0.0.1"

    @Option(help: "`embedded` (the MVCC store under DATA_DIR/store, in process) or etcd endpoints: http://HOST:2379,...")
    var etcdServers: String = "embedded"

    @Option(help: "Static bearer tokens: CSV lines token,user,uid,\"group1,group2\". The generated admin token works besides.")
    var tokenAuthFile: String?

    @Option(help: "File with the token presented to kubelets for pods/log and pods/exec (default: DATA_DIR/pki/kubelet-client.token, generated; give it to kubelets as --authentication-token-file).")
    var kubeletClientTokenFile: String?

    @Flag(help: "Serve plain HTTP instead of HTTPS (debugging only; kubeconfig gets an http:// server).")
    var insecureHttp = false

    @Option(help: "Admission plugins to turn off, comma-separated: DefaultStorageClass, StorageObjectInUseProtection, PersistentVolumeClaimResize.")
    var disableAdmissionPlugins: String = ""

    @Option(help: "CIDR of the Services' ClusterIPs (IPv4; its first address is the `kubernetes` Service's).")
    var serviceClusterIpRange: String = "198.19.0.0/16"

    @Option(help: "Port range of the Services' NodePorts, LOW-HIGH.")
    var serviceNodePortRange: String = "30000-32767"

    @Option(help: "Seconds between repairs of the Service IP and NodePort allocations.")
    var serviceRepairInterval: Int = 60

    @Option(help: "Seconds between store compactions; watch history covers about one interval.")
    var compactionInterval: Int = 300

    @Option(help: "Most read-only requests served at once (watches excepted), a third kept for kubelets and controllers; more wait in their priority level's queue (429 when it is full or after 15 s). 0: no limit.")
    var maxRequestsInflight: Int = 400

    @Option(help: "Most mutating requests served at once, shared as the read-only ones. 0: no limit.")
    var maxMutatingRequestsInflight: Int = 200

    @Option(help: "Watch cache window per resource, resource#events comma-separated (e.g. pods#20000,events#1000): how far back a watch may resume before it gets 410 and re-lists.")
    var watchCacheSizes: String = ""

    @Option(help: "Watch cache window of the resources --watch-cache-sizes does not name, in events.")
    var defaultWatchCacheSize: Int = 10_000

    @Option(help: "Most client connections open at once; more are closed as they are accepted. 0: no limit.")
    var maxConnections: Int = 4096

    @Option(help: "Seconds a connection has to send a complete request head, TLS handshake included.")
    var readHeaderTimeout: Int = 32

    @Option(help: "Seconds an idle keep-alive connection is kept open.")
    var idleTimeout: Int = 90

    func validate() throws {
        guard (0...65535).contains(securePort) else { throw ValidationError("--secure-port \(securePort): expected 0 to 65535") }
        guard compactionInterval > 0 else { throw ValidationError("--compaction-interval must be positive") }
        guard (1...86_400).contains(serviceRepairInterval) else { throw ValidationError("--service-repair-interval \(serviceRepairInterval): expected 1 to 86400 seconds") }
        do {
            _ = try ServiceNetwork.parse(clusterIPRange: serviceClusterIpRange, nodePortRange: serviceNodePortRange)
        } catch {
            throw ValidationError(error.description)
        }
        for plugin in disableAdmissionPlugins.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
            where !StorageAdmission.plugins.contains(plugin) {
            throw ValidationError("--disable-admission-plugins: \(plugin) is not an admission plugin; known: \(StorageAdmission.plugins.sorted().joined(separator: ", "))")
        }
        for (flag, value) in [("--max-requests-inflight", maxRequestsInflight), ("--max-mutating-requests-inflight", maxMutatingRequestsInflight),
                              ("--max-connections", maxConnections)] where value < 0 {
            throw ValidationError("\(flag) \(value): expected 0 (no limit) or a positive number")
        }
        for (flag, value) in [("--read-header-timeout", readHeaderTimeout), ("--idle-timeout", idleTimeout)] where !(1...86_400).contains(value) {
            throw ValidationError("\(flag) \(value): expected 1 to 86400 seconds")
        }
        let sizes: [String: Int]
        do {
            sizes = try WatchCacheOptions.parseSizes(watchCacheSizes)
        } catch {
            throw ValidationError(error.message)
        }
        let known = Set(ResourceRegistry.standard.resources.flatMap { [$0.resource, $0.qualifiedResource] })
        for name in sizes.keys.sorted() where !known.contains(name) {
            throw ValidationError("--watch-cache-sizes: \(name) is not a served resource; name it as in `kubectl api-resources` (plural, with .group outside the core group, e.g. storageclasses.storage.k8s.io)")
        }
        guard defaultWatchCacheSize > 0 else { throw ValidationError("--default-watch-cache-size \(defaultWatchCacheSize): expected a positive number of events") }
        if etcdServers != "embedded" {
            for url in etcdServers.split(separator: ",") where !url.hasPrefix("http://") {
                throw ValidationError("--etcd-servers \(url): expected http://HOST:PORT (or `embedded`)")
            }
        }
    }

    func run() async throws {
        let logger = logging.logger("ballast.apiserver")
        var options = APIServerOptions(dataDir: dataDir)
        options.bindAddress = bindAddress
        options.securePort = securePort
        options.tokenAuthFile = tokenAuthFile
        options.kubeletClientTokenFile = kubeletClientTokenFile
        options.insecureHTTP = insecureHttp
        options.compactionInterval = .seconds(compactionInterval)
        options.maxRequestsInflight = maxRequestsInflight
        options.maxMutatingRequestsInflight = maxMutatingRequestsInflight
        options.http.maxConnections = maxConnections
        options.watchCache.sizes = try WatchCacheOptions.parseSizes(watchCacheSizes)
        options.watchCache.defaultSize = defaultWatchCacheSize
        options.http.readHeaderTimeout = .seconds(readHeaderTimeout)
        options.http.idleTimeout = .seconds(idleTimeout)
        options.serviceNetwork = try ServiceNetwork.parse(clusterIPRange: serviceClusterIpRange, nodePortRange: serviceNodePortRange)
        options.serviceRepairInterval = .seconds(serviceRepairInterval)
        options.disabledAdmissionPlugins = Set(disableAdmissionPlugins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })

        let kv: any KeyValueStore
        var embedded: MVCCStore?
        var etcd: EtcdClient?
        if etcdServers == "embedded" {
            try SecretFiles.makePrivateDirectory(dataDir + "/store")  // 0700, as etcd keeps its data dir
            let store = try MVCCStore.open(path: dataDir + "/store")
            embedded = store
            kv = store
        } else {
            let client = try EtcdClient(endpoints: etcdServers.split(separator: ",").map(String.init))
            etcd = client
            kv = client
        }
        let server: APIServer
        do {
            server = try await APIServer.start(options: options, store: kv, logger: logger)
        } catch {
            try? await embedded?.close()
            etcd?.close()
            throw error
        }
        do {
            try await runServices([("apiserver", server)], logger: logger)
        } catch {
            try? await embedded?.close()
            etcd?.close()
            throw error
        }
        try await embedded?.close()
        etcd?.close()
        logger.info("stopped")
    }
}
