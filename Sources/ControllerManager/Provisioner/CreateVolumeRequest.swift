// What the provisioner asks the plugin for, built as external-provisioner builds it
// (pkg/controller/controller.go, topology.go): the name `pvc-<claim uid>`, the capacity asked
// for, one capability per access mode, the class's parameters without the provisioner's own
// `csi.storage.k8s.io/` keys, and the topology the volume must be reachable from.
import ClusterAPI
import CSIProto

enum VolumeRequest {
    /// The class parameter naming the file system; read by the provisioner, not passed on.
    static let fsTypeParameter = "csi.storage.k8s.io/fstype"
    static let provisionerPrefix = "csi.storage.k8s.io/"
    /// The topology label the CSI driver reports zones under.
    static let zoneKey = "topology.kubernetes.io/zone"

    /// `pvc-<uid>`: the CSI name and the PV's name.
    static func volumeName(_ claim: PersistentVolumeClaim) -> String { "pvc-\(claim.metadata.uid ?? "")" }

    static func accessMode(_ mode: String) -> Csi_V1_VolumeCapability.AccessMode.Mode {
        switch mode {
        case "ReadOnlyMany": .multiNodeReaderOnly
        case "ReadWriteMany": .multiNodeMultiWriter
        case "ReadWriteOncePod": .singleNodeSingleWriter
        default: .singleNodeWriter
        }
    }

    /// One capability per access mode (block, or mount with the class's fsType and mount options).
    static func capabilities(accessModes: [String], volumeMode: String, fsType: String, mountOptions: [String]) -> [Csi_V1_VolumeCapability] {
        accessModes.map { mode in
            .with {
                if volumeMode == "Block" {
                    $0.block = Csi_V1_VolumeCapability.BlockVolume()
                } else {
                    $0.mount = .with {
                        $0.fsType = fsType
                        $0.mountFlags = mountOptions
                    }
                }
                $0.accessMode = .with { $0.mode = accessMode(mode) }
            }
        }
    }

    static func fsType(_ storageClass: StorageClass) -> String { storageClass.parameters?[fsTypeParameter] ?? "" }

    /// The class's parameters the plugin sees.
    static func parameters(_ storageClass: StorageClass) -> [String: String] {
        (storageClass.parameters ?? [:]).filter { !$0.key.hasPrefix(provisionerPrefix) }
    }

    /// Why the topology of a selected node cannot be computed, in external-provisioner's words
    /// (GenerateAccessibilityRequirements with strict topology).
    struct TopologyError: Error, CustomStringConvertible {
        let description: String
    }

    /// The topology of the node the scheduler selected (WaitForFirstConsumer), requisite and
    /// preferred: the node's labels for the topology keys its CSINode lists for `driver`. Throws
    /// when its CSINode is missing, lists no keys, or the node lacks one of the labels, or when
    /// the class's allowedTopologies exclude it: provisioning must not go ahead without it.
    static func selectedNodeTopology(_ node: Node, csiNode: CSINode?, driver: String,
                                     storageClass: StorageClass) throws(TopologyError) -> Csi_V1_TopologyRequirement {
        let name = node.metadata.name ?? ""
        let prefix = "error generating accessibility requirements: "
        guard let csiNode else {
            throw TopologyError(description: prefix + "error getting CSINode for selected node \"\(name)\": csinode.storage.k8s.io \"\(name)\" not found")
        }
        let keys = csiNode.spec.drivers.first(where: { $0.name == driver })?.topologyKeys ?? []
        guard !keys.isEmpty else {
            throw TopologyError(description: prefix + "no topology key found on CSINode \(name)")
        }
        var own: [String: String] = [:]
        for key in keys {
            guard let value = node.metadata.labels?[key] else {
                throw TopologyError(description: prefix + "topology labels from selected node \(node.metadata.labels ?? [:]) does not match topology keys from CSINode \(keys)")
            }
            own[key] = value
        }
        if let allowed = storageClass.allowedTopologies, !allowed.isEmpty {
            let terms = expand(allowed)
            if !terms.contains(where: { term in term.allSatisfy { own[$0.key] == $0.value } }) {
                throw TopologyError(description: prefix + "selected node \"\(name)\" topology \(own) is not in allowed topologies: \(terms)")
            }
        }
        let topology = Csi_V1_Topology.with { $0.segments = own }
        return .with {
            $0.requisite = [topology]
            $0.preferred = [topology]
        }
    }

    /// Topology requirements without a selected node (Immediate binding): the class's
    /// allowedTopologies (each term expanded to every combination of its values), or else every
    /// topology of the nodes running the driver; the preferred list is the requisite one rotated
    /// by a hash of the claim's name, to spread volumes. Nil when nothing is known.
    static func topology(driver: String, storageClass: StorageClass, allNodes: [(Node, CSINode)],
                         claimName: String) -> Csi_V1_TopologyRequirement? {
        func segments(_ node: Node, _ csiNode: CSINode?) -> [String: String]? {
            guard let keys = csiNode?.spec.drivers.first(where: { $0.name == driver })?.topologyKeys, !keys.isEmpty else { return nil }
            var result: [String: String] = [:]
            for key in keys {
                guard let value = node.metadata.labels?[key] else { return nil }
                result[key] = value
            }
            return result
        }
        var requisite: [[String: String]]
        if let allowed = storageClass.allowedTopologies, !allowed.isEmpty {
            requisite = expand(allowed)
        } else {
            var seen = Set<[String: String]>()
            requisite = []
            for (node, csiNode) in allNodes {
                if let own = segments(node, csiNode), seen.insert(own).inserted { requisite.append(own) }
            }
            guard !requisite.isEmpty else { return nil }
        }
        requisite.sort { $0.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            < $1.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
        let offset = requisite.isEmpty ? 0 : Int(stableHash(claimName) % UInt64(requisite.count))
        let preferred = Array(requisite[offset...] + requisite[..<offset])
        return .with {
            $0.requisite = requisite.map { segments in .with { $0.segments = segments } }
            $0.preferred = preferred.map { segments in .with { $0.segments = segments } }
        }
    }

    /// Every combination of the values of each term's requirements.
    static func expand(_ terms: [TopologySelectorTerm]) -> [[String: String]] {
        var result: [[String: String]] = []
        for term in terms {
            var combinations: [[String: String]] = [[:]]
            for requirement in term.matchLabelExpressions ?? [] {
                combinations = combinations.flatMap { partial in
                    requirement.values.map { value in partial.merging([requirement.key: value]) { $1 } }
                }
            }
            for combination in combinations where !combination.isEmpty && !result.contains(combination) { result.append(combination) }
        }
        return result
    }

    /// FNV-1a: the same claim prefers the same topology in every process.
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100000001b3
        }
        return hash
    }

    /// `spec.nodeAffinity` for a volume reachable from `topologies`: one term per topology, each
    /// requirement `key In [value]` (external-provisioner's GenerateVolumeNodeAffinity).
    static func nodeAffinity(_ topologies: [Csi_V1_Topology]) -> VolumeNodeAffinity? {
        let terms = topologies.filter { !$0.segments.isEmpty }.map { topology in
            NodeSelectorTerm(matchExpressions: topology.segments.keys.sorted().map {
                NodeSelectorRequirement(key: $0, operator: "In", values: [topology.segments[$0]!])
            })
        }
        guard !terms.isEmpty else { return nil }
        return VolumeNodeAffinity(required: NodeSelector(nodeSelectorTerms: terms))
    }
}
