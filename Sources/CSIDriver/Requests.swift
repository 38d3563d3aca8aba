// Checks shared by the controller and node services: volume capabilities, paths, ids, and the
// per-volume lock that answers ABORTED to a second concurrent call.
import CloudProvider
import Foundation
import HostSystem
import Synchronization

/// A volume capability the driver supports, parsed from the request.
struct Capability: Equatable, Sendable {
    enum Access: Equatable, Sendable {
        case block
        case mount(fsType: String, flags: [String])
    }

    let access: Access
    let mode: Csi_V1_VolumeCapability.AccessMode.Mode

    static let supportedFileSystems = ["ext4", "xfs"]
    static let defaultFileSystem = "ext4"

    var isBlock: Bool { access == .block }

    /// Only this node may read or write, whatever the mode: loop volumes attach to one node.
    var isReadOnlyMode: Bool { mode == .singleNodeReaderOnly }

    /// Several targets on the node may publish the volume at once.
    var allowsSeveralTargets: Bool { mode == .singleNodeMultiWriter || mode == .singleNodeReaderOnly || mode == .singleNodeWriter }

    /// Parses `capability`; `field` names it in errors ("volume_capabilities[0]").
    init(_ capability: Csi_V1_VolumeCapability, field: String, defaultFileSystem: String = Capability.defaultFileSystem) throws {
        switch capability.accessType {
        case .block: access = .block
        case .mount(let mount):
            let fsType = mount.fsType.isEmpty ? defaultFileSystem : mount.fsType.lowercased()
            guard Self.supportedFileSystems.contains(fsType) else {
                throw CSIError.invalid("\(field).mount.fs_type", "\"\(CSIError.printable(mount.fsType))\" is not supported; use ext4 or xfs")
            }
            try MountFlags.check(mount.mountFlags, field: "\(field).mount.mount_flags")
            access = .mount(fsType: fsType, flags: mount.mountFlags)
        case nil:
            throw CSIError.invalid("\(field).access_type", "set block or mount")
        }
        guard capability.hasAccessMode, capability.accessMode.mode != .unknown else {
            throw CSIError.invalid("\(field).access_mode", "is required")
        }
        switch capability.accessMode.mode {
        case .singleNodeWriter, .singleNodeReaderOnly, .singleNodeSingleWriter, .singleNodeMultiWriter:
            mode = capability.accessMode.mode
        default:
            throw CSIError.invalid("\(field).access_mode", "\(capability.accessMode.mode) is not supported: loop volumes attach to one node at a time; use a SINGLE_NODE_* mode")
        }
    }

    /// Parses every capability of a request; at least one is required.
    static func all(_ capabilities: [Csi_V1_VolumeCapability], field: String, defaultFileSystem: String = defaultFileSystem) throws -> [Capability] {
        guard !capabilities.isEmpty else { throw CSIError.required(field) }
        return try capabilities.enumerated().map { try Capability($1, field: "\(field)[\($0)]", defaultFileSystem: defaultFileSystem) }
    }
}

/// Volume and snapshot ids are the cloud's disk and snapshot ids. A string of another shape
/// names nothing that exists, and is never used further.
enum VolumeID {
    static func isValid(_ id: String) -> Bool {
        (try? CloudValidation.checkID(id, .disk, parameter: "volume_id")) != nil
    }

    static func isValidSnapshot(_ id: String) -> Bool {
        (try? CloudValidation.checkID(id, .snapshot, parameter: "snapshot_id")) != nil
    }

    static func isValidNode(_ id: String) -> Bool {
        (try? CloudValidation.checkID(id, .instance, parameter: "node_id")) != nil
    }
}

/// What a capacity range asks for. Sizes come from the request and are not trusted: every sum
/// and rounding is checked, and a size that cannot be served is OUT_OF_RANGE, never a trap.
struct RequestedSize: Equatable {
    /// 0 when not given.
    let required: Int64
    /// 0 when not given.
    let limit: Int64
    /// What to create: at least `required`, a whole MiB.
    let bytes: Int64

    /// Parses `range` (nil: none given); `defaultBytes` is the size of a volume asked without
    /// one. `field` names the range in errors ("capacity_range").
    init(_ range: Csi_V1_CapacityRange?, defaultBytes: Int64, field: String) throws {
        let required = range?.requiredBytes ?? 0
        let limit = range?.limitBytes ?? 0
        guard required >= 0 else { throw CSIError.invalid("\(field).required_bytes", "must not be negative, got \(required)") }
        guard limit >= 0 else { throw CSIError.invalid("\(field).limit_bytes", "must not be negative, got \(limit)") }
        guard limit == 0 || required <= limit else {
            throw CSIError.invalid(field, "required_bytes \(required) is more than limit_bytes \(limit)")
        }
        let wanted = required > 0 ? required : (limit > 0 ? min(limit, defaultBytes) : defaultBytes)
        guard let rounded = CloudValidation.roundUpToMebibyte(wanted) else {
            throw CSIError(.outOfRange, "\(field).required_bytes: \(wanted) bytes is more than any volume can hold")
        }
        guard limit == 0 || rounded <= limit else {
            throw CSIError(.outOfRange, "\(field): volumes come in whole MiB, and \(rounded) bytes is over limit_bytes \(limit)")
        }
        self.required = required
        self.limit = limit
        self.bytes = rounded
    }
}

/// At most one call per key (a volume id, a name) at a time: a second gets ABORTED, as the
/// spec allows, and the CO retries it.
final class InFlight: Sendable {
    private let keys = Mutex<Set<String>>([])

    func run<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        let claimed = keys.withLock { $0.insert(key).inserted }
        guard claimed else { throw CSIError(.aborted, "an operation on \(key) is already in progress; retry later") }
        defer { _ = keys.withLock { $0.remove(key) } }
        return try await body()
    }
}
