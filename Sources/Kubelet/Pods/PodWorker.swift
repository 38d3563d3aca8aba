// One pod's worker: a loop that makes the node match the pod, one pass (`sync`) at a time,
// level-triggered — woken by a new version of the pod, a container's exit, a probe result or
// a timer (back-off, volumes still waiting). Each pass: pod being deleted → terminate; ended
// (Succeeded/Failed) → release its volumes and namespaces; otherwise sandbox → volumes →
// init containers in order → app containers by restart policy; then the status.
import APIClient
import ClusterAPI
import Foundation
import Logging

actor PodWorker {
    let uid: String
    let context: KubeletContext
    var pod: Pod
    /// The pod object is gone from the API (deleted with grace 0, or by another client).
    var removedFromAPI = false
    var slots: [String: ContainerSlot] = [:]
    var startTime: Time?
    var sandboxReady = false
    /// The pod's address once its network is set up (the node's for hostNetwork pods).
    var podIP: String?
    var volumeState = VolumeSetUp()
    var volumesReady = false
    var volumeWaitSince: ContinuousClock.Instant?
    var failedMountReportedAt: ContinuousClock.Instant?
    /// The status last written.
    var written: JSONValue?
    /// Set once the pod ended and its sandbox and volumes were released.
    var released = false
    /// Set once the pod was terminated and removed: the loop ends.
    var finished = false
    var terminating = false
    private let kicks: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private var timers: [ContinuousClock.Instant: Task<Void, Never>] = [:]
    let onFinish: @Sendable (String) async -> Void

    init(pod: Pod, context: KubeletContext, onFinish: @escaping @Sendable (String) async -> Void) {
        self.uid = pod.uid
        self.pod = pod
        self.context = context
        self.onFinish = onFinish
        (wakes, kicks) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        for container in pod.spec.initContainers ?? [] { slots[container.name] = ContainerSlot(name: container.name, isInit: true) }
        for container in pod.spec.containers { slots[container.name] = ContainerSlot(name: container.name, isInit: false) }
    }

    var logger: Logger {
        var logger = context.logger
        logger[metadataKey: "pod"] = "\(pod.key)"
        return logger
    }

    // MARK: Loop

    /// Adopts the containers a previous kubelet left, then syncs on every wake until the pod
    /// is terminated.
    func run() async {
        adopt()
        kick()
        for await _ in wakes {
            if finished { break }
            await sync()
            if finished { break }
        }
        for timer in timers.values { timer.cancel() }
        for slot in slots.values { slot.probes?.cancel() }
    }

    /// Wakes the loop (coalesced: several kicks before a pass make one pass).
    nonisolated func kick() { kicks.yield() }

    /// Wakes the loop after `delay`.
    func kick(after delay: Duration) {
        let when = ContinuousClock.now + delay
        if timers.keys.contains(where: { $0 <= when && $0 > ContinuousClock.now }) { return }
        timers[when] = Task { [weak self] in
            try? await Task.sleep(until: when, clock: .continuous)
            guard !Task.isCancelled, let self else { return }
            await self.timerFired(when)
        }
    }

    private func timerFired(_ when: ContinuousClock.Instant) {
        timers[when] = nil
        kick()
    }

    /// A new version of the pod.
    func update(_ pod: Pod) {
        guard pod.uid == uid else { return }
        self.pod = pod
        kick()
    }

    /// The pod object is gone.
    func removed() {
        removedFromAPI = true
        kick()
    }

    func stop() {
        finished = true
        kicks.finish()
    }

    // MARK: Sync

    func sync() async {
        if removedFromAPI || pod.metadata.deletionTimestamp != nil {
            await terminate()
            return
        }
        // Not a termination's: it waits out the containers' grace period, up to minutes.
        context.activity.begin()
        defer { context.activity.end() }
        if startTime == nil { startTime = pod.status.startTime ?? Time.now() }
        if isEnded {
            await release()
            await writeStatus()
            return
        }
        guard await ensureSandbox() else {
            await writeStatus()
            kick(after: .seconds(2))
            return
        }
        guard await ensureVolumes() else {
            await writeStatus()
            return
        }
        if await runInitContainers() {
            await runAppContainers()
        }
        await writeStatus()
        if isEnded {
            await release()
        }
    }

    /// Whether the pod gets a network namespace of its own.
    var ownNetwork: Bool { context.network != nil && !(pod.spec.hostNetwork ?? false) }

    private func ensureSandbox() async -> Bool {
        let sandbox = context.sandbox(uid)
        // A pause that died took the pod's containers with it: a new one before they restart.
        if sandboxReady && pod.sharesProcessNamespace && sandbox.pausePID == nil { sandboxReady = false }
        if sandboxReady { return true }
        let (resolver, dnsEvents) = PodDNS.config(for: pod, settings: context.settings.dns)
        for (reason, message) in dnsEvents {
            context.events.pod(pod, type: "Warning", reason: reason, message: message)
        }
        do {
            try FileManager.default.createDirectory(atPath: context.podDirectory(uid), withIntermediateDirectories: true)
            let fresh = try await sandbox.create(hostname: pod.metadata.name ?? "", nodeIP: context.settings.nodeIP,
                                                 network: ownNetwork, resolver: resolver)
            if ownNetwork, let network = context.network {
                // A new namespace: what an earlier one had (its address) is released first.
                if fresh { try await network.tearDown(pod, netns: sandbox.netNamespace) }
                let ip = try await network.setUp(pod, netns: sandbox.netNamespace, loopbackUp: fresh)
                try sandbox.writeHosts(hostname: pod.metadata.name ?? "", ip: ip)
                podIP = ip
            } else {
                podIP = context.settings.nodeIP
            }
            if pod.sharesProcessNamespace {
                try await sandbox.ensurePause(command: context.runtime.pauseCommand, cgroupRoot: context.runtime.cgroups.root,
                                              cgroupPath: Cgroups.podPath(parent: context.runtime.cgroupParent, podUID: uid) + "/pause")
            }
            sandboxReady = true
            return true
        } catch {
            logger.warning("cannot create the pod sandbox", metadata: ["error": "\(error)"])
            context.events.pod(pod, type: "Warning", reason: "FailedCreatePodSandBox",
                                     message: "Failed to create pod sandbox: \(error)")
            return false
        }
    }

    private func ensureVolumes() async -> Bool {
        if volumesReady { return true }
        let state = await context.volumes.setUp(pod, ready: volumeState.ready)
        volumeState = state
        if state.isReady {
            volumesReady = true
            volumeWaitSince = nil
            return true
        }
        let now = ContinuousClock.now
        if volumeWaitSince == nil { volumeWaitSince = now }
        for (volume, message) in state.failed.sorted(by: { $0.key < $1.key }) {
            context.events.pod(pod, type: "Warning", reason: "FailedMount", message: message.hasPrefix("MountVolume") ? message : "MountVolume.SetUp failed for volume \"\(volume)\" : \(message)")
        }
        if let since = volumeWaitSince, now - since >= context.settings.volumeTimeout,
           failedMountReportedAt.map({ now - $0 >= context.settings.volumeTimeout }) ?? true {
            failedMountReportedAt = now
            let unmounted = (Array(state.waiting.keys) + Array(state.failed.keys)).sorted()
            let unattached = state.unattached.sorted()
            context.events.pod(pod, type: "Warning", reason: "FailedMount",
                                     message: "Unable to attach or mount volumes: unmounted volumes=[\(unmounted.joined(separator: " "))], unattached volumes=[\(unattached.joined(separator: " "))], failed to process volumes=[]: timed out waiting for the condition")
        }
        // Attachments usually come within a second: look again soon (an attachment alone is one
        // read, so every 25 ms for two seconds), then less often.
        let waited = volumeWaitSince.map { now - $0 } ?? .zero
        let attachmentsOnly = !state.unattached.isEmpty && state.unattached.count == state.waiting.count
        kick(after: !state.failed.isEmpty ? .seconds(2)
             : attachmentsOnly && waited < .seconds(2) ? .milliseconds(25)
             : waited < .seconds(5) ? .milliseconds(100) : .seconds(1))
        return false
    }

    /// Online expansion, asked by housekeeping: grows the file systems of this running pod's
    /// claims whose resize waits for the node, and says so in the pod's events.
    func expandVolumesIfPending() async {
        guard volumesReady, !terminating, !removedFromAPI, pod.metadata.deletionTimestamp == nil, !isEnded else { return }
        let result = await context.volumes.expandPending(pod)
        let node = context.settings.nodeName
        for volume in result.expanded {
            context.events.pod(pod, type: "Normal", reason: "FileSystemResizeSuccessful",
                                     message: "MountVolume.NodeExpandVolume succeeded for volume \"\(volume)\" \(node)")
        }
        for (volume, message) in result.failed.sorted(by: { $0.key < $1.key }) {
            context.events.pod(pod, type: "Warning", reason: "FileSystemResizeFailed",
                                     message: message.hasPrefix("MountVolume") ? message : "MountVolume.NodeExpandVolume failed for volume \"\(volume)\" : \(message)")
        }
    }

    /// The phase the pod has reached: ended when no container will run again.
    var isEnded: Bool {
        let phase = computePhase()
        return phase == "Succeeded" || phase == "Failed"
    }

    /// Releases what an ended pod holds: containers' roots, volumes, namespaces, cgroups.
    func release() async {
        guard !released else { return }
        for slot in slots.values { slot.probes?.cancel() }
        await removeDeadContainers(keepCurrent: false)
        do {
            try await context.network?.tearDown(pod, netns: context.sandbox(uid).netNamespace)
            try await context.sandbox(uid).remove()
            try await context.volumes.tearDown(podUID: uid)
            context.runtime.cgroups.remove(Cgroups.podPath(parent: context.runtime.cgroupParent, podUID: uid))
            released = true
            sandboxReady = false
            volumesReady = false
            volumeState = VolumeSetUp()
        } catch {
            logger.warning("cannot release the volumes of an ended pod; retrying", metadata: ["error": "\(error)"])
            kick(after: .seconds(2))
        }
    }
}
