import ArgumentParser
import EtcdAPI
import Foundation
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
    }

    func run() async throws {
        let logger = logging.logger("ballast.store")
        let (host, port) = parseClientURL(listenClientUrls)!
        var options = MVCCOptions()
        options.engine.syncMode = SyncMode(rawValue: sync)!
        options.quotaBytes = quotaBackendBytes
        options.maxTxnOps = maxTxnOps
        let store: MVCCStore
        do {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
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
