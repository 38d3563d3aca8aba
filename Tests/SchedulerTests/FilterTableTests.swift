// Each filter's pass and fail against the real API handler, with upstream's message in the
// pod's PodScheduled condition and its FailedScheduling event.
import APIClient
import ClusterAPI
import Scheduler
import Testing

struct FilterCase: Sendable, CustomTestStringConvertible {
    enum Expect: Sendable { case bound(Set<String>), unschedulable(String), schedulerError(String) }
    let name: String
    let nodes: [Node]
    var setup: @Sendable (Harness) async throws -> Void = { _ in }
    let pod: Pod
    let expect: Expect
    var testDescription: String { name }
}

let filterCases: [FilterCase] = [
    FilterCase(name: "NodeUnschedulable fails on a cordoned node",
               nodes: [makeNode("n1", unschedulable: true)], pod: makePod("p"),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) were unschedulable.")),
    FilterCase(name: "NodeUnschedulable passes with the unschedulable toleration",
               nodes: [makeNode("n1", unschedulable: true)],
               pod: makePod("p", tolerations: [Toleration(key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule")]),
               expect: .bound(["n1"])),
    FilterCase(name: "TaintToleration fails on a user taint",
               nodes: [makeNode("n1", taints: [taint("dedicated", "gpu")])], pod: makePod("p"),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.")),
    FilterCase(name: "TaintToleration passes with a matching toleration",
               nodes: [makeNode("n1", taints: [taint("dedicated", "gpu")])],
               pod: makePod("p", tolerations: [Toleration(key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule")]),
               expect: .bound(["n1"])),
    FilterCase(name: "TaintToleration: not-ready and uninitialized nodes are avoided",
               nodes: [makeNode("n1", taints: [taint("node.kubernetes.io/not-ready")]),
                       makeNode("n2", taints: [taint("node.cloudprovider.kubernetes.io/uninitialized", "true")]),
                       makeNode("n3", taints: [taint("node.kubernetes.io/unreachable", effect: "NoExecute")])],
               pod: makePod("p"),
               expect: .unschedulable("0/3 nodes are available: 1 node(s) had untolerated taint {node.cloudprovider.kubernetes.io/uninitialized: true}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.")),
    FilterCase(name: "TaintToleration ignores PreferNoSchedule",
               nodes: [makeNode("n1", taints: [taint("soft", effect: "PreferNoSchedule")])], pod: makePod("p"),
               expect: .bound(["n1"])),
    FilterCase(name: "NodeAffinity: nodeSelector fails",
               nodes: [makeNode("n1"), makeNode("n2")], pod: makePod("p", nodeSelector: ["disk": "ssd"]),
               expect: .unschedulable("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")),
    FilterCase(name: "NodeAffinity: nodeSelector passes",
               nodes: [makeNode("n1"), makeNode("n2", labels: ["disk": "ssd"])], pod: makePod("p", nodeSelector: ["disk": "ssd"]),
               expect: .bound(["n2"])),
    FilterCase(name: "NodeAffinity: required matchExpressions on the zone",
               nodes: [makeNode("n1", zone: "zone-a"), makeNode("n2", zone: "zone-b")],
               pod: makePod("p", affinity: requiredAffinity(key: "topology.kubernetes.io/zone", operator: "In", values: ["zone-b"])),
               expect: .bound(["n2"])),
    FilterCase(name: "NodeAffinity: NotIn excludes every node",
               nodes: [makeNode("n1", zone: "zone-a")],
               pod: makePod("p", affinity: requiredAffinity(key: "topology.kubernetes.io/zone", operator: "NotIn", values: ["zone-a"])),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")),
    FilterCase(name: "NodeAffinity: matchFields on metadata.name",
               nodes: [makeNode("n1"), makeNode("n2"), makeNode("n3")],
               pod: makePod("p", affinity: requiredAffinity(key: "metadata.name", operator: "In", values: ["n3"], fields: true)),
               expect: .bound(["n3"])),
    FilterCase(name: "NodeAffinity: an unreadable operator is reported, not crashed on",
               nodes: [makeNode("n1")],
               pod: makePod("p", affinity: requiredAffinity(key: "zone", operator: "Near", values: ["a"])),
               expect: .schedulerError("\"Near\" is not a valid node selector operator")),
    FilterCase(name: "NodeResourcesFit fails on cpu",
               nodes: [makeNode("n1", cpu: "1")], pod: makePod("p", cpu: "2"),
               expect: .unschedulable("0/1 nodes are available: 1 Insufficient cpu.")),
    FilterCase(name: "NodeResourcesFit counts the pods already there",
               nodes: [makeNode("n1", cpu: "2", memory: "4Gi")],
               setup: { h in
                   var placed = makePod("existing", cpu: "1500m", memory: "1Gi")
                   placed.spec.nodeName = "n1"
                   try await h.add(placed)
               },
               pod: makePod("p", cpu: "1", memory: "1Gi"),
               expect: .unschedulable("0/1 nodes are available: 1 Insufficient cpu.")),
    FilterCase(name: "NodeResourcesFit: Too many pods",
               nodes: [makeNode("n1", pods: "0")], pod: makePod("p"),
               expect: .unschedulable("0/1 nodes are available: 1 Too many pods.")),
    FilterCase(name: "Reasons are counted per node and sorted",
               nodes: [makeNode("n1", unschedulable: true), makeNode("n2", memory: "1Gi"), makeNode("n3", memory: "1Gi")],
               pod: makePod("p", memory: "2Gi"),
               expect: .unschedulable("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory.")),
    FilterCase(name: "NodeResourcesFit passes where there is room",
               nodes: [makeNode("n1", cpu: "1"), makeNode("n2", cpu: "4")], pod: makePod("p", cpu: "2"),
               expect: .bound(["n2"])),
    FilterCase(name: "NodePorts fails on a used host port",
               nodes: [makeNode("n1")],
               setup: { h in
                   var placed = makePod("existing", hostPort: 8080)
                   placed.spec.nodeName = "n1"
                   try await h.add(placed)
               },
               pod: makePod("p", hostPort: 8080),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.")),
    FilterCase(name: "VolumeBinding: a missing claim",
               nodes: [makeNode("n1")], pod: makePod("p", claims: ["nope"]),
               expect: .unschedulable("0/1 nodes are available: persistentvolumeclaim \"nope\" not found.")),
    FilterCase(name: "VolumeBinding: a generic ephemeral volume's claim not made yet",
               nodes: [makeNode("n1")],
               pod: {
                   var pod = makePod("p")
                   pod.spec.volumes = [Volume(name: "scratch", ephemeral: ["volumeClaimTemplate": ["spec": [
                       "accessModes": ["ReadWriteOnce"], "resources": ["requests": ["storage": "1Gi"]]]]])]
                   return pod
               }(),
               expect: .unschedulable("0/1 nodes are available: waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-scratch\".")),
    FilterCase(name: "VolumeBinding: an unbound Immediate claim",
               nodes: [makeNode("n1")],
               setup: { h in
                   try await h.add(makeClass("fast", binding: "Immediate"))
                   try await h.add(makePVC("data", className: "fast"))
               },
               pod: makePod("p", claims: ["data"]),
               expect: .unschedulable("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.")),
    FilterCase(name: "VolumeBinding: a bound volume's node affinity conflicts",
               nodes: [makeNode("n1", zone: "zone-a")],
               setup: { h in try await h.addBound(claim: makePVC("data"), volume: makePV("pv-b", zone: "zone-b")) },
               pod: makePod("p", claims: ["data"]),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) had volume node affinity conflict.")),
    FilterCase(name: "VolumeBinding: a bound volume's node affinity picks the zone",
               nodes: [makeNode("n1", zone: "zone-a"), makeNode("n2", zone: "zone-b")],
               setup: { h in try await h.addBound(claim: makePVC("data"), volume: makePV("pv-b", zone: "zone-b")) },
               pod: makePod("p", claims: ["data"]),
               expect: .bound(["n2"])),
    FilterCase(name: "VolumeBinding: a claim bound to a volume that does not exist",
               nodes: [makeNode("n1")],
               setup: { h in
                   var claim = makePVC("data")
                   claim.spec.volumeName = "gone"
                   claim.metadata.annotations = [SchedulerNames.bindCompleted: "yes"]
                   try await h.add(claim)
               },
               pod: makePod("p", claims: ["data"]),
               expect: .unschedulable("0/1 nodes are available: 1 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s).")),
]

@Suite("Filters, each pass and fail with upstream's message", .timeLimit(.minutes(2)))
struct FilterTableTests {
    @Test(arguments: filterCases)
    func filter(_ c: FilterCase) async throws {
        try await withHarness { h in
            for node in c.nodes { try await h.add(node) }
            try await c.setup(h)
            try await h.add(c.pod)
            let name = c.pod.metadata.name ?? ""
            switch c.expect {
            case .bound(let nodes):
                let node = try await h.boundNode(name)
                #expect(node.map(nodes.contains) == true, "bound to \(node ?? "nothing"), expected one of \(nodes.sorted())")
                let scheduled = try await h.waitFor {
                    try await h.events(name).contains { $0.reason == "Scheduled" && $0.message == "Successfully assigned default/\(name) to \(node ?? "")" }
                }
                #expect(scheduled, "event Scheduled")
            case .unschedulable(let message):
                let condition = try await h.unschedulable(name, message: message)
                #expect(condition?.reason == "Unschedulable")
                #expect(condition?.message == message)
                let failed = try await h.waitFor {
                    try await h.events(name).contains { $0.reason == "FailedScheduling" && $0.type == "Warning" && $0.message == message }
                }
                #expect(failed, "event FailedScheduling")
                #expect(try await h.pod(name).spec.nodeName ?? "" == "")
            case .schedulerError(let text):
                let condition = try await h.unschedulable(name)
                #expect(condition?.reason == "SchedulerError")
                #expect(condition?.message?.contains(text) == true, "\(condition?.message ?? "no condition")")
            }
        }
    }
}
