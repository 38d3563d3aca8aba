// Options that several commands share, declared once (`@OptionGroup`), and how a long-running
// command runs its services.
import APIClient
import ArgumentParser
import CloudProvider
import Logging
import ServiceLifecycle
import Units

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Durations in flags are written as Go writes them: `10s`, `500ms`, `1h30m`.
extension Duration: @retroactive ExpressibleByArgument {
    public init?(argument: String) {
        guard let duration = try? GoDuration.parse(argument) else { return nil }
        self = duration
    }

    public var defaultValueDescription: String { GoDuration.format(self) }
}

/// A size in a flag: bytes, or with a suffix (`64Mi`, `1Ti`, `500G`); never negative. Printed
/// as a flag writes it (`64Mi`).
struct ByteCount: ExpressibleByArgument, CustomStringConvertible, Sendable {
    var bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        guard let bytes = ByteSize.parse(argument) else { return nil }
        self.bytes = bytes
    }

    var defaultValueDescription: String { ByteSize.format(bytes) }
    var description: String { ByteSize.format(bytes) }
}

/// `--log-level`, on every command.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe messages logged: trace, debug, info, notice, warning, error or critical (default: info for servers, warning for benchmarks).")
    var logLevel: Logger.Level?

    /// A logger for `label` at the chosen level, or at `defaultLevel`.
    func logger(_ label: String, defaultLevel: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = logLevel ?? defaultLevel
        return logger
    }
}

/// `--data-dir` of the cluster's components (the store serves its own, as etcd's).
struct DataDirOptions: ParsableArguments {
    @Option(help: "Directory of the cluster's state: embedded store, PKI, admin.kubeconfig.")
    var dataDir: String = ".ballast"
}

/// `--kubeconfig`, for the components that are clients of the API server.
struct KubeconfigOptions: ParsableArguments {
    @Option(help: "kubeconfig of the API server (ballast apiserver writes DATA_DIR/admin.kubeconfig).")
    var kubeconfig: String = ".ballast/admin.kubeconfig"

    /// A client of the API server the kubeconfig names; a usage error when it cannot be read.
    func client() throws -> KubeClient {
        do {
            return try KubeClient(try Connection.kubeconfig(at: kubeconfig))
        } catch {
            throw ValidationError("--kubeconfig \(kubeconfig): \(error)")
        }
    }
}

/// `--cloud-url` and `--cloud-key-file`, for the cloud's clients.
struct CloudOptions: ParsableArguments {
    @Option(help: "URL of the cloud's API.")
    var cloudUrl: String = "http://127.0.0.1:7070"

    @Option(help: "File holding the cloud API key (the simulator writes STATE_DIR/admin.key).")
    var cloudKeyFile: String = ".ballast/cloud/admin.key"

    @Option(help: "Attempts per cloud request when the cloud is throttled or fails inside (1: no retry here, the caller retries).")
    var cloudAttempts: Int = 6

    /// A client of the cloud; a usage error when the URL or the key file is wrong.
    func client() throws -> CloudClient {
        guard (1...20).contains(cloudAttempts) else { throw ValidationError("--cloud-attempts \(cloudAttempts): between 1 and 20") }
        do {
            var client = try CloudClient(url: cloudUrl, keyFile: cloudKeyFile)
            client.maxAttempts = cloudAttempts
            return client
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// `--compare-etcd`, for the benchmarks that measure a real etcd in the same run.
struct CompareEtcdOptions: ParsableArguments {
    @Flag(help: "Also measure a real etcd (Debian's etcd-server) in the same run.")
    var compareEtcd = false
}

/// `--seed`, for what a run draws at random.
struct SeedOptions: ParsableArguments {
    @Option(help: "Seed of what the run draws at random, for reproducible runs.")
    var seed: UInt64 = 42
}

/// `--leader-elect` and its timings (kube-controller-manager's and kube-scheduler's flags), for
/// the components of which several may run and only one may act: the holder of the component's
/// Lease in kube-system.
struct LeaderElectionOptions: ParsableArguments {
    @Option(help: "Hold this component's Lease in kube-system (ballast-controller-manager, ballast-scheduler), so that of several instances only one acts (true or false).")
    var leaderElect: Bool = true

    @Option(help: "Leader election: how long the lease is held without renewal.")
    var leaderElectLeaseDuration: Duration = .seconds(15)

    @Option(help: "Leader election: how long the leader keeps trying to renew before it stops.")
    var leaderElectRenewDeadline: Duration = .seconds(10)

    @Option(help: "Leader election: how often candidates try to acquire and the leader renews.")
    var leaderElectRetryPeriod: Duration = .seconds(2)

    func validate() throws {
        guard leaderElectRetryPeriod > .zero else {
            throw ValidationError("--leader-elect-retry-period \(leaderElectRetryPeriod): expected a positive duration like 2s")
        }
        if leaderElect && !(leaderElectRetryPeriod < leaderElectRenewDeadline && leaderElectRenewDeadline < leaderElectLeaseDuration) {
            throw ValidationError("leader election needs --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration")
        }
    }

    /// The timings in `config` (whose namespace and name the component chose).
    func apply(to config: inout LeaderElectionConfig) {
        config.leaseDuration = leaderElectLeaseDuration
        config.renewDeadline = leaderElectRenewDeadline
        config.retryPeriod = leaderElectRetryPeriod
    }
}

/// Runs `services` until SIGTERM or SIGINT, then shuts them down gracefully (each stops
/// accepting work and finishes what it holds; after `grace` they are cancelled). When one
/// service returns or fails, the others are shut down the same way, and a failure is rethrown.
func runServices(_ services: [(name: String, service: any Service)], logger: Logger, grace: Duration = .seconds(10)) async throws {
    var configuration = ServiceGroupConfiguration(
        services: services.map {
            .init(service: $0.service, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: $0.name)
        },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger)
    configuration.maximumGracefulShutdownDuration = grace
    try await ServiceGroup(configuration: configuration).run()
}
