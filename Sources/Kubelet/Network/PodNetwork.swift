// The kubelet's pod networks through CNI. The node's pod range is the Node's `spec.podCIDR`
// when it has one, else `--pod-cidr`; from it the kubelet installs the cluster's host routes
// (HostNetwork.install, idempotent: `ballast up` made them already) with the node's bridge (its
// gateway, forwarding on it alone) and writes the node's network configuration list, then each pod's
// network namespace gets `lo` (up already when the kubelet made the namespace, else the loopback
// plugin) and `eth0` (bridge + host-local IPAM, with
// routes to the cluster's pod and Service ranges only — no default route):
//
//     <root>/cni/net.d/10-ballast.conflist    the node's network, written by the kubelet
//     <root>/cni/cache/results/…              ADD results (CNIInvoker)
//     <root>/cni/ipam/<network>/…             host-local's allocations
//
// A pod with `hostPort`s gets the portmap plugin after the bridge in its own copy of the list,
// with its mappings as `runtimeConfig.portMappings` (the `portMappings` capability); the copy
// is what the cache keeps, so DEL removes exactly those mappings.
//
// The attachment's container ID is the pod's UID; CNI_ARGS carries K8S_POD_NAMESPACE,
// K8S_POD_NAME, K8S_POD_UID and K8S_POD_INFRA_CONTAINER_ID as the kubelet's runtimes pass them.
import APIClient
import ClusterAPI
import Foundation
import Logging

/// The kubelet's pod network flags.
public struct PodNetworkSettings: Sendable, Equatable {
    public var network: ClusterNetwork
    /// `--pod-cidr`: the node's range when its Node has no `spec.podCIDR`.
    public var podCIDR: IPv4CIDR?
    /// `--cni-bin-dir`: where the plugins are.
    public var pluginDirectories: [String]

    public static let defaultPluginDirectories = ["/usr/lib/cni", "/opt/cni/bin"]

    public init(network: ClusterNetwork, podCIDR: IPv4CIDR?, pluginDirectories: [String] = defaultPluginDirectories) {
        self.network = network
        self.podCIDR = podCIDR
        self.pluginDirectories = pluginDirectories
    }
}

public actor PodNetwork {
    public let settings: PodNetworkSettings
    let root: String
    let nodeName: String
    let client: KubeClient?
    let logger: Logger
    public let invoker: CNIInvoker
    private var list: CNINetworkList?

    public static let interfaceName = "eth0"
    static let loopback: JSONValue = ["cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [["type": "loopback"]]]

    public init(settings: PodNetworkSettings, root: String, nodeName: String, client: KubeClient?, logger: Logger) {
        self.settings = settings
        self.root = root
        self.nodeName = nodeName
        self.client = client
        self.logger = logger
        invoker = CNIInvoker(pluginDirectories: settings.pluginDirectories, cacheDirectory: root + "/cni/cache")
    }

    public var configurationFile: String { root + "/cni/net.d/10-ballast.conflist" }
    public nonisolated var networkName: String { settings.network.tableName }

    /// The node's network list: made once the node's range is known (its bridge made, the file
    /// written); throws while the node has none.
    public func networkList() async throws -> CNINetworkList {
        if let list { return list }
        var podCIDR = settings.podCIDR
        if let client, let node = try? await client.get(Node.self, name: nodeName), let text = node.spec.podCIDR, !text.isEmpty {
            guard let parsed = IPv4CIDR(text) else {
                throw KubeletError(.network, "node \(nodeName) has spec.podCIDR \"\(text)\", which is not an IPv4 CIDR")
            }
            podCIDR = parsed
        }
        guard let podCIDR else {
            throw KubeletError(.network, "network is not ready: node \(nodeName) has no spec.podCIDR and the kubelet no --pod-cidr")
        }
        guard let bridge = settings.network.bridgeName(for: podCIDR) else {
            throw KubeletError(.network, "the node's pod range \(podCIDR) is not a /\(settings.network.nodeMaskSize) of the cluster range \(settings.network.clusterCIDR) (--cluster-cidr)")
        }
        // The host side first (idempotent: `ballast up` installed it already), so that no pod
        // of this node ever starts without the safety routes.
        try await HostNetwork.install(settings.network, podSubnets: [podCIDR])
        let json = Self.configuration(name: networkName, bridge: bridge, podCIDR: podCIDR, network: settings.network,
                                      ipamDirectory: root + "/cni/ipam")
        try FileManager.default.createDirectory(atPath: root + "/cni/net.d", withIntermediateDirectories: true)
        try json.jsonData.write(to: URL(fileURLWithPath: configurationFile), options: .atomic)
        let made = try CNINetworkList.load(configurationFile)
        logger.info("pod network ready", metadata: ["podCIDR": "\(podCIDR)", "bridge": "\(bridge)"])
        list = made
        return made
    }

    /// The node's network configuration list: the bridge plugin (not the gateway itself — the
    /// kubelet gives the bridge its address, so that the plugin never switches on forwarding
    /// for the whole machine), host-local IPAM over the node's range, routes to the cluster's
    /// pod and Service ranges through the gateway.
    public static func configuration(name: String, bridge: String, podCIDR: IPv4CIDR, network: ClusterNetwork, ipamDirectory: String) -> JSONValue {
        let gateway = JSONValue.string(podCIDR.address(1))
        return [
            "cniVersion": "1.0.0",
            "name": .string(name),
            "plugins": [
                [
                    "type": "bridge", "bridge": .string(bridge), "isGateway": false, "isDefaultGateway": false, "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": [
                        "type": "host-local", "dataDir": .string(ipamDirectory),
                        "ranges": [[["subnet": .string("\(podCIDR)"), "gateway": gateway]]],
                        "routes": [["dst": .string("\(network.clusterCIDR)"), "gw": gateway],
                                   ["dst": .string("\(network.serviceCIDR)"), "gw": gateway]],
                    ],
                ],
            ],
        ]
    }

    func arguments(_ pod: Pod, netns: String, ifName: String = interfaceName) -> CNIRuntimeArgs {
        CNIRuntimeArgs(containerID: pod.uid, netns: netns, ifName: ifName,
                       args: [("K8S_POD_NAMESPACE", pod.metadata.namespace ?? "default"), ("K8S_POD_NAME", pod.metadata.name ?? ""),
                              ("K8S_POD_INFRA_CONTAINER_ID", pod.uid), ("K8S_POD_UID", pod.uid)])
    }

    /// The pod's address when its network was set up (from the cache, so a restarted kubelet knows it).
    public nonisolated func podIP(uid: String) -> String? {
        invoker.cached(network: networkName, containerID: uid, ifName: Self.interfaceName)?.result?.podIPv4
    }

    /// The pod's `hostPort`s as portmap's `portMappings`.
    public static func portMappings(_ pod: Pod) -> [JSONValue] {
        pod.spec.containers.flatMap { $0.ports ?? [] }.compactMap { port in
            guard let hostPort = port.hostPort, hostPort > 0 else { return nil }
            var mapping: [String: JSONValue] = ["hostPort": .integer(Int64(hostPort)), "containerPort": .integer(Int64(port.containerPort)),
                                                "protocol": .string((port.protocol ?? "TCP").lowercased())]
            if let hostIP = port.hostIP, !hostIP.isEmpty { mapping["hostIP"] = .string(hostIP) }
            return .object(mapping)
        }
    }

    /// The list for `pod`: the node's, with portmap and the pod's mappings when it has hostPorts.
    public static func list(_ base: CNINetworkList, for pod: Pod) throws -> CNINetworkList {
        let mappings = portMappings(pod)
        guard !mappings.isEmpty, var object = base.json.objectValue else { return base }
        object["plugins"] = .array(base.plugins + [["type": "portmap", "capabilities": ["portMappings": true],
                                                    "runtimeConfig": ["portMappings": .array(mappings)]]])
        return try CNINetworkList(.object(object))
    }

    /// Sets up the pod's network in the namespace at `netns` (unless it was, for this
    /// namespace); returns the pod's IP. `lo` is brought up by the loopback plugin unless
    /// `loopbackUp` (the kubelet made the namespace with `lo` up: one plugin process less per pod).
    public func setUp(_ pod: Pod, netns: String, loopbackUp: Bool = false) async throws -> String {
        let list = try Self.list(try await networkList(), for: pod)
        if let ip = podIP(uid: pod.uid) { return ip }
        if !loopbackUp {
            _ = try await invoker.add(try CNINetworkList(Self.loopback), arguments(pod, netns: netns, ifName: "lo"))
        }
        let result = try await invoker.add(list, arguments(pod, netns: netns))
        guard let ip = result.podIPv4 else {
            try? await tearDown(pod, netns: netns)
            throw KubeletError(.network, "the CNI network \(list.name) gave pod \(pod.key) no IPv4 address: \(String(decoding: result.json.jsonBytes, as: UTF8.self))")
        }
        return ip
    }

    /// CNI DEL of the pod's attachments (with what ADD cached); `netns` may be gone.
    public func tearDown(_ pod: Pod, netns: String) async throws {
        try await tearDown(uid: pod.uid, namespace: pod.metadata.namespace ?? "default", name: pod.metadata.name ?? "", netns: netns)
    }

    public func tearDown(uid: String, namespace: String = "", name: String = "", netns: String) async throws {
        let netns = FileManager.default.fileExists(atPath: netns) ? netns : ""
        var pod = Pod(metadata: ObjectMeta(name: name, namespace: namespace))
        pod.metadata.uid = uid
        let cached = invoker.cached(network: networkName, containerID: uid, ifName: Self.interfaceName)
        if let list = cached?.list ?? self.list {
            try await invoker.delete(list, arguments(pod, netns: netns))
        }
        if invoker.cached(network: "cni-loopback", containerID: uid, ifName: "lo") != nil {
            try? await invoker.delete(try CNINetworkList(Self.loopback), arguments(pod, netns: netns, ifName: "lo"))
        }
    }
}
