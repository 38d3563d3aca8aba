// `ballast node stop|start|kill NODE`: node failures of a cluster `ballast up` runs. `stop` is a
// power loss: the node's kubelet and CSI node plugin are killed and held stopped, its containers
// killed, its mounts and cgroups gone (the node goes NotReady; its disks stay attached in the
// cloud, as a dead instance's do); `start` boots it again: the supervisor starts the kubelet and
// the plugin, which bring back the pods still bound to the node. `kill` SIGKILLs the kubelet
// alone, which the supervisor restarts (a crash: the containers keep running and are adopted).
import ArgumentParser
import Foundation
import HostSystem

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Power a node of a cluster `ballast up` runs off (stop) or on (start), or crash its kubelet (kill)."
    )

    @Argument(help: "stop, start or kill.")
    var action: String

    @Argument(help: "The node: node-N.")
    var node: String

    @Option(help: "The cluster's data dir.")
    var dataDir: String = ".ballast"

    func run() async throws {
        guard ["stop", "start", "kill"].contains(action) else {
            throw ValidationError("\(action): the action is stop, start or kill")
        }
        let dataDir = self.dataDir.absolutePath
        guard let spec = try ClusterSpec.read(dataDir: dataDir) else {
            throw UpFailure("no cluster in \(dataDir) (no \(ClusterSpec.fileName)): start one with `ballast up`")
        }
        guard let index = (1...spec.nodes).first(where: { spec.nodeName($0) == node }) else {
            throw ValidationError("\(node) is not a node of this cluster: node-1 … node-\(spec.nodes)")
        }
        guard runningSupervisor(spec) != nil else {
            throw UpFailure("the cluster of \(dataDir) is not running: start it with `ballast up --data-dir \(self.dataDir)`")
        }
        let components = ["kubelet-" + node, "csi-" + node]
        switch action {
        case "stop":
            for name in components {
                let held = spec.logsDirectory + "/" + name + ".held"
                guard FileManager.default.createFile(atPath: held, contents: nil) else {
                    throw UpFailure("cannot write \(held), which keeps the supervisor from starting \(name) again: check \(spec.logsDirectory)")
                }
            }
            // Power off: the kubelet and the plugin die with the containers (all of them are
            // processes naming the node's directory), then the mounts and cgroups go.
            await HostCleanup.sweep(spec.nodeDirectory(index), runtimeRoots: [spec.runtimeRoot(index)], cgroups: [spec.nodeCgroup(index)],
                                    removeDirectory: false)
            say("\(node) is off: kubelet, CSI node plugin and containers killed, mounts gone (held until `ballast node start \(node)`)")
        case "start":
            for name in components { try? FileManager.default.removeItem(atPath: spec.logsDirectory + "/" + name + ".held") }
            say("\(node): booting; the supervisor starts its kubelet and CSI node plugin, which bring back its pods")
        default:
            let killed = signal(processesOf: components[0], spec: spec, index: index, SIGKILL)
            guard killed > 0 else { throw UpFailure("\(node)'s kubelet is not running (stopped with `ballast node stop`?)") }
            say("\(node): kubelet killed (SIGKILL); the supervisor starts it again")
        }
    }

    /// Sends `signal` to the processes of component `name` (by their command line); how many.
    @discardableResult
    func signal(processesOf name: String, spec: ClusterSpec, index: Int, _ number: Int32) -> Int {
        let socket = spec.nodeDirectory(index) + "/csi.sock"
        let pids = ProcessTable.pids { arguments in
            name.hasPrefix("kubelet-")
                ? arguments.contains("kubelet") && arguments.contains(spec.nodeDirectory(index) + "/kubelet")
                : arguments.contains("csi") && arguments.contains("unix://" + socket)
        }
        return pids.filter { kill($0, number) == 0 }.count
    }
}
