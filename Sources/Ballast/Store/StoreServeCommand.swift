import ArgumentParser
import EtcdAPI
import Foundation
import GRPCWire
import Logging
import LSMTree
import MVCCStore

/// `ballast store …`: the etcd-compatible store on its own.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "The etcd-compatible store.",
        subcommands: [StoreServeCommand.self]
    )
}

/// `ballast store serve`: serves the etcd v3 API (gRPC, plus /metrics and
/// /health on the same port) from an MVCC store in --data-dir. Flags are
/// etcd's. Stops cleanly on SIGTERM and SIGINT; a SIGKILL loses nothing
/// acknowledged (every write is fdatasync'd before its answer).
struct StoreServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve the etcd v3 API.")

    @Option(help: "Directory of the store (created if missing).")
    var dataDir: String = ".ballast/store"

    @Option(help: "URL to listen on for clients, http://HOST:PORT (one).")
    var listenClientUrls: String = "http://127.0.0.1:2379"

    @Option(help: "Also serve /metrics and /health on this URL (the client port serves them too, next to gRPC).")
    var listenMetricsUrls: String?

    @Option(help: "Client URLs advertised in MemberList (comma-separated).")
    var advertiseClientUrls: String?

    @Option(help: "Human-readable name of this member.")
    var name: String = "ballast"

    @Option(help: "Size of the store at which writes fail with 'database space exceeded' (bytes).")
    var quotaBackendBytes: UInt64 = 2 << 30

    @Option(help: "Largest request accepted (bytes).")
    var maxRequestBytes: Int = 1_572_864

    @Option(help: "Largest number of operations in one txn.")
    var maxTxnOps: Int = 128

    @Option(help: "Seconds between progress notifications for watches that request them.")
    var progressNotifyInterval: Int = 600

    @Option(help: "Acknowledge writes only once on disk (always) or once in the page cache (none).")
    var sync: String = "always"

    @Option(help: "Largest number of concurrent calls (streams) per client connection, as etcd's flag; reset calls still running count.")
    var maxConcurrentStreams: Int = GRPCWireLimits().maxConcurrentStreams

    @Option(help: "Largest number of client connections open at once (gRPC and HTTP together); more are closed as accepted.")
    var maxConnections: Int = GRPCWireLimits().maxConnections

    @Option(help: "Request bytes one connection may make the server hold (received, not yet answered); its client waits beyond it.")
    var maxConnectionBufferedBytes: Int = GRPCWireLimits().maxConnectionBufferedBytes

    @Option(help: "Seconds a new connection has to send the HTTP/2 preface and SETTINGS (or an HTTP/1 request).")
    var handshakeTimeout: Int = 10

    @Option(help: "Seconds after which a connection with no call open is sent GOAWAY and closed (0: never).")
    var maxConnectionIdle: Int = 300

    @Option(help: "Largest number of watches open at once in the store (all clients).")
    var maxWatchers: Int = MVCCOptions().maxWatchers

    @Option(help: "Size of the engine's memtable (bytes); the engine holds up to three of them in memory.")
    var memtableBytes: Int = MVCCOptions().engine.writeBufferSize

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard parseClientURL(listenClientUrls) != nil else {
            throw ValidationError("--listen-client-urls \(listenClientUrls): expected one URL like http://127.0.0.1:2379 (https is not supported yet)")
        }
        if let m = listenMetricsUrls, parseClientURL(m) == nil {
            throw ValidationError("--listen-metrics-urls \(m): expected one URL like http://127.0.0.1:2381")
        }
        guard SyncMode(rawValue: sync) != nil else {
            throw ValidationError("--sync \(sync): expected always or none")
        }
        guard maxRequestBytes > 0, maxTxnOps > 0, progressNotifyInterval > 0 else {
            throw ValidationError("--max-request-bytes, --max-txn-ops and --progress-notify-interval must be positive")
        }
        guard maxConcurrentStreams > 0, maxConnections > 0, maxConnectionBufferedBytes > 0, handshakeTimeout > 0, maxWatchers > 0 else {
            throw ValidationError("--max-concurrent-streams, --max-connections, --max-connection-buffered-bytes, --handshake-timeout and --max-watchers must be positive")
        }
        guard maxConnectionIdle >= 0 else { throw ValidationError("--max-connection-idle must be 0 (never) or positive") }
        guard memtableBytes >= 1 << 20 else { throw ValidationError("--memtable-bytes \(memtableBytes): at least 1 MiB (1048576)") }
    }

    func run() async throws {
        let logger = logging.logger("ballast.store")
        let (host, port) = parseClientURL(listenClientUrls)!
        var options = MVCCOptions()
        options.engine.syncMode = SyncMode(rawValue: sync)!
        options.quotaBytes = quotaBackendBytes
        options.maxTxnOps = maxTxnOps
        options.maxWatchers = maxWatchers
        options.engine.writeBufferSize = memtableBytes
        let store: MVCCStore
        do {
            // The engine creates the directory (and missing parents) itself, 0700 as etcd's.
            store = try MVCCStore.open(path: dataDir, options: options)
        } catch {
            throw ValidationError("cannot open the store in --data-dir \(dataDir): \(error)")
        }
        var config = EtcdServerConfiguration()
        config.host = host
        config.port = port
        config.name = name
        config.maxRequestBytes = maxRequestBytes
        config.progressNotifyInterval = .seconds(progressNotifyInterval)
        config.limits.maxConcurrentStreams = maxConcurrentStreams
        config.limits.maxConnections = maxConnections
        config.limits.maxConnectionBufferedBytes = maxConnectionBufferedBytes
        config.limits.handshakeTimeout = .seconds(Int64(handshakeTimeout))
        config.limits.idleTimeout = maxConnectionIdle == 0 ? nil : .seconds(Int64(maxConnectionIdle))
        if let m = listenMetricsUrls.flatMap({ parseClientURL($0) }) {
            config.metricsHost = m.0
            config.metricsPort = m.1
        }
        config.advertiseClientURLs = advertiseClientUrls.map { $0.split(separator: ",").map(String.init) } ?? []
        let server = EtcdServer(store: store, configuration: config, logger: logger)
        do {
            try await runServices([("store", server)], logger: logger)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        logger.info("stopped", metadata: ["revision": "\(store.revision)"])
    }
}
