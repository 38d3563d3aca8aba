// What the kubelet asks the runtime to run, already resolved from the pod spec and the image:
// the process, the mounts, the devices, the limits, the pod's namespaces. `ociSpec` turns it
// into the bundle's config.json.
import Foundation

/// One container to start.
public struct ContainerConfig: Sendable, Equatable {
    public var podUID: String
    public var podNamespace: String
    public var podName: String
    public var name: String
    public var attempt: Int
    public var isInit: Bool
    public var image: ResolvedImage
    /// The argv (command + args, or the image's entrypoint + cmd).
    public var args: [String]
    /// `NAME=value` entries: the image's, then the container's.
    public var env: [String]
    public var workingDir: String
    /// Volumes, /etc/hosts, /etc/resolv.conf, /etc/hostname, termination log.
    public var mounts: [OCISpec.Mount]
    /// Raw block volumes (`volumeDevices`).
    public var devices: [OCISpec.Device]
    public var memoryLimit: Int64?
    /// CPU limit in millicores.
    public var cpuLimitMillis: Int64?
    /// CPU request in millicores (cpu.shares).
    public var cpuRequestMillis: Int64?
    public var pidsLimit: Int64?
    public var hostname: String
    public var sandbox: PodSandbox
    /// The pod's network namespace to join (nil: the node's, for hostNetwork pods).
    public var netNamespace: String?
    /// The PID namespace to join (`shareProcessNamespace`: the pod's, whose PID 1 is its pause
    /// process); nil: a new one of the container's own.
    public var pidNamespace: String?
    public var logPath: String
    public var specHash: String

    public init(podUID: String, podNamespace: String, podName: String, name: String, attempt: Int, isInit: Bool,
                image: ResolvedImage, args: [String], env: [String], workingDir: String, mounts: [OCISpec.Mount],
                devices: [OCISpec.Device], memoryLimit: Int64? = nil, cpuLimitMillis: Int64? = nil, cpuRequestMillis: Int64? = nil,
                pidsLimit: Int64? = nil, hostname: String, sandbox: PodSandbox, pidNamespace: String? = nil, logPath: String,
                specHash: String) {
        self.podUID = podUID
        self.podNamespace = podNamespace
        self.podName = podName
        self.name = name
        self.attempt = attempt
        self.isInit = isInit
        self.image = image
        self.args = args
        self.env = env
        self.workingDir = workingDir
        self.mounts = mounts
        self.devices = devices
        self.memoryLimit = memoryLimit
        self.cpuLimitMillis = cpuLimitMillis
        self.cpuRequestMillis = cpuRequestMillis
        self.pidsLimit = pidsLimit
        self.hostname = hostname
        self.sandbox = sandbox
        self.pidNamespace = pidNamespace
        self.logPath = logPath
        self.specHash = specHash
    }

    /// Open files allowed to a container: the kubelet's own hard limit (at most 1,048,576, what
    /// containerd gives): a container cannot be given more than the runtime has.
    static let openFilesLimit: UInt64 = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return min(UInt64(limit.rlim_max), 1_048_576)
    }()

    /// The bundle's config.json for a root file system at `rootfs` and cgroup `cgroupsPath`.
    public func ociSpec(rootfs: String, cgroupsPath: String) -> OCISpec {
        let capabilities = OCISpec.Capabilities(bounding: OCISpec.defaultCapabilities, effective: OCISpec.defaultCapabilities,
                                                permitted: OCISpec.defaultCapabilities, ambient: nil)
        let process = OCISpec.Process(args: args, env: env, cwd: workingDir.isEmpty ? "/" : workingDir, capabilities: capabilities,
                                      rlimits: [OCISpec.Rlimit(type: "RLIMIT_NOFILE", hard: Self.openFilesLimit, soft: Self.openFilesLimit)],
                                      noNewPrivileges: false, oomScoreAdj: nil)
        var namespaces = [
            OCISpec.Namespace(type: "mount", path: nil),
            OCISpec.Namespace(type: "uts", path: sandbox.utsNamespace),
            OCISpec.Namespace(type: "ipc", path: sandbox.ipcNamespace),
            OCISpec.Namespace(type: "pid", path: pidNamespace),
        ]
        if let netNamespace { namespaces.append(OCISpec.Namespace(type: "network", path: netNamespace)) }
        if FileManager.default.fileExists(atPath: "/proc/self/ns/cgroup") {
            namespaces.append(OCISpec.Namespace(type: "cgroup", path: nil))
        }
        var rules = [OCISpec.DeviceRule(allow: false, type: nil, major: nil, minor: nil, access: "rwm")]
        for device in devices {
            rules.append(OCISpec.DeviceRule(allow: true, type: device.type, major: device.major, minor: device.minor, access: "rwm"))
        }
        var resources = OCISpec.Resources(devices: rules)
        if let memoryLimit { resources.memory = OCISpec.Memory(limit: memoryLimit, swap: nil) }
        if cpuLimitMillis != nil || cpuRequestMillis != nil {
            let period: UInt64 = 100_000
            // Kubernetes' MilliCPUToQuota and MilliCPUToShares (at least 1 ms of quota, 2 shares).
            let quota = cpuLimitMillis.map { max(1000, $0 * Int64(period) / 1000) }
            let shares = cpuRequestMillis.map { UInt64(max(2, $0 * 1024 / 1000)) }
            resources.cpu = OCISpec.CPU(shares: shares, quota: quota, period: quota == nil ? nil : period)
        }
        if let pidsLimit { resources.pids = OCISpec.Pids(limit: pidsLimit) }
        return OCISpec(process: process, root: OCISpec.Root(path: rootfs, readonly: false), hostname: hostname,
                       mounts: OCISpec.defaultMounts + mounts,
                       linux: OCISpec.Linux(namespaces: namespaces, cgroupsPath: cgroupsPath, resources: resources,
                                            devices: devices.isEmpty ? nil : devices,
                                            maskedPaths: OCISpec.defaultMaskedPaths, readonlyPaths: OCISpec.defaultReadonlyPaths))
    }
}
