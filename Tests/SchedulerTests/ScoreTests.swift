// Scores on a state built in memory: LeastAllocated, NodeAffinity's preferred terms, and the
// node a ReadWriteOnce volume is attached to.
import ClusterAPI
import Primitives
import Testing
@testable import Scheduler

@Suite("Scores")
struct ScoreTests {
    private func decide(_ pod: Pod, _ state: ClusterState) throws -> String? {
        var random = SplitMix64(seed: 1)
        guard case .node(let name, _) = Algorithm.decide(try PendingPod(pod), state, random: { Int(random.next() % UInt64($0)) }) else {
            return nil
        }
        return name
    }

    @Test("LeastAllocated picks the emptier node")
    func leastAllocated() throws {
        var state = ClusterState()
        state.setNode(makeNode("busy", cpu: "4", memory: "8Gi"))
        state.setNode(makeNode("idle", cpu: "4", memory: "8Gi"))
        var placed = PodInfo(makePod("existing", cpu: "3", memory: "6Gi"))
        placed.nodeName = "busy"
        state.place(placed)
        #expect(try decide(makePod("p", cpu: "500m"), state) == "idle")
    }

    @Test("Preferred node affinity outweighs a small difference in allocation")
    func preferredAffinity() throws {
        var state = ClusterState()
        state.setNode(makeNode("plain"))
        state.setNode(makeNode("ssd", labels: ["disk": "ssd"]))
        var placed = PodInfo(makePod("existing", cpu: "500m", memory: "1Gi"))
        placed.nodeName = "ssd"
        state.place(placed)
        let affinity: JSONValue = ["nodeAffinity": ["preferredDuringSchedulingIgnoredDuringExecution": [
            ["weight": 50, "preference": ["matchExpressions": [["key": "disk", "operator": "In", "values": ["ssd"]]]]],
        ]]]
        #expect(try decide(makePod("p", affinity: affinity), state) == "ssd")
        #expect(try decide(makePod("q"), state) == "plain")
    }

    @Test("A ReadWriteOnce volume attached to a node draws the pod there, even onto a busier node")
    func attachedVolume() throws {
        var state = ClusterState()
        state.setNode(makeNode("idle"))
        state.setNode(makeNode("has-disk"))
        var placed = PodInfo(makePod("existing", cpu: "2", memory: "4Gi"))
        placed.nodeName = "has-disk"
        state.place(placed)
        var claim = makePVC("data")
        claim.spec.volumeName = "pv-data"
        claim.metadata.annotations = [SchedulerNames.bindCompleted: "yes"]
        state.claims["default/data"] = claim
        var volume = makePV("pv-data")
        volume.spec.claimRef = ObjectReference(name: "data")
        state.volumes["pv-data"] = volume
        state.attachments["va"] = ("pv-data", "has-disk")
        #expect(try decide(makePod("p", claims: ["data"]), state) == "has-disk")
        state.attachments["va"] = nil
        #expect(try decide(makePod("p", claims: ["data"]), state) == "idle")
    }

    @Test("The smallest attach limit of any node follows CSINodes added, raised, lowered and removed")
    func smallestVolumeLimit() {
        var state = ClusterState()
        #expect(state.smallestVolumeLimit == nil)
        state.setCSINode("a", makeCSINode("a", limit: 39))
        state.setCSINode("b", makeCSINode("b", limit: 39))
        #expect(state.smallestVolumeLimit == 39)
        state.setCSINode("c", makeCSINode("c", limit: 2))
        #expect(state.smallestVolumeLimit == 2)
        state.setCSINode("c", makeCSINode("c", limit: 50))
        #expect(state.smallestVolumeLimit == 39)
        state.setCSINode("a", makeCSINode("a", limit: nil))
        #expect(state.smallestVolumeLimit == 39)
        state.setCSINode("b", nil)
        #expect(state.smallestVolumeLimit == 50)
        state.setCSINode("a", makeCSINode("a", limit: 7))
        #expect(state.smallestVolumeLimit == 7)
        state.setCSINode("a", nil)
        state.setCSINode("c", nil)
        #expect(state.smallestVolumeLimit == nil)
    }

    @Test("Feasible nodes to find: all below 100, upstream's adaptive share above")
    func feasibleNodes() {
        #expect(Algorithm.feasibleNodesToFind(50) == 50)
        #expect(Algorithm.feasibleNodesToFind(150) == 100)
        #expect(Algorithm.feasibleNodesToFind(500) == 230)
        #expect(Algorithm.feasibleNodesToFind(5000) == 500)
        // --percentage-of-nodes-to-score: the share asked for, still never fewer than 100.
        #expect(Algorithm.feasibleNodesToFind(500, percentage: 30) == 150)
        #expect(Algorithm.feasibleNodesToFind(500, percentage: 10) == 100)
        #expect(Algorithm.feasibleNodesToFind(5000, percentage: 10) == 500)
        #expect(Algorithm.feasibleNodesToFind(500, percentage: 100) == 500)
        #expect(Algorithm.feasibleNodesToFind(50, percentage: 10) == 50)
    }

    @Test("A cycle's copy of the state keeps its view while the cache places, moves and removes pods")
    func copiesAreIndependent() throws {
        var state = ClusterState()
        state.setNode(makeNode("n1"))
        state.setNode(makeNode("n2"))
        var placements = Placements()
        var pod = PodInfo(makePod("a", cpu: "1", memory: "1Gi", claims: ["data"]))
        pod.nodeName = "n1"
        placements.place(pod, in: &state)
        let copy = state
        pod.nodeName = "n2"
        placements.place(pod, in: &state)
        #expect(state.nodes["n1"]?.pods.isEmpty == true && state.nodes["n2"]?.pods.count == 1)
        #expect(state.nodes["n2"]?.requested.milliCPU == 1000 && state.nodes["n2"]?.claimCount == 1)
        #expect(copy.nodes["n1"]?.pods.count == 1 && copy.nodes["n2"]?.pods.isEmpty == true)
        #expect(copy.nodes["n1"]?.requested.milliCPU == 1000 && copy.nodes["n2"]?.requested.milliCPU == 0)
        placements.unplace("default/a", in: &state)
        #expect(state.nodes["n2"]?.pods.isEmpty == true && state.nodes["n2"]?.claimCount == 0 && state.claimUsers.isEmpty)
        #expect(copy.claimUsers["default/data"] == 1)
    }
}
