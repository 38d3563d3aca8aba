// The kernel objects a running cluster's network is made of, each by name, so that a test can
// see them there while the cluster runs and check each one gone after `ballast down --purge`:
// kube-proxy's tables (one per node) and processes, the cluster DNS's address on the Service
// device and its process, the pods' network namespaces (by inode: gone when no mount pins it
// and no process is in it), their veths, the node bridges, the routes and the cluster's table.
import ClusterTesting
import Foundation
import HostSystem
import Kubelet
import TestSupport

struct ClusterNetworkObjects: Sendable {
    /// `ip ballast-<tag>-node-N`, one per node proxy.
    var proxyTables: [String] = []
    /// `inet ballast-<tag>`, when present.
    var clusterTable: String?
    /// The cluster DNS's address on the Service device (`198.19.x.10/32 dev ballast<tag>svc`).
    var dnsAddress: String?
    /// `net:[inode]` of each pod namespace pinned under the data dir.
    var namespaces: [String] = []
    /// Host-side veths on the cluster's bridges, and the cluster's own links (bridges, Service device).
    var veths: [String] = []
    var links: [String] = []
    /// Routes through the cluster's devices, and the pod range's unreachable route.
    var routes: [String] = []
    /// `kube-proxy-node-N` and `dns`: name → pid.
    var processes: [String: Int32] = [:]

    /// What is there now.
    static func current(_ cluster: TestCluster) async -> ClusterNetworkObjects {
        let network = cluster.network.network
        var objects = ClusterNetworkObjects()
        let tables = (try? await runCommand("nft", ["list", "tables"], timeout: .seconds(10)))?.stdout ?? ""
        for line in tables.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 3, words[0] == "table" else { continue }
            if words[1] == "ip", words[2].hasPrefix(network.tableName + "-") { objects.proxyTables.append("ip " + words[2]) }
            if words[1] == "inet", words[2] == network.tableName { objects.clusterTable = "inet " + words[2] }
        }
        let dns = network.serviceCIDR.address(10)
        let addresses = (try? await runCommand("ip", ["-o", "-4", "addr", "show", "dev", network.serviceDevice], timeout: .seconds(10)))?.stdout ?? ""
        if addresses.contains(" \(dns)/32 ") { objects.dnsAddress = "\(dns)/32 dev \(network.serviceDevice)" }
        for mount in Mounts.current() where mount.mountPoint.hasPrefix(cluster.root + "/") && mount.mountPoint.hasSuffix("/sandbox/net") {
            var info = stat()
            if stat(mount.mountPoint, &info) == 0 { objects.namespaces.append("net:[\(info.st_ino)]") }
        }
        for name in await HostNetwork.links() {
            if network.owns(name) { objects.links.append(name) }
            guard name.hasPrefix("veth") else { continue }
            let master = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/class/net/\(name)/master")) ?? ""
            if network.owns((master as NSString).lastPathComponent) { objects.veths.append(name) }
        }
        let routes = (try? await runCommand("ip", ["-o", "route", "show"], timeout: .seconds(10)))?.stdout ?? ""
        objects.routes = routes.split(separator: "\n").map(String.init).filter {
            $0.contains("dev \(network.prefix)") || $0.hasPrefix("unreachable \(network.clusterCIDR)")
        }
        let logs = cluster.data + "/logs"
        for file in (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? [] where file.hasSuffix(".pid") {
            let name = String(file.dropLast(4))
            guard name.hasPrefix("kube-proxy-") || name == "dns",
                  let text = try? String(contentsOfFile: logs + "/" + file, encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { continue }
            objects.processes[name] = pid
        }
        return objects
    }

    /// Each of these objects that is still on the machine, named.
    func stillPresent(_ cluster: TestCluster) async -> [String] {
        let now = await Self.current(cluster)
        var left: [String] = []
        left += proxyTables.filter(now.proxyTables.contains).map { "kube-proxy's nftables table \($0)" }
        if let clusterTable, now.clusterTable != nil { left.append("nftables table \(clusterTable)") }
        if let dnsAddress, now.dnsAddress != nil { left.append("the cluster DNS's address \(dnsAddress)") }
        left += veths.filter(now.veths.contains).map { "veth \($0)" }
        left += links.filter(now.links.contains).map { "link \($0)" }
        left += routes.filter(now.routes.contains).map { "route \($0)" }
        // A namespace lives while a mount pins it or a process is in it. A process SIGKILLed by
        // `down` may still be on its way out: up to 3 s for it, then it is named. A namespace's
        // number is reused as soon as it is gone (the kernel hands out the lowest free one), so
        // a pod namespace of another test's cluster may carry it now: a mount under another
        // cluster's root, or a process in another cluster's cgroups, is that cluster's.
        func foreignMount(_ mount: MountInfo) -> Bool {
            mount.mountPoint.hasPrefix(TestCluster.rootPrefix) && !mount.mountPoint.hasPrefix(cluster.root + "/")
        }
        func foreignProcess(_ pid: String) -> Bool {
            let groups = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
            return groups.contains(TestCluster.cgroupPrefix) && !groups.contains(cluster.cgroupRoot + "/") && !groups.contains(cluster.cgroupRoot + "\n")
        }
        var held: [String] = []
        let deadline = ContinuousClock.now + .seconds(3)
        repeat {
            let pinned = Set(Mounts.current().filter { $0.fsType == "nsfs" && !foreignMount($0) }.map(\.root))
            var inside: [String: [String]] = [:]
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where pid.allSatisfy(\.isNumber) {
                guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net"), namespaces.contains(link),
                      !foreignProcess(pid) else { continue }
                let command = (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? ""
                inside[link, default: []].append("\(pid) \(command)")
            }
            held = namespaces.filter { pinned.contains($0) || inside[$0] != nil }.map { namespace in
                "pod network namespace \(namespace)" + (pinned.contains(namespace) ? ", pinned by a mount" : "")
                    + (inside[namespace].map { ", processes in it: \($0)" } ?? "")
            }
            if held.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < deadline
        left += held
        for (name, pid) in processes.sorted(by: { $0.key < $1.key }) {
            let command = (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")).map { String(decoding: $0.map { $0 == 0 ? 32 : $0 }, as: UTF8.self) } ?? ""
            if command.contains(cluster.data) { left.append("process \(name) (\(pid)): \(command)") }
        }
        return left
    }
}
