// Node IPAM (kube-controller-manager's pkg/controller/nodeipam with the RangeAllocator): every
// node without `spec.podCIDR` gets the next free /--node-cidr-mask-size of --cluster-cidr in
// `spec.podCIDR` and `spec.podCIDRs` (the API server refuses to change them once set). The
// allocation map lives in memory and is rebuilt from the nodes' podCIDRs before the first
// allocation (so a restart never hands out a CIDR twice); a deleted node's CIDR is freed. A full
// range is reported on the node as upstream does: an event with reason `CIDRNotAvailable`, and
// the node is tried again later.
//
// | node                                     | action                                         |
// |------------------------------------------|------------------------------------------------|
// | has podCIDRs                             | marked used (if inside the cluster CIDR)       |
// | none, a CIDR free                        | PATCH spec.podCIDR/podCIDRs; on failure freed  |
// | none, range full                         | event CIDRNotAvailable, retried with back-off  |
// | deleted                                  | its CIDR freed, unless another node holds it   |
import APIClient
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// The subnets of the cluster CIDR handed to nodes (upstream's `cidrset`).
struct NodeCIDRSet: Sendable {
    let cluster: IPv4CIDR
    let maskSize: Int
    private(set) var used: Set<Int> = []
    /// Where the next search starts (round robin, as `cidrset.nextCandidate`).
    private var next = 0

    /// The subnet count is bounded as upstream bounds it (`maskSize - prefix <= 16`).
    init(cluster: IPv4CIDR, maskSize: Int) throws(NodeIPAMError) {
        guard maskSize >= cluster.prefixLength, maskSize <= 30 else {
            throw NodeIPAMError("--node-cidr-mask-size \(maskSize) must be between --cluster-cidr's prefix length /\(cluster.prefixLength) and 30")
        }
        guard maskSize - cluster.prefixLength <= 16 else {
            throw NodeIPAMError("--node-cidr-mask-size \(maskSize) cuts --cluster-cidr \(cluster) into more than 65536 node CIDRs; use a mask at most 16 bits longer than the cluster's")
        }
        self.cluster = cluster
        self.maskSize = maskSize
    }

    var count: Int { Int(cluster.subnetCount(bits: maskSize)) }

    /// The index of a node CIDR of this set; nil when it is not one (another size, outside).
    func index(of text: String) -> Int? {
        guard let cidr = IPv4CIDR(text), cidr.prefixLength == maskSize, cidr.description == text else { return nil }
        return cluster.index(of: cidr)
    }

    mutating func occupy(_ index: Int) { used.insert(index) }
    mutating func release(_ index: Int) { used.remove(index) }

    /// The next free subnet, marked used; nil when the range is full.
    mutating func allocateNext() -> IPv4CIDR? {
        guard count > 0 else { return nil }
        for step in 0..<count {
            let index = (next + step) % count
            if !used.contains(index) {
                used.insert(index)
                next = (index + 1) % count
                return cluster.subnet(index, bits: maskSize)
            }
        }
        return nil
    }
}

/// A bad node IPAM configuration.
public struct NodeIPAMError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

final class NodeIPAMController: Sendable {
    enum Work: Hashable, Sendable {
        case node(String)
        /// A deleted node's CIDR.
        case release(node: String, cidr: String)
    }

    let client: KubeClient
    let nodes: Informer<Node>
    let recorder: EventRecorder
    let logger: Logger
    let controller: Controller<Work>
    private let state: Mutex<State>

    private struct State {
        var set: NodeCIDRSet
        /// The map has been rebuilt from the nodes.
        var built = false
    }

    init(client: KubeClient, nodes: Informer<Node>, cidrs: NodeCIDRSet, recorder: EventRecorder, logger: Logger) async {
        self.client = client
        self.nodes = nodes
        self.recorder = recorder
        self.logger = logger
        self.state = Mutex(State(set: cidrs))
        let box = LateBound<NodeIPAMController>()
        // One worker: allocations are decided one at a time against the in-memory map.
        controller = Controller(name: "nodeipam", workers: 1, logger: logger) { work in
            guard let controller = box.value else { return .done }
            return try await controller.sync(work)
        }
        box.value = self
        await controller.enqueue(from: nodes) { event in
            if case .deleted(let node) = event {
                return (node.spec.podCIDRs ?? [node.spec.podCIDR].compactMap { $0 }).map { .release(node: node.metadata.name ?? "", cidr: $0) }
            }
            return [.node(event.object.metadata.name ?? "")]
        }
    }

    func run() async { await controller.run() }

    /// Marks every node's CIDR used, once, before the first allocation (the workers start
    /// after the informer's first list, so the cache holds every node).
    private func buildIfNeeded() async {
        guard !state.withLock({ $0.built }) else { return }
        let all = await nodes.list()
        state.withLock { state in
            guard !state.built else { return }
            for node in all {
                for cidr in node.spec.podCIDRs ?? [] { if let index = state.set.index(of: cidr) { state.set.occupy(index) } }
            }
            state.built = true
        }
        logger.info("node CIDR map rebuilt", metadata: ["used": "\(state.withLock { $0.set.used.count })"])
    }

    func sync(_ work: Work) async throws -> SyncResult {
        await buildIfNeeded()
        switch work {
        case .release(let name, let cidr):
            // Freed unless a node (a new one of the same name, or another) holds it now.
            let holders = await nodes.list().filter { ($0.spec.podCIDRs ?? []).contains(cidr) }
            if holders.isEmpty, let index = state.withLock({ $0.set.index(of: cidr) }) {
                state.withLock { $0.set.release(index) }
                logger.info("released node CIDR", metadata: ["node": "\(name)", "cidr": "\(cidr)"])
                // Nodes waiting for a CIDR need not wait for their retry.
                for waiting in await nodes.list() where (waiting.spec.podCIDRs ?? []).isEmpty {
                    await controller.queue.add(.node(waiting.metadata.name ?? ""))
                }
            }
            return .done
        case .node(let name):
            guard let node = await nodes.get(name: name) else { return .done }
            if let cidrs = node.spec.podCIDRs, !cidrs.isEmpty {
                for cidr in cidrs {
                    guard let index = state.withLock({ $0.set.index(of: cidr) }) else { continue }
                    state.withLock { $0.set.occupy(index) }
                }
                return .done
            }
            if node.metadata.deletionTimestamp != nil { return .done }
            return try await allocate(node)
        }
    }

    private func allocate(_ node: Node) async throws -> SyncResult {
        let name = node.metadata.name ?? ""
        guard let cidr = state.withLock({ $0.set.allocateNext() }) else {
            recorder.event(node, .normal, "CIDRNotAvailable", "Node \(name) status is now: CIDRNotAvailable")
            logger.warning("no CIDR left for node; free one by deleting a node, or widen --cluster-cidr", metadata: [
                "node": "\(name)", "clusterCIDR": "\(state.withLock { $0.set.cluster })"])
            return .requeue(after: .seconds(30))
        }
        let text = cidr.description
        do {
            _ = try await client.mergePatch(Node.self, name: name, patch: ["spec": ["podCIDR": .string(text), "podCIDRs": [.string(text)]]])
            logger.info("assigned node CIDR", metadata: ["node": "\(name)", "cidr": "\(text)"])
            return .done
        } catch let error as APIError {
            // Not ours after all: freed, and the node looked at again (it may have got one meanwhile).
            if let index = state.withLock({ $0.set.index(of: text) }) { state.withLock { $0.set.release(index) } }
            if error.isNotFound { return .done }
            recorder.event(node, .normal, "CIDRAssignmentFailed", "Node \(name) status is now: CIDRAssignmentFailed")
            throw error
        }
    }
}
