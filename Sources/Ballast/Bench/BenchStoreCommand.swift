// `ballast bench store`: Ballast's LSM engine and SQLite under the same workload, in one run.
import ArgumentParser
import Foundation

struct BenchStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Benchmark Ballast's LSM engine beside SQLite: fill, random reads, full scan.",
        discussion: """
            Runs the same workload against each engine in turn (lsm first, then sqlite): a fill \
            of --keys entries by --writers threads in batches of --batch, an untimed settle \
            (LSM: flush + compactions; SQLite: WAL checkpoint), --reads random gets of existing \
            keys, and one full forward scan. Prints ops/s, MB/s of user data (key + value bytes, \
            MB = 10^6 bytes) and latency percentiles per phase, then disk bytes, compression \
            ratio, write amplification and peak RSS per engine. Fill ops/s counts keys; fill \
            latency is per write-batch call. Progress goes to stderr.
            With --via etcd, --keys puts of --value-size random bytes go through the etcd v3 gRPC \
            API from --clients connections to `ballast store serve` (and, with --compare-etcd, \
            to a real etcd), every put fsynced; it prints puts/s, latency and server CPU per put.
            """
    )

    @Option(help: "Number of distinct keys to write.")
    var keys = 1_000_000

    @Option(help: "Key size in bytes: keys are zero-padded decimals of this width.")
    var keySize = 16

    @Option(help: "Value size in bytes.")
    var valueSize = 100

    @Option(help: "Fraction of each value that is zeros (the rest is random bytes), 0...1.")
    var compressibility = 0.5

    @Option(help: "Fill order: random (a seeded shuffle of the keys) or sequential.")
    var order: KeyOrder = .random

    @Option(help: "Keys per write batch (SQLite: rows per transaction).")
    var batch = 1

    @Option(help: "Concurrent writer threads; each writes a contiguous share of the keys.")
    var writers = 1

    @Option(help: "always: each batch is durable when written (fsync); none: left to the OS.")
    var sync: BenchSyncMode = .none

    @Option(help: "Engines to run: lsm, sqlite or all (lsm, then sqlite).")
    var engine: EngineChoice = .all

    @Option(help: "Random gets in the read phase (default: min(keys, 200000); 0 skips it).")
    var reads: Int?

    @Option(help: "Directory for the engines' files (default: a new temporary directory under /tmp).")
    var dir: String?

    @Flag(help: "Keep the engines' files instead of removing them at the end.")
    var keep = false

    @Flag(help: "Print one JSON object per engine and phase (JSONL) instead of the tables.")
    var json = false

    @OptionGroup var seedOptions: SeedOptions
    var seed: UInt64 { seedOptions.seed }

    @Option(help: "local: the engines in this process; etcd: puts through the etcd v3 gRPC API of `ballast store serve`.")
    var via: BenchVia = .local

    @Option(help: "With --via etcd: concurrent client connections.")
    var clients = 1

    @OptionGroup var etcd: CompareEtcdOptions
    @OptionGroup var logging: LoggingOptions
    var compareEtcd: Bool { etcd.compareEtcd }

    @Option(help: "With --via etcd: measure this running server (http://127.0.0.1:PORT) instead of starting one.")
    var endpoint: String?

    func validate() throws {
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
        guard (1...1024).contains(keySize) else { throw ValidationError("--key-size must be 1...1024") }
        let needed = StoreWorkload.digits(UInt64(keys - 1))
        guard keySize >= needed else {
            throw ValidationError("--key-size \(keySize) cannot hold \(keys) distinct decimal keys: use at least \(needed)")
        }
        guard (0...(16 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be 0...16777216") }
        guard (0...1).contains(compressibility) else { throw ValidationError("--compressibility must be between 0 and 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard (1...keys).contains(writers) else { throw ValidationError("--writers must be 1...\(keys) (one key per writer at least)") }
        if let reads, reads < 0 { throw ValidationError("--reads must not be negative") }
        guard clients >= 1 && clients <= keys else { throw ValidationError("--clients must be 1...\(keys)") }
    }

    func run() async throws {
        if via == .etcd {
            var bench = EtcdPutBenchmark(puts: keys, clients: clients, keySize: keySize, valueSize: valueSize,
                                         compareEtcd: compareEtcd, endpoint: endpoint, progress: ProgressLine())
            bench.logLevel = logging.logLevel ?? .warning
            print(EtcdPutBenchmark.report(try await bench.run(), clients: clients, valueSize: valueSize), terminator: "")
            return
        }
        let workload = StoreWorkload(
            keys: keys, keySize: keySize, valueSize: valueSize, compressibility: compressibility,
            order: order, batch: batch, writers: writers, sync: sync,
            reads: reads ?? Swift.min(keys, 200_000), seed: seed)

        let fm = FileManager.default
        let root: String
        let createdRoot: Bool
        if let dir {
            root = dir
            createdRoot = !fm.fileExists(atPath: dir)
            try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } else {
            root = try Self.makeTemporaryDirectory()
            createdRoot = true
        }
        // Refuse to measure (or later remove) files that were there before the run.
        for kind in engine.kinds {
            let directory = root + "/" + kind.rawValue
            if let existing = try? fm.contentsOfDirectory(atPath: directory), !existing.isEmpty {
                throw BenchError(description: "\(directory) is not empty: give an empty --dir or remove it")
            }
        }
        var engineDirectories: [String] = []
        defer {
            if keep {
                writeStandardError("kept the engines' files in \(root)\n")
            } else if createdRoot {
                try? fm.removeItem(atPath: root)
            } else {
                for directory in engineDirectories { try? fm.removeItem(atPath: directory) }
            }
        }

        let progress = ProgressLine()
        progress.note("ballast bench store: \(workload.summary); files in \(root)")
        let benchmark = StoreBenchmark(workload: workload, progress: progress)
        var reports: [EngineReport] = []
        for kind in engine.kinds {
            let directory = root + "/" + kind.rawValue
            engineDirectories.append(directory)   // ours (checked empty above): removed at the end unless --keep
            let report = try benchmark.run(kind, directory: directory)
            reports.append(report)
            if json {
                for line in BenchReport.jsonLines(workload, report) { print(line) }
                fflush(nil)
            }
        }
        if !json {
            print(BenchReport.human(workload, reports), terminator: "")
        }
    }

    /// A new directory /tmp/ballast-bench-XXXXXX (mkdtemp).
    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/ballast-bench-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw BenchError(description: "cannot create a temporary directory under /tmp: \(String(cString: strerror(errno)))")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
