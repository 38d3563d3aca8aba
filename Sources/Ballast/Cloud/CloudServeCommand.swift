import ArgumentParser
import CloudProvider
import Foundation
import HTTPKit
import Logging

/// `ballast cloud …`: the simulated cloud.
struct CloudCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud",
        abstract: "The simulated cloud: disks as sparse files, attached as loop devices.",
        subcommands: [CloudServeCommand.self]
    )
}

/// `ballast cloud serve`: the simulated cloud's HTTP JSON API (docs/cloud-api.md). State in
/// SQLite under --state-dir, disks under --volumes-dir. Stops cleanly on SIGTERM and SIGINT after
/// the operations in progress; after a SIGKILL the next start resumes them.
struct CloudServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve the simulated cloud's API.")

    @Option(help: "HOST:PORT to listen on.")
    var listen: String = "127.0.0.1:7070"

    @Option(help: "Directory of the disks' backing files (<zone>/<disk-id>.img) and snapshots.")
    var volumesDir: String = "volumes"

    @Option(help: "Directory of the state database and the generated admin key.")
    var stateDir: String = ".ballast/cloud"

    @Option(help: "File of key,role lines (roles admin, read-only); without it an admin key is generated into STATE_DIR/admin.key.")
    var apiKeysFile: String?

    @Option(help: "Name of the region; its zones are REGION + a, b, ….")
    var region: String = "ballast-1"

    @Option(help: "Number of zones (1–26).")
    var zones: Int = 2

    @Option(help: "Capacity of each zone: the most its disks may add up to (bytes, or with a suffix: 500Gi, 2Ti).")
    var zoneCapacity = ByteCount(1 << 40)

    @Option(help: "Largest disk (bytes, or with a suffix: 100Gi).")
    var maxDiskSize = ByteCount(1 << 40)

    @Option(help: "Attach limit of instances registered without one.")
    var attachLimit: Int = 16

    @Option(help: "Time each action's work takes, e.g. attach=200ms,detach=200ms,create=100ms.")
    var latency: String = Self.defaultLatency

    /// The latencies of a cloud started without `--latency` (what `bench kubelet` uses too).
    static let defaultLatency = "create=100ms,attach=200ms,detach=200ms,resize=100ms,snapshot=200ms"

    @Option(help: "Share of requests that fail with Throttled or Internal, per action, e.g. attach=0.1,create=0.05.")
    var faults: String = ""

    @Option(help: "Seed of the fault dice, for reproducible runs.")
    var faultSeed: UInt64?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard parseHostPort(listen) != nil else { throw ValidationError("--listen \(listen): expected HOST:PORT, like 127.0.0.1:7070") }
        guard (1...26).contains(zones) else { throw ValidationError("--zones \(zones): expected 1 to 26") }
        guard (1...256).contains(attachLimit) else { throw ValidationError("--attach-limit \(attachLimit): expected 1 to 256") }
        for (name, value) in [("--zone-capacity", zoneCapacity), ("--max-disk-size", maxDiskSize)] where value.bytes <= 0 {
            throw ValidationError("\(name) must be positive")
        }
    }

    func run() async throws {
        let logger = logging.logger("ballast.cloud")
        let (host, port) = parseHostPort(listen)!
        var configuration = SimulatorConfiguration(region: region, zoneCount: zones, zoneCapacityBytes: zoneCapacity.bytes,
                                                   maxDiskBytes: maxDiskSize.bytes, defaultAttachLimit: attachLimit)
        do {
            configuration.latency = try SimulatorConfiguration.parseLatencies(latency)
            configuration.faults = try SimulatorConfiguration.parseFaults(faults)
        } catch {
            throw ValidationError("\(error)")
        }
        configuration.faultSeed = faultSeed
        // The state dir holds the admin key and the database: private to the owner (0700, 0600).
        try SecretFiles.makePrivateDirectory(stateDir)
        try SecretFiles.createPrivateFile(stateDir + "/cloud.db")
        let keys = try apiKeysFile.map(APIKeys.load(file:)) ?? APIKeys.adminKey(stateDir: stateDir)
        let devices = try LoopDeviceBackend(root: URL(fileURLWithPath: volumesDir))
        let cloud = try CloudSimulator(configuration: configuration, statePath: stateDir + "/cloud.db", devices: devices, logger: logger)
        let server = try await CloudServer.start(cloud: cloud, keys: keys, host: host, port: port, logger: logger)
        logger.info("serving", metadata: ["listen": "\(host):\(server.port)", "volumes": "\(devices.root.path)",
                                          "zones": "\(configuration.zones.joined(separator: ","))",
                                          "key": "\(apiKeysFile ?? stateDir + "/admin.key")"])
        try await runServices([("cloud", server)], logger: logger)
        logger.info("stopped")
    }
}

/// "127.0.0.1:7070" → ("127.0.0.1", 7070).
func parseHostPort(_ text: String) -> (String, Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
          (0...65535).contains(port), colon != text.startIndex else { return nil }
    return (String(text[..<colon]), port)
}
