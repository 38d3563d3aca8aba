import ArgumentParser
import ClusterAPI
import Foundation
import HTTPKit
import Kubelet
import Logging
import Units

/// `ballast kubelet`: the node agent. Pods bound to the node run in runc (or crun) containers,
/// with their CSI volumes staged and published through the node plugin.
struct KubeletCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubelet",
        abstract: "Run a node: register it, run the pods bound to it in OCI containers, mount their volumes through CSI, serve logs and exec."
    )

    @Option(help: "This node's name (the Node object, spec.nodeName of its pods).") var nodeName: String
    @OptionGroup var api: KubeconfigOptions
    @Option(help: "The kubelet's root directory: pods, volumes, containers, the runtime's state.") var rootDir: String = "/var/lib/kubelet"
    @Option(help: "The CSI node plugin's socket, unix:///path/csi.sock (none: only local volumes).") var csiEndpoint: String?
    @Option(help: "The node's IP address: the kubelet listens on it; hostNetwork pods (and every pod without --cluster-cidr) share it.") var nodeIp: String = "127.0.0.1"
    @Option(help: "The port of the kubelet's HTTPS server (logs, exec).") var port: Int = 10250
    @Option(help: "The OCI runtime: runc or crun.") var containerRuntime: String = "runc"
    @OptionGroup var images: ImageDirOptions
    @Option(help: "Where container logs go: <dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log.") var podLogsDir: String = "/var/log/pods"
    @Option(help: "A running container's log is rotated once larger than this (e.g. 10Mi).") var containerLogMaxSize: String = "10Mi"
    @Option(help: "The files of a container's log kept, the current one included (at least 2).") var containerLogMaxFiles: Int = 5
    @Option(help: "The node's capacity, e.g. cpu=4,memory=8Gi,pods=110 (default: the machine's CPUs and memory, 110 pods).") var capacity: String?
    @Option(help: "\"external\": register with the node.cloudprovider.kubernetes.io/uninitialized taint that the cloud controller manager removes.") var cloudProvider: String?
    @Option(help: "File with the token the API server presents to this kubelet (mode 0600).") var authenticationTokenFile: String?
    @Option(help: "Most processes per container (pids cgroup); -1: no limit.") var podMaxPids: Int64 = 4096
    @Option(help: "The cgroup that holds the node's pods, as <root>/<node-name>/pod<uid> (two clusters on one machine need different roots).") var cgroupRoot: String = "/ballast"
    @Option(help: "The cluster's pod range: with it, each pod gets a network namespace of its own through CNI (e.g. 198.18.0.0/16); without it, pods share the node's.") var clusterCidr: String?
    @Option(help: "The node's pod range, a /24 of --cluster-cidr, used when the Node has no spec.podCIDR.") var podCidr: String?
    @Option(help: "The cluster's Service range: pods get a route to it (default 198.19.0.0/16).") var serviceClusterIpRange: String?
    @Option(help: "Four letters or digits naming this cluster's bridges (ballast<tag>n<i>), Service device and nftables table (default 0000).") var networkTag: String = "0000"
    @Option(help: "Where the CNI plugins are, colon-separated.") var cniBinDir: String = PodNetworkSettings.defaultPluginDirectories.joined(separator: ":")
    @Option(help: "The cluster's DNS server IPs, comma-separated (pods with dnsPolicy ClusterFirst use them; none: they fall back to Default).") var clusterDns: String?
    @Option(help: "The cluster's DNS domain (pods' search path <ns>.svc.<domain> svc.<domain> <domain>).") var clusterDomain: String = "cluster.local"
    @Option(help: "The resolver configuration pods with dnsPolicy Default get (\"\": none).") var resolvConf: String = "/etc/resolv.conf"
    @OptionGroup var logging: LoggingOptions

    /// The pod network from the flags (nil without --cluster-cidr).
    func podNetwork() throws -> PodNetworkSettings? {
        guard let clusterCidr else {
            if podCidr != nil { throw ValidationError("--pod-cidr needs --cluster-cidr (the range it is a /24 of)") }
            return nil
        }
        guard let cluster = IPv4CIDR(clusterCidr) else { throw ValidationError("--cluster-cidr \(clusterCidr): expected an IPv4 network such as 198.18.0.0/16") }
        let serviceText = serviceClusterIpRange ?? "\(ClusterNetwork.defaultServiceCIDR)"
        guard let service = IPv4CIDR(serviceText) else {
            throw ValidationError("--service-cluster-ip-range \(serviceText): expected an IPv4 network such as 198.19.0.0/16")
        }
        var pod: IPv4CIDR?
        if let podCidr {
            guard let parsed = IPv4CIDR(podCidr), parsed.prefixLength == 24, cluster.contains(parsed) else {
                throw ValidationError("--pod-cidr \(podCidr): expected a /24 network inside --cluster-cidr \(clusterCidr)")
            }
            pod = parsed
        }
        do {
            let network = try ClusterNetwork(tag: networkTag, clusterCIDR: cluster, serviceCIDR: service)
            return PodNetworkSettings(network: network, podCIDR: pod, pluginDirectories: cniBinDir.split(separator: ":").map(String.init))
        } catch {
            throw ValidationError(error.message)
        }
    }

    func dnsSettings() throws -> DNSSettings {
        let servers = (clusterDns ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for server in servers where IPv4CIDR.parseAddress(server) == nil && !server.contains(":") {
            throw ValidationError("--cluster-dns \(server): expected an IP address")
        }
        guard !clusterDomain.isEmpty, !clusterDomain.contains(" ") else { throw ValidationError("--cluster-domain \(clusterDomain): expected a DNS domain such as cluster.local") }
        return DNSSettings(clusterDNS: servers, clusterDomain: clusterDomain, resolvConf: resolvConf)
    }

    func validate() throws {
        _ = try podNetwork()
        _ = try dnsSettings()
        guard rootDir.hasPrefix("/") || !rootDir.isEmpty else { throw ValidationError("--root-dir must be a directory") }
        guard (1...65535).contains(port) else { throw ValidationError("--port \(port): expected 1-65535") }
        guard cgroupRoot.hasPrefix("/"), !cgroupRoot.split(separator: "/").contains(".."), !cgroupRoot.contains(",") else {
            throw ValidationError("--cgroup-root \(cgroupRoot): expected an absolute cgroup path such as /ballast")
        }
        guard ["runc", "crun"].contains(containerRuntime) else { throw ValidationError("--container-runtime \(containerRuntime): expected runc or crun") }
        if let cloudProvider, cloudProvider != "external" && !cloudProvider.isEmpty {
            throw ValidationError("--cloud-provider \(cloudProvider): only external is supported")
        }
        _ = try parsedCapacity()
        _ = try logRotation()
    }

    func logRotation() throws -> LogRotationPolicy {
        guard let size = ByteSize.parse(containerLogMaxSize), size >= 1024 else {
            throw ValidationError("--container-log-max-size \(containerLogMaxSize): expected a size of at least 1Ki, such as 10Mi")
        }
        guard containerLogMaxFiles >= 2 else {
            throw ValidationError("--container-log-max-files \(containerLogMaxFiles): expected at least 2 (the current file and a rotated one)")
        }
        return LogRotationPolicy(maxBytes: size, maxFiles: containerLogMaxFiles)
    }

    func parsedCapacity() throws -> [String: Quantity] {
        var result: [String: Quantity] = [:]
        for entry in (capacity ?? "").split(separator: ",") where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--capacity \(capacity ?? ""): expected name=quantity,… (cpu=4,memory=8Gi,pods=110)") }
            do { result[parts[0]] = try Quantity(parts[1]) } catch {
                throw ValidationError("--capacity \(parts[0])=\(parts[1]): \(error)")
            }
        }
        return result
    }

    func run() async throws {
        let logger = logging.logger("ballast.kubelet")
        let absolute = { (path: String) in URL(fileURLWithPath: path).standardizedFileURL.path }
        var token: String?
        if let file = authenticationTokenFile {
            do {
                guard let data = try SecretFiles.read(file) else { throw ValidationError("--authentication-token-file \(file) does not exist") }
                token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("--authentication-token-file: \(error)")
            }
        }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let binary = FileManager.default.isExecutableFile(atPath: executable) ? executable : (Bundle.main.executablePath ?? executable)
        var configuration = KubeletConfiguration(
            nodeName: nodeName, nodeIP: nodeIp, port: port, rootDirectory: absolute(rootDir), csiEndpoint: csiEndpoint,
            containerRuntime: containerRuntime, imageDirectory: absolute(images.imageDir), podLogsDirectory: absolute(podLogsDir),
            capacity: try parsedCapacity(), externalCloudProvider: cloudProvider == "external", podPidsLimit: podMaxPids > 0 ? podMaxPids : nil,
            executable: binary, authenticationToken: token)
        configuration.cgroupRoot = cgroupRoot
        configuration.network = try podNetwork()
        configuration.dns = try dnsSettings()
        configuration.logRotation = try logRotation()
        let kubelet: KubeletServer
        do {
            kubelet = try await KubeletServer(configuration: configuration, client: try api.client(), logger: logger)
        } catch let error as KubeletError {
            throw ValidationError(error.message)
        }
        try await runServices([("kubelet", kubelet)], logger: logger)
    }
}
