// The cloud controller manager's node controllers: Kubernetes' view of the cloud's instances.
//
// Initialisation: a Node that registers with the `node.cloudprovider.kubernetes.io/uninitialized`
// taint gets its instance looked up by name, then its providerID (`ballast://<zone>/<id>`), its
// region, zone and instance-type labels and its addresses; the taint goes. Lifecycle: a Node
// whose instance is terminated (or gone) is deleted; one whose instance is stopped is tainted
// `node.cloudprovider.kubernetes.io/shutdown` until it runs again.
//
// It reads and writes Nodes only through `NodeStore`, which the API client implements; the
// cloud only through `CloudProvider`.
import ClusterAPI
import CloudProvider
import Foundation
import Logging

/// What the controllers need of the API server.
public protocol NodeStore: Sendable {
    func listNodes() async throws -> [Node]
    /// Replaces metadata and spec, if `metadata.resourceVersion` is current
    /// (`NodeStoreError.conflict` otherwise); returns the stored node.
    func updateNode(_ node: Node) async throws -> Node
    /// Replaces status (the `status` subresource); returns the stored node.
    func updateNodeStatus(_ node: Node) async throws -> Node
    func deleteNode(name: String) async throws
}

public enum NodeStoreError: Error, Equatable {
    /// The node changed since it was read: read it again.
    case conflict(String)
    case notFound(String)
}

public enum CloudTaint {
    public static let uninitialized = "node.cloudprovider.kubernetes.io/uninitialized"
    public static let shutdown = "node.cloudprovider.kubernetes.io/shutdown"
}

public enum CloudAnnotation {
    /// The address a kubelet was given with --node-ip (set with an external cloud provider).
    public static let providedNodeIP = "alpha.kubernetes.io/provided-node-ip"
}

public enum CloudLabel {
    public static let region = "topology.kubernetes.io/region"
    public static let zone = "topology.kubernetes.io/zone"
    public static let instanceType = "node.kubernetes.io/instance-type"
}

/// The providerID of an instance, and back.
public enum ProviderID {
    public static let scheme = "ballast://"

    public static func make(_ instance: Instance) -> String { "\(scheme)\(instance.zone)/\(instance.id)" }

    /// The instance id of a `ballast://zone/i-…` providerID; nil for anything else.
    public static func instanceID(_ providerID: String) -> String? {
        guard providerID.hasPrefix(scheme) else { return nil }
        let parts = providerID.dropFirst(scheme.count).split(separator: "/")
        guard parts.count == 2, (try? CloudValidation.checkID(String(parts[1]), .instance, parameter: "providerID")) != nil else { return nil }
        return String(parts[1])
    }
}

public struct NodeController: Sendable {
    public enum Outcome: Equatable, Sendable {
        case unchanged
        case initialized(instanceID: String)
        case taintedShutdown
        case untaintedShutdown
        case deleted(reason: String)
        /// An uninitialized node with no instance of its name: left tainted, and retried.
        case waitingForInstance
    }

    public let cloud: any CloudProvider
    public let nodes: any NodeStore
    let logger: Logger

    public init(cloud: any CloudProvider, nodes: any NodeStore, logger: Logger) {
        self.cloud = cloud
        self.nodes = nodes
        self.logger = logger
    }

    /// One pass over every node; errors are per node and do not stop the pass.
    public func reconcileAll() async throws -> [String: Result<Outcome, any Error>] {
        let region = try await cloud.describeRegion().region
        var outcomes: [String: Result<Outcome, any Error>] = [:]
        for node in try await nodes.listNodes() {
            let name = node.metadata.name ?? ""
            do {
                outcomes[name] = .success(try await reconcile(node, region: region))
            } catch {
                logger.warning("cannot reconcile node", metadata: ["node": "\(name)", "error": "\(error)"])
                outcomes[name] = .failure(error)
            }
        }
        return outcomes
    }

    /// Passes every `interval` until the task is cancelled.
    public func run(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                for (node, outcome) in try await reconcileAll() {
                    if case .success(let done) = outcome, done != .unchanged {
                        logger.info("reconciled node", metadata: ["node": "\(node)", "outcome": "\(done)"])
                    }
                }
            } catch {
                logger.warning("cannot list nodes or reach the cloud", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Brings one node in line with its instance.
    public func reconcile(_ node: Node, region: String) async throws -> Outcome {
        let name = node.metadata.name ?? ""
        let taints = node.spec.taints ?? []
        let uninitialized = taints.contains { $0.key == CloudTaint.uninitialized }
        guard let instance = try await instance(of: node) else {
            if uninitialized {
                logger.warning("no cloud instance for an uninitialized node; register it with the cloud", metadata: ["node": "\(name)"])
                return .waitingForInstance
            }
            guard node.spec.providerID != nil else { return .unchanged }
            try await delete(name)
            return .deleted(reason: "its instance no longer exists")
        }
        if instance.state == .terminated {
            try await delete(name)
            return .deleted(reason: "its instance \(instance.id) was terminated")
        }

        var updated = node
        var outcome = Outcome.unchanged
        if uninitialized {
            updated.spec.providerID = ProviderID.make(instance)
            var labels = updated.metadata.labels ?? [:]
            labels[CloudLabel.region] = region
            labels[CloudLabel.zone] = instance.zone
            labels[CloudLabel.instanceType] = instance.type
            updated.metadata.labels = labels
            updated.spec.taints = taints.filter { $0.key != CloudTaint.uninitialized }
            outcome = .initialized(instanceID: instance.id)
        }
        let shutdownTainted = taints.contains { $0.key == CloudTaint.shutdown }
        if instance.state == .stopped, !shutdownTainted {
            updated.spec.taints = (updated.spec.taints ?? []) + [Taint(key: CloudTaint.shutdown, effect: "NoSchedule")]
            if outcome == .unchanged { outcome = .taintedShutdown }
        } else if instance.state == .running, shutdownTainted {
            updated.spec.taints = updated.spec.taints?.filter { $0.key != CloudTaint.shutdown }
            if outcome == .unchanged { outcome = .untaintedShutdown }
        }
        if updated.spec.taints?.isEmpty == true { updated.spec.taints = nil }
        if updated.metadata != node.metadata || updated.spec != node.spec {
            updated = try await nodes.updateNode(updated)
        }
        if case .initialized = outcome {
            let addresses = addresses(instance.addresses.map { NodeAddress(type: $0.type, address: $0.address) },
                                           providedIP: node.metadata.annotations?[CloudAnnotation.providedNodeIP], node: name)
            if updated.status.addresses != addresses {
                updated.status.addresses = addresses
                _ = try await nodes.updateNodeStatus(updated)
            }
            logger.info("initialized node", metadata: ["node": "\(name)", "instance": "\(instance.id)", "zone": "\(instance.zone)"])
        }
        return outcome
    }

    /// The cloud's addresses of a node whose kubelet was given `--node-ip` (the
    /// `alpha.kubernetes.io/provided-node-ip` annotation): as upstream, that address is the
    /// node's only one of its type, first in the list. The simulated cloud may not know it (an
    /// instance registered without addresses gets 127.0.0.1): the provided address then
    /// replaces the cloud's InternalIPs, with a warning, since it is the one the kubelet serves on.
    func addresses(_ cloud: [NodeAddress], providedIP: String?, node: String) -> [NodeAddress] {
        guard let providedIP, !providedIP.isEmpty else { return cloud }
        if let match = cloud.first(where: { $0.address == providedIP && $0.type != "Hostname" }) {
            return [match] + cloud.filter { $0.type != match.type }
        }
        logger.warning("the node's provided IP is not an address of its cloud instance; using it as the InternalIP",
                       metadata: ["node": "\(node)", "providedIP": "\(providedIP)", "cloud": "\(cloud.map(\.address))"])
        return [NodeAddress(type: "InternalIP", address: providedIP)] + cloud.filter { $0.type != "InternalIP" }
    }

    /// The node's instance: by providerID once it has one, else by the node's name.
    private func instance(of node: Node) async throws -> Instance? {
        if let providerID = node.spec.providerID, let id = ProviderID.instanceID(providerID) {
            do {
                return try await cloud.describeInstance(id: id)
            } catch let error as CloudError where error.code == .notFound {
                return nil
            }
        }
        guard let name = node.metadata.name else { return nil }
        return try await cloud.findInstance(name: name)
    }

    private func delete(_ name: String) async throws {
        do {
            try await nodes.deleteNode(name: name)
        } catch NodeStoreError.notFound {
            return
        }
        logger.info("deleted node whose instance is gone", metadata: ["node": "\(name)"])
    }
}
