// Checks shared by the controller and node services: volume capabilities, paths, ids, and the
// per-volume lock that answers ABORTED to a second concurrent call.
import CloudProvider
import Foundation

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
                throw CSIError.invalid("\(field).mount.fs_type", "\"\(mount.fsType)\" is not supported; use ext4 or xfs")
            }
            for flag in mount.mountFlags where flag.isEmpty || flag.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true }) {
                throw CSIError.invalid("\(field).mount.mount_flags", "\"\(flag)\" is not a mount option")
            }
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

/// Checks that `path` is absolute, normalised and under `root`, and returns it.
func checkPath(_ path: String, field: String, under root: String) throws -> String {
    guard !path.isEmpty else { throw CSIError.required(field) }
    guard path.hasPrefix("/") else { throw CSIError.invalid(field, "\"\(path)\" is not an absolute path") }
    guard path.utf8.count <= 4096, !path.contains("\0") else { throw CSIError.invalid(field, "is not a valid path") }
    let components = path.split(separator: "/", omittingEmptySubsequences: true)
    guard !components.contains(".."), !components.contains(".") else {
        throw CSIError.invalid(field, "\"\(path)\" must not contain . or .. components")
    }
    let normalised = "/" + components.joined(separator: "/")
    let base = root.hasSuffix("/") ? String(root.dropLast()) : root
    guard normalised.hasPrefix(base + "/") else {
        throw CSIError.invalid(field, "\"\(path)\" is outside the kubelet root \(base); the driver only touches paths under --kubelet-root")
    }
    return normalised
}

/// At most one call per key (a volume id, a name) at a time: a second gets ABORTED, as the
/// spec allows, and the CO retries it.
final class InFlight: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: Set<String> = []

    func run<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        let claimed = lock.withLock { keys.insert(key).inserted }
        guard claimed else { throw CSIError(.aborted, "an operation on \(key) is already in progress; retry later") }
        defer { _ = lock.withLock { keys.remove(key) } }
        return try await body()
    }
}
