// Probes, as the kubelet's prober runs them: per container, a startup probe first (liveness
// and readiness wait for it), then liveness and readiness, each every `periodSeconds` after
// `initialDelaySeconds`, with `timeoutSeconds`, counting `successThreshold` and
// `failureThreshold`. exec runs the command in the container (exit 0 passes), httpGet asks the
// pod's address (2xx and 3xx pass), tcpSocket connects. A liveness or startup failure kills
// the container (its restart policy then applies); readiness sets `ready`. Failures are
// `Unhealthy` events.
import ClusterAPI
import Foundation
import HTTPKit
import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif

enum ProbeKind: String, Sendable {
    case liveness = "Liveness", readiness = "Readiness", startup = "Startup"
}

/// What a probe run tells its container's worker.
enum ProbeOutcome: Sendable {
    /// One attempt failed (an `Unhealthy` event), the threshold not yet reached.
    case attemptFailed(String)
    /// Passed `successThreshold` times in a row.
    case passed
    /// Failed `failureThreshold` times in a row.
    case failed(String)
}

extension PodWorker {
    func startProbes(_ name: String) {
        guard var slot = slots[name], !slot.isInit, let record = slot.record,
              let container = pod.spec.containers.first(where: { $0.name == name }) else { return }
        let startup = Probe.from(container.startupProbe)
        let liveness = Probe.from(container.livenessProbe)
        let readiness = Probe.from(container.readinessProbe)
        slot.probes?.cancel()
        guard startup != nil || liveness != nil || readiness != nil else {
            slot.startupPassed = true
            slots[name] = slot
            return
        }
        let context = self.context
        // httpGet and tcpSocket ask the pod's own address (the node's for hostNetwork pods).
        let ip = podIP ?? context.settings.nodeIP
        let id = record.id
        let ports = container.ports ?? []
        // The worker is held weakly: probes never keep a finished pod's worker alive.
        let report: @Sendable (ProbeKind, ProbeOutcome) async -> Void = { [weak self] kind, outcome in
            await self?.probeResult(name: name, id: id, kind: kind, outcome: outcome)
        }
        slot.probes = Task {
            if let startup {
                let passed = await Self.runUntilDecided(startup, kind: .startup, id: id, ip: ip, ports: ports, context: context) { outcome in
                    await report(.startup, outcome)
                }
                guard passed, !Task.isCancelled else { return }
            } else {
                await report(.startup, .passed)
            }
            await withTaskGroup(of: Void.self) { group in
                for (probe, kind) in [(liveness, ProbeKind.liveness), (readiness, ProbeKind.readiness)] {
                    guard let probe else { continue }
                    group.addTask {
                        _ = await Self.runUntilDecided(probe, kind: kind, id: id, ip: ip, ports: ports, context: context, forever: true) { outcome in
                            await report(kind, outcome)
                        }
                    }
                }
            }
        }
        slots[name] = slot
    }

    /// Runs `probe` every period; reports each change of its thresholded result. Returns
    /// true once it passed (startup), false on a decided failure; `forever` keeps going.
    static func runUntilDecided(_ probe: Probe, kind: ProbeKind, id: String, ip: String, ports: [ContainerPort], context: KubeletContext,
                                forever: Bool = false, report: @escaping @Sendable (ProbeOutcome) async -> Void) async -> Bool {
        let period = Duration.seconds(Int64(max(1, probe.periodSeconds ?? 10)))
        let timeout = Duration.seconds(Int64(max(1, probe.timeoutSeconds ?? 1)))
        let successes = Int(max(1, probe.successThreshold ?? 1)), failures = Int(max(1, probe.failureThreshold ?? 3))
        try? await Task.sleep(for: .seconds(Int64(max(0, probe.initialDelaySeconds ?? 0))))
        var okRun = 0, failRun = 0
        var reported: Bool?
        while !Task.isCancelled {
            let (ok, message) = await runOnce(probe, id: id, ip: ip, ports: ports, timeout: timeout, context: context)
            if ok { okRun += 1; failRun = 0 } else { failRun += 1; okRun = 0 }
            if !ok { await report(.attemptFailed(message.isEmpty ? "failed" : message)) }   // every failure is an event
            if ok && okRun >= successes && reported != true {
                reported = true
                await report(.passed)
                if !forever { return true }
            } else if !ok && failRun >= failures {
                reported = false
                await report(.failed(message))
                if !forever { return false }
                failRun = 0
            }
            try? await Task.sleep(for: period)
        }
        return false
    }

    /// The TLS context of HTTPS probes: made once; the server's certificate is not verified
    /// (Kubernetes' prober skips verification too).
    static let probeTLS: NIOSSLContext? = {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return try? NIOSSLContext(configuration: configuration)
    }()

    static func runOnce(_ probe: Probe, id: String, ip: String, ports: [ContainerPort], timeout: Duration,
                        context: KubeletContext) async -> (Bool, String) {
        if let exec = probe.exec {
            do {
                let result = try await context.runtime.execSync(id, command: exec.command ?? [], timeout: timeout)
                return (result.status == 0, result.status == 0 ? "" : result.output.trimmingCharacters(in: .whitespacesAndNewlines))
            } catch {
                return (false, "command \(exec.command ?? []) timed out")
            }
        }
        if let http = probe.httpGet {
            guard let port = resolvePort(http.port, ports) else { return (false, "invalid port \(http.port)") }
            let host = (http.host ?? "").isEmpty ? ip : http.host!
            let path = http.path ?? "/"
            let url = "\((http.scheme ?? "HTTP").lowercased())://\(host):\(port)\(path)"
            // HTTPS as Kubernetes probes it: the certificate is not verified.
            var client: HTTPClient
            if http.scheme?.uppercased() == "HTTPS", let context = Self.probeTLS {
                client = HTTPClient(host: host, port: port, sslContext: context, timeout: timeout)
            } else {
                client = HTTPClient(host: host, port: port, timeout: timeout)
            }
            client.timeout = timeout
            var headers: [(String, String)] = [("User-Agent", "kube-probe/1.32"), ("Accept", "*/*")]
            for header in http.httpHeaders ?? [] { headers.append((header.name, header.value)) }
            let request = HTTPRequest(method: .GET, uri: path, headers: .init(headers), body: Data())
            do {
                let response = try await client.send(request)
                let code = Int(response.status.code)
                if (200..<400).contains(code) { return (true, "") }
                return (false, "HTTP probe failed with statuscode: \(code)")
            } catch {
                return (false, "Get \"\(url)\": \(error)")
            }
        }
        if let tcp = probe.tcpSocket {
            guard let port = resolvePort(tcp.port, ports) else { return (false, "invalid port \(tcp.port)") }
            let host = (tcp.host ?? "").isEmpty ? ip : tcp.host!
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
                    .connect(host: host, port: port).get()
                try? await channel.close()
                return (true, "")
            } catch {
                return (false, "dial tcp \(host):\(port): connect: connection refused")
            }
        }
        return (false, "the probe has no handler (exec, httpGet or tcpSocket)")
    }

    static func resolvePort(_ value: JSONValue, _ ports: [ContainerPort]) -> Int? {
        if let number = value.int64Value, (1...65535).contains(number) { return Int(number) }
        if let name = value.stringValue {
            if let number = Int(name), (1...65535).contains(number) { return number }
            return ports.first { $0.name == name }.map { Int($0.containerPort) }
        }
        return nil
    }

    /// A probe's result for container `name` (still container `id`).
    func probeResult(name: String, id: String, kind: ProbeKind, outcome: ProbeOutcome) async {
        guard var slot = slots[name], slot.record?.id == id, slot.isRunning, !terminating else { return }
        let container = pod.spec.containers.first { $0.name == name }
        let path = container.map { fieldPath($0, isInit: false) }
        switch (kind, outcome) {
        case (_, .attemptFailed(let message)):
            context.events.pod(pod, type: "Warning", reason: "Unhealthy", message: "\(kind.rawValue) probe failed: \(message)", fieldPath: path)
        case (.readiness, .passed), (.readiness, .failed):
            if case .passed = outcome { slot.ready = true } else { slot.ready = false }
            slots[name] = slot
            kick()
        case (.startup, .passed):
            slot.startupPassed = true
            slots[name] = slot
            kick()
        case (.liveness, .failed), (.startup, .failed):
            // Probing stops until the container runs again (its new run starts new probes), as
            // upstream puts the worker on hold: one kill, not one per failure during the grace.
            slot.probes?.cancel()
            slot.probes = nil
            slots[name] = slot
            context.events.pod(pod, reason: "Killing",
                                     message: "Container \(name) failed \(kind.rawValue.lowercased()) probe, will be restarted", fieldPath: path)
            let grace = Duration.seconds(max(1, pod.spec.terminationGracePeriodSeconds ?? 30))
            let runtime = context.runtime
            Task { _ = await runtime.stop(id, grace: grace) }
        case (.liveness, .passed):
            break
        }
    }
}
