// A `Mounter` that touches nothing: devices, signatures and a mount table in memory, every call
// recorded, and failures injected on demand. The CSI node plugin's and the kubelet's volume
// logic are tested on it without root; `SystemMounter` is tested for real where root is.
import Synchronization

public final class RecordingMounter: Mounter {
    /// One call, as the fake received it.
    public enum Call: Sendable, Equatable {
        case mount(device: String, target: String, fsType: String, options: [String])
        case bind(source: String, target: String, readOnly: Bool)
        case unmount(String)
        case probe(String)
        case format(device: String, fsType: String)
        case grow(device: String, mountPath: String, fsType: String)
        case growUnmounted(device: String, fsType: String)
        case refreshCapacity(String)

        /// The call's kind, for `fail(_:with:)`.
        public var kind: Kind {
            switch self {
            case .mount: .mount
            case .bind: .bind
            case .unmount: .unmount
            case .probe: .probe
            case .format: .format
            case .grow: .grow
            case .growUnmounted: .growUnmounted
            case .refreshCapacity: .refreshCapacity
            }
        }
    }

    public enum Kind: Sendable, Hashable {
        case mount, bind, unmount, probe, format, grow, growUnmounted, refreshCapacity
    }

    private struct State {
        var devices: [String: BlockDevice] = [:]
        var signatures: [String: DeviceSignature] = [:]
        var table: [MountInfo] = []
        var calls: [Call] = []
        var failures: [Kind: HostSystemError] = [:]
        var usage: [String: FileSystemUsage] = [:]
    }

    // Lock order: taken alone.
    private let state = Mutex(State())

    public init() {}

    // MARK: Setting the scene

    /// Adds (or replaces) a device, blank unless `signature` says otherwise.
    public func add(_ device: BlockDevice, signature: DeviceSignature = .blank) {
        state.withLock {
            $0.devices[device.path] = device
            $0.signatures[device.path] = signature
        }
    }

    /// What `probe` finds on `device` from now on.
    public func setSignature(_ signature: DeviceSignature, on device: String) {
        state.withLock { $0.signatures[device] = signature }
    }

    /// Adds a mount the fake did not make (something else mounted there).
    public func addMount(_ mount: MountInfo) {
        state.withLock { $0.table.append(mount) }
    }

    /// The next call of `kind` throws `error` (once).
    public func fail(_ kind: Kind, with error: HostSystemError) {
        state.withLock { $0.failures[kind] = error }
    }

    /// What `usage(of:)` answers for `path`.
    public func setUsage(_ usage: FileSystemUsage, at path: String) {
        state.withLock { $0.usage[path] = usage }
    }

    // MARK: What happened

    /// Every call so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The calls of one kind.
    public func calls(_ kind: Kind) -> [Call] { calls.filter { $0.kind == kind } }

    public func signature(of device: String) -> DeviceSignature? { state.withLock { $0.signatures[device] } }

    // MARK: Mounter

    public func mounts() -> [MountInfo] { state.withLock { $0.table } }

    public func mount(device: String, at target: String, fsType: String, options: [String]) async throws {
        try MountOptions.check(options)
        try record(.mount(device: device, target: target, fsType: fsType, options: options)) { state in
            guard let found = state.devices[device] else { throw HostSystemError(.notFound, "mount: \(device) is not a block device") }
            guard state.signatures[device]?.type == fsType else {
                throw HostSystemError(.commandFailed, "mount: wrong fs type on \(device): it holds \(state.signatures[device]?.summary ?? "nothing")")
            }
            state.table.append(MountInfo(majorMinor: found.majorMinor, root: "/", mountPoint: target,
                                         options: (options.contains("ro") || found.readOnly ? ["ro"] : ["rw"]).joined(separator: ","),
                                         fsType: fsType, source: device))
        }
    }

    public func bind(_ source: String, to target: String, readOnly: Bool) async throws {
        try record(.bind(source: source, target: target, readOnly: readOnly)) { state in
            let options = readOnly ? "ro" : "rw"
            if state.devices[source] != nil {
                state.table.append(MountInfo(majorMinor: "0:5", root: "/" + source.dropFirst("/dev/".count), mountPoint: target,
                                             options: options, fsType: "devtmpfs", source: "udev"))
            } else if let mounted = state.table.last(where: { $0.mountPoint == source }) {
                state.table.append(MountInfo(majorMinor: mounted.majorMinor, root: mounted.root, mountPoint: target,
                                             options: options, fsType: mounted.fsType, source: mounted.source))
            } else {
                throw HostSystemError(.notFound, "bind: \(source) is neither a device nor a mount point of this fake")
            }
        }
    }

    public func unmount(_ path: String) async throws {
        try record(.unmount(path)) { state in
            guard let index = state.table.lastIndex(where: { $0.mountPoint == path }) else {
                throw HostSystemError(.system, "cannot unmount \(path): Invalid argument (not mounted)")
            }
            state.table.remove(at: index)
        }
    }

    public func probe(_ device: String) async throws -> DeviceSignature {
        try record(.probe(device)) { state in
            guard state.devices[device] != nil else { throw HostSystemError(.notFound, "blkid: \(device) does not exist") }
            return state.signatures[device] ?? .blank
        }
    }

    public func format(_ device: String, fsType: String) async throws {
        try record(.format(device: device, fsType: fsType)) { state in
            guard let found = state.devices[device], !found.readOnly else { throw HostSystemError(.commandFailed, "mkfs: \(device) is missing or read-only") }
            state.signatures[device] = DeviceSignature(type: fsType, values: ["TYPE": fsType])
        }
    }

    public func growFileSystem(device: String, mountPath: String, fsType: String) async throws {
        try record(.grow(device: device, mountPath: mountPath, fsType: fsType)) { _ in }
    }

    public func growUnmountedFileSystem(device: String, fsType: String) async throws {
        try record(.growUnmounted(device: device, fsType: fsType)) { _ in }
    }

    public func refreshCapacity(_ device: String) async throws {
        try record(.refreshCapacity(device)) { _ in }
    }

    public func blockDevice(_ path: String) -> BlockDevice? { state.withLock { $0.devices[path] } }

    public func blockDevice(majorMinor: String) -> BlockDevice? {
        state.withLock { $0.devices.values.first { $0.majorMinor == majorMinor } }
    }

    public func usage(of path: String) throws -> FileSystemUsage {
        try state.withLock { state in
            guard state.table.contains(where: { $0.mountPoint == path }) else { throw HostSystemError(.notFound, "statfs \(path): nothing is mounted there") }
            return state.usage[path] ?? FileSystemUsage(totalBytes: 1 << 30, availableBytes: 1 << 29, usedBytes: 1 << 29,
                                                        totalInodes: 65536, freeInodes: 65000, usedInodes: 536)
        }
    }

    /// Records `call`, throws an injected failure for its kind, or applies `body`.
    private func record<T: Sendable>(_ call: Call, _ body: (inout State) throws -> T) throws -> T {
        try state.withLock { (state: inout State) throws -> T in
            state.calls.append(call)
            if let failure = state.failures.removeValue(forKey: call.kind) { throw failure }
            return try body(&state)
        }
    }
}
