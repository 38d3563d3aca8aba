// `ballast bench store --via etcd`: puts through the etcd v3 gRPC API, from
// N concurrent connections, against `ballast store serve` and (with
// --compare-etcd) a real etcd, each started by the benchmark on a loopback
// port with a temporary data dir, in the same run and with equal durability
// (both fdatasync every acknowledged put). Reports puts/s, latency and the
// server's CPU time per put, read from /proc, since the client shares the
// machine's two cores.
import EtcdAPI
import Foundation
import Logging
import GRPCWire
import NIOCore
import NIOPosix

/// One connection's share of the puts, one at a time, each sent from the
/// previous one's completion on the connection's event loop.
final class PutDriver {
    static let path = "/etcdserverpb.KV/Put"
    private let client: GRPCUnaryClient
    private let count: Int
    private let key: (Int) -> [UInt8]
    private let value: () -> [UInt8]
    private let done: EventLoopPromise<LatencyHistogram>
    private var histogram = LatencyHistogram()
    private var sent = 0

    init(client: GRPCUnaryClient, count: Int, key: @escaping (Int) -> [UInt8], value: @escaping () -> [UInt8]) {
        self.client = client
        self.count = count
        self.key = key
        self.value = value
        done = client.eventLoop.makePromise()
    }

    static func request(key: [UInt8], value: [UInt8]) -> [UInt8] {
        var put = Etcdserverpb_PutRequest()
        put.key = Data(key)
        put.value = Data(value)
        return try! put.serializedBytes()  // a message of two byte fields always serializes
    }

    func run() -> EventLoopFuture<LatencyHistogram> {
        next()
        return done.futureResult
    }

    private func next() {
        guard sent < count else { return done.succeed(histogram) }
        let request = PutDriver.request(key: key(sent), value: value())
        sent += 1
        let t0 = DispatchTime.now().uptimeNanoseconds
        client.call(PutDriver.path, request).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                histogram.record(DispatchTime.now().uptimeNanoseconds - t0)
                next()
            case .failure(let error):
                done.fail(BenchError(description: "put \(sent) failed: \(error)"))
            }
        }
    }
}

struct EtcdPutBenchmark {
    let puts: Int
    let clients: Int
    let keySize: Int
    let valueSize: Int
    let compareEtcd: Bool
    /// Measure this running server instead of starting `ballast store serve`.
    let endpoint: String?
    /// The log level of the servers it starts.
    var logLevel: Logger.Level = .warning
    let progress: ProgressLine

    struct Result {
        let server: String
        let puts: Int
        let seconds: Double
        let latency: LatencyHistogram
        let serverCPUSeconds: Double
        var putsPerSecond: Double { Double(puts) / seconds }
        var cpuMicrosPerPut: Double { serverCPUSeconds * 1e6 / Double(puts) }
    }

    func run() async throws -> [Result] {
        var results: [Result] = []
        if let endpoint {
            guard let port = parseClientURL(endpoint)?.port else {
                throw BenchError(description: "--endpoint \(endpoint): expected http://127.0.0.1:PORT")
            }
            return [try await measure(BenchServer.external(port: port))]
        }
        results.append(try await BenchServer.ballastStore(logLevel: logLevel).using { try await measure($0) })
        if compareEtcd {
            results.append(try await BenchServer.etcd().using { try await measure($0) })
        }
        return results
    }

    private func measure(_ server: BenchServer) async throws -> Result {
        progress.note("\(server.name): \(puts) puts from \(clients) connections to \(server.endpoint)")
        // Two event loops drive every connection with callbacks: the client must cost
        // the shared cores as little as possible (grpc-swift's cost 100-150 µs a put).
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            let result = try await measure(server, on: group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(_ server: BenchServer, on group: MultiThreadedEventLoopGroup) async throws -> Result {
        var connections: [GRPCUnaryClient] = []
        for _ in 0..<clients {
            connections.append(try await GRPCUnaryClient.connect(host: "127.0.0.1", port: server.port, group: group))
        }
        let value = (0..<valueSize).map { _ in UInt8.random(in: 0...255) }  // incompressible
        // Warm up every connection (and the server) before the clock starts.
        for c in connections {
            do {
                _ = try await c.call(PutDriver.path, PutDriver.request(key: Array("warmup".utf8), value: value)).get()
            } catch {
                throw BenchError(description: "\(server.name) at \(server.endpoint) refused the first put: \(error)")
            }
        }
        let cpuBefore = server.cpuSeconds()
        let start = DispatchTime.now().uptimeNanoseconds
        let share = puts / clients
        var runs: [EventLoopFuture<LatencyHistogram>] = []
        for (i, c) in connections.enumerated() {
            let count = i == clients - 1 ? puts - share * (clients - 1) : share
            let (keySize, value) = (self.keySize, value)
            runs.append(c.eventLoop.flatSubmit {
                PutDriver(client: c, count: count) { n in
                    let name = "k\(i)-\(n)"
                    return Array((name + String(repeating: "0", count: max(0, keySize - name.utf8.count))).utf8)
                } value: { value }.run()
            })
        }
        var merged = LatencyHistogram()
        for r in runs { merged.merge(try await r.get()) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        for c in connections { await c.close() }
        return Result(server: server.name, puts: puts, seconds: seconds, latency: merged,
                      serverCPUSeconds: server.cpuSeconds() - cpuBefore)
    }

    static func report(_ results: [Result], clients: Int, valueSize: Int) -> String {
        var rows = [["server", "clients", "puts/s", "p50 ms", "p99 ms", "server CPU µs/put"]]
        for r in results {
            rows.append([r.server, String(clients), String(format: "%.0f", r.putsPerSecond),
                         String(format: "%.2f", (r.latency.percentile(0.5) ?? 0) / 1e6),
                         String(format: "%.2f", (r.latency.percentile(0.99) ?? 0) / 1e6),
                         String(format: "%.1f", r.cpuMicrosPerPut)])
        }
        var out = "ballast bench store --via etcd: \(results.first?.puts ?? 0) puts of \(valueSize) B random values, every put fsynced\n\n"
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            out += row.enumerated().map { c, cell in c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  ") + "\n"
        }
        if results.count == 2 {
            out += String(format: "\nballast/etcd: puts/s %.2fx, server CPU per put %.2fx\n",
                          results[0].putsPerSecond / results[1].putsPerSecond,
                          results[0].cpuMicrosPerPut / results[1].cpuMicrosPerPut)
        }
        return out
    }
}
