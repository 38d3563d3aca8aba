// Graceful deletion: the pod has a deletionTimestamp (or is gone from the API). Its running
// containers get SIGTERM, then SIGKILL after the grace period (the deletion's, else the
// pod's terminationGracePeriodSeconds, else 30 s); then its volumes are torn down, its
// namespaces, cgroups and logs removed, and the pod object deleted with grace 0 — which
// ends it in the API.
import APIClient
import ClusterAPI
import Foundation

extension PodWorker {
    func terminate() async {
        let grace = Duration.seconds(max(0, pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30))
        if !terminating {
            terminating = true
            for (name, slot) in slots where slot.isRunning {
                let container = (pod.spec.containers + (pod.spec.initContainers ?? [])).first { $0.name == name }
                context.events.pod(pod, reason: "Killing", message: "Stopping container \(name)",
                                         fieldPath: container.map { fieldPath($0, isInit: slot.isInit) })
            }
        }
        for slot in slots.values { slot.probes?.cancel() }
        let running = slots.values.filter(\.isRunning).compactMap { $0.record }
        let runtime = context.runtime
        let exits = await withTaskGroup(of: (String, ContainerExit?).self) { group in
            for record in running {
                group.addTask { (record.name, await runtime.stop(record.id, grace: max(grace, .seconds(1)))) }
            }
            var exits: [(String, ContainerExit?)] = []
            for await exit in group { exits.append(exit) }
            return exits
        }
        for (name, exit) in exits {
            if let exit { slots[name]?.exit = exit }
        }
        await writeStatus()
        await removeDeadContainers(keepCurrent: false)
        do {
            try await context.network?.tearDown(pod, netns: context.sandbox(uid).netNamespace)
            try await context.sandbox(uid).remove()
            try await context.volumes.tearDown(podUID: uid)
        } catch {
            logger.warning("cannot tear down the pod's network or volumes; retrying", metadata: ["error": "\(error)"])
            if let error = error as? KubeletError, error.code == .network {
                context.events.pod(pod, type: "Warning", reason: "FailedKillPod",
                                   message: "error killing pod: failed to \"KillPodSandbox\" for \"\(uid)\": \(error)")
            }
            kick(after: .seconds(2))
            return
        }
        context.runtime.cgroups.remove(Cgroups.podPath(parent: context.runtime.cgroupParent, podUID: uid))
        try? FileManager.default.removeItem(atPath: ContainerBuilder.logDirectory(base: context.settings.podLogsDirectory, pod: pod))
        if !removedFromAPI {
            do {
                let body: JSONValue = ["kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                       "preconditions": ["uid": .string(uid)]]
                let response = try await context.client.send(.DELETE, ResourcePath.object(Pod.self, name: pod.metadata.name ?? "",
                                                                                          namespace: pod.metadata.namespace),
                                                             json: try JSONEncoder().encode(body))
                guard (200..<300).contains(response.status.code) || response.status.code == 404 || response.status.code == 409 else {
                    logger.warning("cannot delete the pod; retrying", metadata: ["status": "\(response.status.code)"])
                    kick(after: .seconds(1))
                    return
                }
            } catch {
                logger.warning("cannot delete the pod; retrying", metadata: ["error": "\(error)"])
                kick(after: .seconds(1))
                return
            }
        }
        logger.info("pod terminated")
        finished = true
        await onFinish(uid)
    }
}
