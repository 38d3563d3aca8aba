// Starting containers and deciding restarts: init containers one at a time in order (a failed
// one is retried unless the pod's restartPolicy is Never, which fails the pod), then the app
// containers by restart policy, with Kubernetes' back-off (a first restart at once, then 10 s
// doubling to 5 min, reset after 10 min of running), and the waiting reasons and events
// Kubernetes gives (ErrImageNeverPull, CreateContainerConfigError, CrashLoopBackOff).
import ClusterAPI
import Foundation

extension PodWorker {
    var restartPolicy: String { pod.spec.restartPolicy ?? "Always" }

    /// Adopts the containers of this pod found on disk (a kubelet restart): the newest of each
    /// name is the current one, running or ended; `last.json` gives the one before.
    func adopt() {
        let mine = context.runtime.records().filter { $0.podUID == uid }
        // The pod's address (probes ask it) from the CNI cache, before any probe starts.
        if !mine.isEmpty { podIP = ownNetwork ? context.network?.podIP(uid: uid) : context.settings.nodeIP }
        for (name, records) in Dictionary(grouping: mine, by: \.name) {
            guard var slot = slots[name] else { continue }
            let sorted = records.sorted { $0.attempt < $1.attempt }
            guard let current = sorted.last else { continue }
            slot.record = current
            switch context.runtime.state(current.id) {
            case .running(let started):
                slot.started = started
                watchExit(name: name, id: current.id)
            case .exited(let exit):
                slot.started = exit.startedAt.map { ContainerStarted(pid: 0, startedAt: $0) }
                slot.exit = exit
            case .unknown:
                slot.exit = ContainerExit(exitCode: 255, signal: nil, oomKilled: false, startedAt: nil, finishedAt: Date(), startFailure: nil)
            }
            slot.previous = RecordFiles.read(LastTermination.self, from: lastPath(name))
            slots[name] = slot
            // Probes start from the stored slot (they read its record): an adopted container
            // is probed again, and becomes ready again once its readiness probe passes.
            if slot.isRunning { startProbes(name) }
            logger.info("adopted container", metadata: ["container": "\(name)", "id": "\(current.id)", "running": "\(slot.isRunning)"])
        }
        if !mine.isEmpty {
            let sandbox = context.sandbox(uid)
            sandboxReady = sandbox.isReady(network: ownNetwork) && podIP != nil && (!pod.sharesProcessNamespace || sandbox.pausePID != nil)
        }
    }

    func lastPath(_ name: String) -> String { context.podDirectory(uid) + "/containers/\(name)/last.json" }

    /// Runs the init containers in order; true once all have succeeded.
    func runInitContainers() async -> Bool {
        for container in pod.spec.initContainers ?? [] {
            guard let slot = slots[container.name] else { continue }
            if slot.succeeded { continue }
            if slot.isRunning { return false }
            if slot.record != nil, slot.exit != nil {
                guard restartPolicy != "Never" else { return false }
                await restartIfDue(container, isInit: true)
                return false
            }
            await start(container, isInit: true)
            return false
        }
        return true
    }

    func runAppContainers() async {
        for container in pod.spec.containers {
            guard let slot = slots[container.name] else { continue }
            if slot.isRunning { continue }
            guard slot.record != nil else {
                await start(container, isInit: false)
                continue
            }
            guard let exit = slot.exit else { continue }
            let restart = restartPolicy == "Always" || (restartPolicy == "OnFailure" && (exit.exitCode != 0 || exit.startFailure != nil))
            if restart { await restartIfDue(container, isInit: false) }
        }
    }

    /// Restarts an ended container now, or once its back-off has passed (waiting
    /// `CrashLoopBackOff` meanwhile).
    func restartIfDue(_ container: Container, isInit: Bool) async {
        guard var slot = slots[container.name], let exit = slot.exit else { return }
        let now = ContinuousClock.now
        let finishedAgo = Duration.seconds(max(0, Date().timeIntervalSince(exit.finishedAt)))
        // Back-off forgets a container that ran long enough (Kubernetes: twice the ceiling since it was set).
        if let setAt = slot.backoffSetAt, now - setAt > context.settings.backoffMax * 2 { slot.backoff = nil }
        if let delay = slot.backoff, finishedAgo < delay {
            let message = "back-off \(Self.goDuration(delay)) restarting failed container=\(container.name) pod=\(pod.logName)"
            if slot.waiting?.reason != "CrashLoopBackOff" {
                context.events.pod(pod, type: "Warning", reason: "BackOff",
                                         message: "Back-off restarting failed container \(container.name) in pod \(pod.logName)",
                                         fieldPath: fieldPath(container, isInit: isInit))
            }
            slot.waiting = ("CrashLoopBackOff", message)
            slots[container.name] = slot
            kick(after: delay - finishedAgo)
            return
        }
        slot.backoff = slot.backoff.map { min($0 * 2, context.settings.backoffMax) } ?? context.settings.backoffInitial
        slot.backoffSetAt = now
        slots[container.name] = slot
        await start(container, isInit: isInit)
    }

    /// Starts a new container for `container` (attempt = previous + 1).
    func start(_ container: Container, isInit: Bool) async {
        guard var slot = slots[container.name] else { return }
        if let retryAt = slot.retryAt, ContinuousClock.now < retryAt {
            kick(after: retryAt - ContinuousClock.now)
            return
        }
        let attempt = slot.record.map { $0.attempt + 1 } ?? 0
        let path = fieldPath(container, isInit: isInit)
        if slot.waiting == nil { slot.waiting = ("ContainerCreating", nil) }
        slots[container.name] = slot
        let reference = container.image ?? ""
        let image: ResolvedImage
        do {
            image = try await context.images.resolve(reference)
        } catch let error as KubeletError {
            let reason = error.code == .invalidImage ? "InvalidImageName" : "ErrImageNeverPull"
            if slot.waiting?.reason != reason {
                context.events.pod(pod, type: "Warning", reason: reason, message: error.message, fieldPath: path)
            }
            await wait(container.name, reason: reason, message: error.message, retry: .seconds(5))
            return
        } catch {
            await wait(container.name, reason: "ErrImageNeverPull", message: "\(error)", retry: .seconds(5))
            return
        }
        if slot.waiting?.reason != "CrashLoopBackOff" || slot.record == nil {
            context.events.pod(pod, reason: "Pulled", message: "Container image \"\(reference)\" already present on machine", fieldPath: path)
        }
        let config: ContainerConfig
        let layers: [String]
        do {
            var builder = ContainerBuilder(pod: pod, nodeName: context.settings.nodeName, nodeIP: context.settings.nodeIP,
                                           volumes: volumeState.ready, sandbox: context.sandbox(uid),
                                           podNetwork: ownNetwork ? (context.sandbox(uid).netNamespace, podIP ?? "") : nil,
                                           podDirectory: context.podDirectory(uid),
                                           podLogsDirectory: context.settings.podLogsDirectory, podPidsLimit: context.settings.podPidsLimit)
            builder.envSources = try await EnvSources.fetch(for: container, namespace: pod.metadata.namespace ?? "default", client: context.client)
            config = try builder.config(for: container, isInit: isInit, attempt: attempt, image: image)
            for message in builder.skippedEnvFromKeys(container) {
                context.events.pod(pod, type: "Warning", reason: "InvalidEnvironmentVariableNames", message: message)
            }
            layers = try await context.images.layerDirectories(of: image)
        } catch {
            let message = (error as? KubeletError)?.message ?? "\(error)"
            context.events.pod(pod, type: "Warning", reason: "Failed", message: "Error: \(message)", fieldPath: path)
            await wait(container.name, reason: "CreateContainerConfigError", message: message, retry: .seconds(5))
            return
        }
        // The container before this one becomes lastState; older ones are removed.
        if let record = slot.record, let exit = slot.exit {
            let last = LastTermination(record: record, exit: exit)
            try? FileManager.default.createDirectory(atPath: (lastPath(container.name) as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            try? RecordFiles.write(last, to: lastPath(container.name))
            slot.previous = last
            slots[container.name] = slot   // kept across the awaits below, which re-read the slot
            try? await context.runtime.remove(record.id)
        }
        do {
            let record = try await context.runtime.start(config, layers: layers)
            slot = slots[container.name] ?? slot
            slot.record = record
            slot.exit = nil
            slot.waiting = nil
            slot.retryAt = nil
            slot.ready = false
            slot.startupPassed = false
            if case .running(let started) = context.runtime.state(record.id) {
                slot.started = started
            } else {
                slot.started = ContainerStarted(pid: 0, startedAt: Date())
            }
            slots[container.name] = slot
            context.events.pod(pod, reason: "Created", message: "Created container \(container.name)", fieldPath: path)
            context.events.pod(pod, reason: "Started", message: "Started container \(container.name)", fieldPath: path)
            watchExit(name: container.name, id: record.id)
            startProbes(container.name)
        } catch {
            let message = (error as? KubeletError)?.message ?? "\(error)"
            // The runtime left the failed container with its exit (StartError, 128).
            slot = slots[container.name] ?? slot
            let failed = context.runtime.records().filter { $0.podUID == uid && $0.name == container.name && $0.attempt == attempt }
                .max { $0.createdAt < $1.createdAt }
            if let failed {
                slot.record = failed
                slot.started = nil
                slot.exit = ContainerExit(exitCode: 128, signal: nil, oomKilled: false, startedAt: nil, finishedAt: Date(), startFailure: message)
                slot.waiting = nil
            } else {
                slot.waiting = ("CreateContainerError", message)
                slot.retryAt = ContinuousClock.now + .seconds(5)
            }
            slots[container.name] = slot
            context.events.pod(pod, type: "Warning", reason: "Failed",
                                     message: "Error: failed to start container \"\(container.name)\": \(message)", fieldPath: path)
            kick(after: .milliseconds(100))
        }
    }

    func wait(_ name: String, reason: String, message: String, retry: Duration) async {
        guard var slot = slots[name] else { return }
        slot.waiting = (reason, message)
        slot.retryAt = ContinuousClock.now + retry
        slots[name] = slot
        kick(after: retry)
    }

    /// Learns when container `id` ends, and wakes the loop.
    func watchExit(name: String, id: String) {
        let runtime = context.runtime
        Task { [weak self] in
            guard let exit = try? await runtime.waitForExit(id) else { return }
            await self?.exited(name: name, id: id, exit: exit)
        }
    }

    func exited(name: String, id: String, exit: ContainerExit) {
        guard var slot = slots[name], slot.record?.id == id else { return }
        slot.exit = exit
        slot.ready = false
        slot.probes?.cancel()
        slot.probes = nil
        slots[name] = slot
        logger.info("container ended", metadata: ["container": "\(name)", "exitCode": "\(exit.exitCode)", "reason": "\(exit.reason)"])
        kick()
    }

    /// Removes the ended containers (their roots and directories; logs stay).
    func removeDeadContainers(keepCurrent: Bool) async {
        for record in context.runtime.records() where record.podUID == uid {
            let current = slots[record.name]?.record?.id == record.id
            if keepCurrent && current { continue }
            if case .running = context.runtime.state(record.id) { continue }
            try? await context.runtime.remove(record.id)
        }
    }

    func fieldPath(_ container: Container, isInit: Bool) -> String {
        (isInit ? "spec.initContainers{" : "spec.containers{") + container.name + "}"
    }

    /// Go's `Duration.String()` for whole seconds and minutes ("10s", "1m20s", "5m0s").
    static func goDuration(_ duration: Duration) -> String {
        let seconds = Int(duration.components.seconds)
        if seconds < 60 { return "\(seconds)s" }
        return "\(seconds / 60)m\(seconds % 60)s"
    }
}
