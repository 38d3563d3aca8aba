// Scores on a state built in memory: LeastAllocated, NodeAffinity's preferred terms, and the
// node a ReadWriteOnce volume is attached to.
import ClusterAPI
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

    @Test("Feasible nodes to find: all below 100, upstream's adaptive share above")
    func feasibleNodes() {
        #expect(Algorithm.feasibleNodesToFind(50) == 50)
        #expect(Algorithm.feasibleNodesToFind(150) == 100)
        #expect(Algorithm.feasibleNodesToFind(500) == 230)
        #expect(Algorithm.feasibleNodesToFind(5000) == 500)
    }
}
