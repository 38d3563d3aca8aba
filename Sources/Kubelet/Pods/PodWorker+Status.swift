// The pod's status as the kubelet reports it through the status subresource: phase,
// conditions (PodScheduled kept, PodReadyToStartContainers, Initialized, ContainersReady,
// Ready), the node's address as host IP, the pod's own (from CNI; the node's for hostNetwork pods) as pod IP,
// start time, QoS class, and a status per container — written only when it changed.
import APIClient
import ClusterAPI
import Foundation

extension PodWorker {
    /// Pending, Running, Succeeded or Failed, by Kubernetes' rules (`getPhase`).
    func computePhase() -> String {
        let apiPhase = pod.status.phase ?? "Pending"
        let known = slots.values.contains { $0.record != nil }
        if !known && (apiPhase == "Succeeded" || apiPhase == "Failed") { return apiPhase }
        let initContainers = pod.spec.initContainers ?? []
        for container in initContainers {
            guard let slot = slots[container.name] else { continue }
            if slot.succeeded { continue }
            if let exit = slot.exit, restartPolicy == "Never", exit.exitCode != 0 || exit.startFailure != nil { return "Failed" }
            return "Pending"
        }
        var running = 0, waiting = 0, stopped = 0, succeeded = 0
        for container in pod.spec.containers {
            guard let slot = slots[container.name] else { continue }
            if slot.isRunning {
                running += 1
            } else if let exit = slot.exit {
                stopped += 1
                if exit.exitCode == 0 && exit.startFailure == nil { succeeded += 1 }
            } else if slot.previous != nil {
                stopped += 1
            } else {
                waiting += 1
            }
        }
        if waiting > 0 { return "Pending" }
        if running > 0 { return "Running" }
        guard stopped > 0 else { return "Pending" }
        if restartPolicy == "Always" { return "Running" }
        if stopped == succeeded { return "Succeeded" }
        if restartPolicy == "Never" { return "Failed" }
        return "Running"
    }

    func containerStatus(_ container: Container, isInit: Bool) -> ContainerStatusView {
        let slot = slots[container.name] ?? ContainerSlot(name: container.name, isInit: isInit)
        var state = ContainerStatusView.State()
        var lastState = ContainerStatusView.State()
        let containerID = slot.record.map { "\(context.runtime.name)://\($0.id)" }
        if let previous = slot.previous {
            lastState.terminated = terminated(previous.exit, id: "\(context.runtime.name)://\(previous.record.id)")
        }
        if slot.isRunning, let started = slot.started {
            state.running = .init(startedAt: Time(started.startedAt))
        } else if let waiting = slot.waiting, slot.exit == nil || waiting.reason == "CrashLoopBackOff" || waiting.reason == "ErrImageNeverPull"
                    || waiting.reason == "CreateContainerConfigError" || waiting.reason == "InvalidImageName" {
            state.waiting = .init(reason: waiting.reason, message: waiting.message)
            if waiting.reason == "CrashLoopBackOff", let exit = slot.exit, let containerID {
                lastState.terminated = terminated(exit, id: containerID)
            }
        } else if let exit = slot.exit {
            state.terminated = terminated(exit, id: containerID)
        } else {
            let creating = isInit ? previousInitDone(container.name) : allInitDone
            state.waiting = .init(reason: creating ? "ContainerCreating" : "PodInitializing", message: nil)
        }
        let ready = slot.isRunning && (isInit ? false : readiness(container, slot))
        return ContainerStatusView(name: container.name, state: state, lastState: lastState, ready: ready,
                                   restartCount: Int32(slot.restartCount), image: container.image ?? "",
                                   imageID: slot.record?.imageID ?? "", containerID: containerID,
                                   started: slot.isRunning && (Probe.from(container.startupProbe) == nil || slot.startupPassed))
    }

    private func previousInitDone(_ name: String) -> Bool {
        let names = (pod.spec.initContainers ?? []).map(\.name)
        guard let index = names.firstIndex(of: name) else { return false }
        return names[..<index].allSatisfy { slots[$0]?.succeeded == true }
    }

    var allInitDone: Bool { (pod.spec.initContainers ?? []).allSatisfy { slots[$0.name]?.succeeded == true } }

    func readiness(_ container: Container, _ slot: ContainerSlot) -> Bool {
        if Probe.from(container.startupProbe) != nil && !slot.startupPassed { return false }
        return Probe.from(container.readinessProbe) == nil ? true : slot.ready
    }

    func terminated(_ exit: ContainerExit, id: String?) -> ContainerStatusView.Terminated {
        ContainerStatusView.Terminated(exitCode: exit.exitCode, signal: exit.signal, reason: exit.reason, message: exit.startFailure,
                                       startedAt: exit.startedAt.map(Time.init) ?? Time(exit.finishedAt), finishedAt: Time(exit.finishedAt),
                                       containerID: id)
    }

    /// The whole status, as JSON for a merge patch of the status subresource.
    func computeStatus() -> JSONValue {
        let phase = computePhase()
        let statuses = pod.spec.containers.map { containerStatus($0, isInit: false) }
        let initStatuses = (pod.spec.initContainers ?? []).map { containerStatus($0, isInit: true) }
        let now = Time.now()
        // The conditions this kubelet wrote last are newer than the informer's copy of the pod
        // until the informer brings the write back (the answer is not decoded): their
        // transition times are the ones to keep.
        let existing = (try? written?["conditions"]?.decode(as: [PodCondition].self)) ?? pod.status.conditions ?? []
        func condition(_ type: String, _ ok: Bool, reason: String? = nil, message: String? = nil) -> PodCondition {
            let status = ok ? "True" : "False"
            let previous = existing.first { $0.type == type }
            let transition = previous?.status == status ? previous?.lastTransitionTime ?? now : now
            return PodCondition(type: type, status: status, lastProbeTime: nil, lastTransitionTime: transition, reason: ok ? nil : reason,
                                message: ok ? nil : message)
        }
        let ended = phase == "Succeeded" || phase == "Failed"
        let unready = statuses.filter { !$0.ready }.map(\.name)
        let incompleteInit = initStatuses.filter { status in status.state.terminated?.exitCode != 0 }.map(\.name)
        var conditions: [PodCondition] = []
        conditions.append(condition("PodReadyToStartContainers", sandboxReady || (!ended && statuses.contains { $0.state.running != nil })))
        if ended && phase == "Succeeded" {
            conditions.append(condition("Initialized", true))
        } else {
            conditions.append(condition("Initialized", incompleteInit.isEmpty, reason: "ContainersNotInitialized",
                                        message: "containers with incomplete status: [\(incompleteInit.joined(separator: " "))]"))
        }
        let readyReason = ended ? "PodCompleted" : "ContainersNotReady"
        let readyMessage = ended ? nil : "containers with unready status: [\(unready.joined(separator: " "))]"
        conditions.append(condition("ContainersReady", unready.isEmpty && !ended, reason: readyReason, message: readyMessage))
        conditions.append(condition("Ready", unready.isEmpty && !ended, reason: readyReason, message: readyMessage))
        if let scheduled = existing.first(where: { $0.type == "PodScheduled" }) {
            conditions.append(scheduled)
        } else {
            conditions.append(condition("PodScheduled", true))
        }
        let ip = context.settings.nodeIP
        var status: [String: JSONValue] = [
            "phase": .string(phase),
            "conditions": (try? JSONValue(encoding: conditions)) ?? .array([]),
            "hostIP": .string(ip), "hostIPs": [["ip": .string(ip)]],
            "startTime": .string((startTime ?? now).rfc3339),
            "containerStatuses": (try? JSONValue(encoding: statuses)) ?? .array([]),
            "qosClass": .string(qosClass),
        ]
        if let podIP = podIP ?? pod.status.podIP ?? (ownNetwork ? nil : ip) {
            status["podIP"] = .string(podIP)
            status["podIPs"] = [["ip": .string(podIP)]]
        }
        if !initStatuses.isEmpty { status["initContainerStatuses"] = (try? JSONValue(encoding: initStatuses)) ?? .array([]) }
        return .object(status)
    }

    /// BestEffort, Guaranteed or Burstable (Kubernetes' `GetPodQOS`).
    var qosClass: String {
        let containers = pod.spec.containers + (pod.spec.initContainers ?? [])
        let anySet = containers.contains { !($0.resources?.limits ?? [:]).isEmpty || !($0.resources?.requests ?? [:]).isEmpty }
        if !anySet { return "BestEffort" }
        let guaranteed = containers.allSatisfy { container in
            let limits = container.resources?.limits ?? [:], requests = container.resources?.requests ?? [:]
            return ["cpu", "memory"].allSatisfy { limits[$0] != nil && (requests[$0] == nil || requests[$0] == limits[$0]) }
        }
        return guaranteed ? "Guaranteed" : "Burstable"
    }

    /// Writes the status when it changed since the last write.
    func writeStatus() async {
        guard !removedFromAPI else { return }
        // A pod that ended before this kubelet started has had its containers removed: the
        // status written then (exit codes, reasons) is the last word, not rewritten as waiting.
        let endedEarlier = ["Succeeded", "Failed"].contains(pod.status.phase ?? "")
            && slots.values.allSatisfy { $0.record == nil && $0.exit == nil && $0.previous == nil }
        guard !endedEarlier else { return }
        let status = computeStatus()
        guard status.withoutTimes != written?.withoutTimes else { return }
        do {
            // The answer (the whole pod) is not decoded: the informer brings the pod as written,
            // and until then `written` keeps this status from being written again.
            let path = ResourcePath.object(Pod.self, name: pod.metadata.name ?? "", namespace: pod.metadata.namespace) + "/status"
            let response = try await context.client.send(.PATCH, path, json: JSONValue.object(["status": status]).jsonData,
                                                         contentType: "application/merge-patch+json")
            guard (200..<300).contains(response.status.code) else { throw KubeClient.apiError(Int(response.status.code), response.body) }
            written = status
        } catch let error as APIError where error.isNotFound {
            removedFromAPI = true
            kick()
        } catch {
            logger.warning("cannot write the pod's status; retrying", metadata: ["error": "\(error)"])
            kick(after: .seconds(1))
        }
    }
}

extension JSONValue {
    /// The status without its condition transition times, to see whether anything else changed.
    var withoutTimes: JSONValue {
        guard case .object(var object) = self else { return self }
        if case .array(let conditions)? = object["conditions"] {
            object["conditions"] = .array(conditions.map { condition in
                guard case .object(var fields) = condition else { return condition }
                fields["lastTransitionTime"] = nil
                return .object(fields)
            })
        }
        return .object(object)
    }
}
