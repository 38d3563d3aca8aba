// What `ballast bench apiserver` prints: one row per backend and watcher count, the list phase,
// and issue 18's targets beside this run's figures; `--plot` draws creates/s against watchers.

extension BenchAPIServerCommand.Outcome {
    /// Requests per second of a phase ("create", "update", "delete").
    func rate(_ phase: String) -> Double? {
        phases.first { $0.name == phase }.map { Double(pods) / $0.seconds }
    }

    /// The latencies of every write of the run.
    var writes: LatencyHistogram {
        phases.reduce(into: LatencyHistogram()) { $0.merge($1.latency) }
    }

    /// Server CPU per write request, µs.
    var cpuPerRequestMicros: Double { serverCPUSeconds * 1e6 / Double(3 * pods) }

    /// The benchmark's own CPU (clients and watchers) per write request, µs.
    var benchCPUPerRequestMicros: Double { benchCPUSeconds * 1e6 / Double(3 * pods) }

    /// Server CPU of the run divided by the events delivered to all watchers, µs; nil without watchers.
    var cpuPerDeliveredEventMicros: Double? { delivered > 0 ? serverCPUSeconds * 1e6 / Double(delivered) : nil }
}

extension BenchAPIServerCommand.ListOutcome {
    static func median(_ values: [Double]) -> Double? {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return nil }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// How many times faster the `resourceVersion=0` list is than the one from the store.
    var speedup: Double? {
        guard let cached = Self.median(cached), let exact = Self.median(exact), cached > 0 else { return nil }
        return exact / cached
    }
}

struct APIServerBenchReport {
    let outcomes: [BenchAPIServerCommand.Outcome]
    let lists: [BenchAPIServerCommand.ListOutcome]
    let settings: BenchAPIServerCommand

    var backends: [String] { outcomes.reduce(into: []) { if !$0.contains($1.backend) { $0.append($1.backend) } } }

    func text() -> String {
        var runs = TextTable([("watchers", .right), ("backend", .left), ("creates/s", .right), ("updates/s", .right), ("deletes/s", .right),
                              ("write p50 / p99 ms", .right), ("delivery p50 / p99 ms", .right), ("events delivered", .right),
                              ("server CPU µs/request", .right), ("server CPU µs/event/watcher", .right), ("bench CPU µs/request", .right)])
        for o in outcomes.sorted(by: { ($0.watchers, $0.backend) < ($1.watchers, $1.backend) }) {
            let delivery = o.watchers == 0 ? "—" : "\(ms(o.delivery.percentile(0.5))) / \(ms(o.delivery.percentile(0.99)))"
            runs.append(["\(o.watchers)", o.backend, grouped(o.rate("create") ?? .nan), grouped(o.rate("update") ?? .nan),
                         grouped(o.rate("delete") ?? .nan), "\(ms(o.writes.percentile(0.5))) / \(ms(o.writes.percentile(0.99)))", delivery,
                         o.watchers == 0 ? "—" : "\(grouped(o.delivered))/\(grouped(o.expectedDeliveries))",
                         fixed(o.cpuPerRequestMicros, 0), o.cpuPerDeliveredEventMicros.map { fixed($0, 2) } ?? "—",
                         fixed(o.benchCPUPerRequestMicros, 0)])
        }
        var text = runs.render()
        text += "\n\ndelivery: from the moment a write was acknowledged to its client to the moment a watcher read its event;"
        text += "\nserver CPU µs/event/watcher: the server's CPU over the three phases divided by the events delivered to all watchers;"
        text += "\nbench CPU µs/request: this process's CPU over the three phases (its clients and its watchers' readers, which share the"
        text += "\nserver's cores) per write request."
        if !lists.isEmpty {
            var table = TextTable([("backend", .left), ("pods", .right), ("MiB", .right), ("RV=0 median ms", .right),
                                   ("Exact (store) median ms", .right), ("Exact / RV=0", .right)])
            for list in lists {
                table.append([list.backend, grouped(list.pods), fixed(Double(list.bytes) / 1_048_576, 1),
                              fixed((Self.median(list.cached) ?? .nan) * 1000, 1), fixed((Self.median(list.exact) ?? .nan) * 1000, 1),
                              ratio(list.speedup, suffix: "×")])
            }
            text += "\n\nlists of every pod, \(BenchAPIServerCommand.listRepetitions) of each, alternating (bodies read, not decoded):\n"
            text += table.render()
        }
        text += "\n\n" + targets()
        return text
    }

    private static func median(_ values: [Double]) -> Double? { BenchAPIServerCommand.ListOutcome.median(values) }

    private func ms(_ nanos: Double?) -> String { nanos.map { fixed($0 / 1e6, 2) } ?? "n/a" }

    /// Issue 18's targets for each backend: with 100 watchers ≥ 1,000 creates/s and ≥ 0.7× the
    /// no-watcher rate of the same run, server CPU per event per watcher ≤ 5 µs, delivery p99
    /// ≤ 50 ms; lists at resourceVersion=0 ≥ 10× faster than from the store; ≥ 2,000 creates/s
    /// without watchers.
    func targets() -> String {
        var table = TextTable([("target (issue 18)", .left), ("backend", .left), ("limit", .right), ("this run", .right), ("", .left)])
        for backend in backends {
            let idle = outcomes.first { $0.backend == backend && $0.watchers == 0 }
            let busy = outcomes.first { $0.backend == backend && $0.watchers == 100 }
            let idleRate = idle?.rate("create"), busyRate = busy?.rate("create")
            let kept = busyRate.flatMap { b in idleRate.flatMap { $0 > 0 ? b / $0 : nil } }
            let cpu = busy?.cpuPerDeliveredEventMicros, p99 = busy?.delivery.percentile(0.99).map { $0 / 1e9 }
            let speedup = lists.first { $0.backend == backend }?.speedup
            table.append(["creates/s without watchers ≥ 2,000", backend, "2,000", idleRate.map(grouped) ?? "-", verdict(idleRate, atLeast: 2000)])
            table.append(["creates/s with 100 watchers ≥ 1,000", backend, "1,000", busyRate.map(grouped) ?? "-", verdict(busyRate, atLeast: 1000)])
            table.append(["  and ≥ 0.7× the rate without watchers", backend, "0.70×", ratio(kept, suffix: "×"), verdict(kept, atLeast: 0.7)])
            table.append(["server CPU per event per watcher ≤ 5 µs (100 watchers)", backend, "5.00 µs", cpu.map { fixed($0, 2) + " µs" } ?? "-",
                          verdict(cpu, atMost: 5)])
            table.append(["watch delivery p99 ≤ 50 ms (100 watchers)", backend, milliseconds(0.05), milliseconds(p99), verdict(p99, atMost: 0.05)])
            table.append(["list at resourceVersion=0 ≥ 10× faster than from the store", backend, "10.00×", ratio(speedup, suffix: "×"),
                          verdict(speedup, atLeast: 10)])
        }
        var text = table.render()
        let counts = Set(settings.watchers.counts)
        if !counts.isSuperset(of: [0, 100]) || settings.pods != 2000 || settings.listPods != 10_000 {
            text += "\n(the targets are defined at --watchers 0,100 --pods 2000 --list-pods 10000; this run used --watchers "
                + settings.watchers.defaultValueDescription + " --pods \(settings.pods) --list-pods \(settings.listPods))"
        }
        return text
    }

    /// Creates/s against watchers, one line per backend.
    func svg() -> String {
        let series = backends.map { backend in
            (label: backend, points: outcomes.filter { $0.backend == backend }.map { (x: Double($0.watchers), y: $0.rate("create") ?? 0) })
        }
        return LatencyCDFPlot.lines(title: "pods created per second against watchers (\(settings.pods) pods, \(settings.clients) clients)",
                                    series: series, x: "watchers", y: "creates/s")
    }
}
