// The cloud's resources as value types. Their JSON form (camelCase keys, RFC 3339 times) is the
// simulator's HTTP API, documented in docs/cloud-api.md.
import Foundation

/// A zone of the region: disks and instances live in one zone; a disk attaches only to an
/// instance of its own zone.
public struct Zone: Codable, Sendable, Equatable {
    public var name: String
    public var region: String
    /// Sum of the sizes of the disks the zone may hold.
    public var capacityBytes: Int64
    /// Sum of the sizes of its disks now.
    public var usedBytes: Int64

    public init(name: String, region: String, capacityBytes: Int64, usedBytes: Int64 = 0) {
        self.name = name
        self.region = region
        self.capacityBytes = capacityBytes
        self.usedBytes = usedBytes
    }
}

public enum InstanceState: String, Codable, Sendable, CaseIterable {
    case running, stopped, terminated
}

public struct InstanceAddress: Codable, Sendable, Equatable {
    /// Kubernetes' address types: InternalIP, ExternalIP, Hostname, InternalDNS.
    public var type: String
    public var address: String

    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

/// A machine of the cloud. On the simulator every instance is this machine: a disk attached to
/// any of them shows up here as a loop device.
public struct Instance: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var zone: String
    public var type: String
    public var state: InstanceState
    public var addresses: [InstanceAddress]
    /// How many disks may be attached at once.
    public var attachLimit: Int
    public var createdAt: Date

    public init(id: String, name: String, zone: String, type: String, state: InstanceState,
                addresses: [InstanceAddress], attachLimit: Int, createdAt: Date) {
        self.id = id
        self.name = name
        self.zone = zone
        self.type = type
        self.state = state
        self.addresses = addresses
        self.attachLimit = attachLimit
        self.createdAt = createdAt
    }
}

public enum DiskState: String, Codable, Sendable {
    /// Being created (its backing file is being made or copied).
    case creating
    case available
    /// Attached to (or attaching to, or detaching from) an instance.
    case inUse = "in-use"
    case deleting
    /// Its backing file vanished or could not be made: `failureReason` says which.
    case failed
}

public enum AttachmentState: String, Codable, Sendable {
    case attaching, attached, detaching, detached
    /// Was attached, but the device vanished (a reboot) and could not be re-attached.
    case lost
}

/// A disk's attachment to an instance.
public struct Attachment: Codable, Sendable, Equatable {
    public var diskId: String
    public var instanceId: String
    public var state: AttachmentState
    /// The block device on the instance ("/dev/loop7") once attached.
    public var devicePath: String?
    /// The device's serial as the instance sees it: the disk id.
    public var serial: String
    /// Attached read-only: the device refuses writes.
    public var readOnly: Bool

    public init(diskId: String, instanceId: String, state: AttachmentState, devicePath: String?, readOnly: Bool = false) {
        self.diskId = diskId
        self.instanceId = instanceId
        self.state = state
        self.devicePath = devicePath
        self.serial = diskId
        self.readOnly = readOnly
    }
}

public struct Disk: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var zone: String
    public var sizeBytes: Int64
    public var type: String
    public var state: DiskState
    /// May be attached to several instances at once.
    public var multiAttach: Bool
    public var tags: [String: String]
    public var sourceSnapshotId: String?
    public var sourceDiskId: String?
    public var attachments: [Attachment]
    public var failureReason: String?
    public var createdAt: Date
}

public enum SnapshotState: String, Codable, Sendable {
    case pending, completed, deleting, failed
}

/// A point-in-time copy of a disk, usable in any zone of the region.
public struct Snapshot: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var sourceDiskId: String
    public var sizeBytes: Int64
    public var state: SnapshotState
    public var tags: [String: String]
    public var createdAt: Date
}

public enum OperationState: String, Codable, Sendable {
    case running, succeeded, failed
}

/// What an operation does; its JSON form is the raw value ("disk.attach").
public enum OperationKind: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    case diskCreate = "disk.create"
    case diskDelete = "disk.delete"
    case diskResize = "disk.resize"
    case diskAttach = "disk.attach"
    case diskDetach = "disk.detach"
    case snapshotCreate = "snapshot.create"
    case snapshotDelete = "snapshot.delete"

    public var description: String { rawValue }
}

/// Asynchronous work the cloud accepted: poll it until it is done.
public struct CloudOperation: Codable, Sendable, Equatable {
    public var id: String
    public var kind: OperationKind
    /// The disk or snapshot it works on.
    public var targetId: String
    /// For attach and detach: the instance.
    public var instanceId: String?
    public var state: OperationState
    public var error: CloudErrorBody?
    public var createdAt: Date
    public var doneAt: Date?

    public var isDone: Bool { state != .running }
}

/// One page of a list, and the token of the next one (nil on the last page).
public struct Page<Item: Codable & Sendable>: Codable, Sendable {
    public var items: [Item]
    public var nextPageToken: String?

    public init(items: [Item], nextPageToken: String?) {
        self.items = items
        self.nextPageToken = nextPageToken
    }
}

// MARK: - Requests

public struct RegisterInstanceRequest: Codable, Sendable, Equatable {
    public var name: String
    /// A zone of the region; nil picks the next zone round robin.
    public var zone: String?
    public var type: String?
    public var attachLimit: Int?
    public var addresses: [InstanceAddress]?

    public init(name: String, zone: String? = nil, type: String? = nil, attachLimit: Int? = nil, addresses: [InstanceAddress]? = nil) {
        self.name = name
        self.zone = zone
        self.type = type
        self.attachLimit = attachLimit
        self.addresses = addresses
    }
}

public struct CreateDiskRequest: Codable, Sendable, Equatable {
    public var name: String
    public var zone: String
    /// Rounded up to a whole MiB.
    public var sizeBytes: Int64
    /// "standard" (default) or "ssd".
    public var type: String?
    public var multiAttach: Bool?
    public var tags: [String: String]?
    /// Copy this snapshot's data (the disk must be at least as large).
    public var snapshotId: String?
    /// Clone this disk's data (same zone; at least as large).
    public var sourceDiskId: String?
    /// Retrying with the same token returns the same disk; a different request with it is refused.
    public var clientToken: String?

    public init(name: String, zone: String, sizeBytes: Int64, type: String? = nil, multiAttach: Bool? = nil,
                tags: [String: String]? = nil, snapshotId: String? = nil, sourceDiskId: String? = nil, clientToken: String? = nil) {
        self.name = name
        self.zone = zone
        self.sizeBytes = sizeBytes
        self.type = type
        self.multiAttach = multiAttach
        self.tags = tags
        self.snapshotId = snapshotId
        self.sourceDiskId = sourceDiskId
        self.clientToken = clientToken
    }
}

public struct CreateSnapshotRequest: Codable, Sendable, Equatable {
    public var diskId: String
    public var name: String
    public var tags: [String: String]?
    public var clientToken: String?

    public init(diskId: String, name: String, tags: [String: String]? = nil, clientToken: String? = nil) {
        self.diskId = diskId
        self.name = name
        self.tags = tags
        self.clientToken = clientToken
    }
}

/// Which disks a list returns; nil fields match everything.
public struct DiskFilter: Codable, Sendable, Equatable {
    public var name: String?
    public var zone: String?
    /// Only disks attached to this instance.
    public var instanceId: String?
    /// Only disks carrying this tag ("key=value").
    public var tag: String?

    public init(name: String? = nil, zone: String? = nil, instanceId: String? = nil, tag: String? = nil) {
        self.name = name
        self.zone = zone
        self.instanceId = instanceId
        self.tag = tag
    }
}

/// Where a list starts and how long a page is.
public struct PageRequest: Sendable, Equatable {
    /// 1…1000; nil for the default of 100.
    public var limit: Int?
    public var pageToken: String?

    public init(limit: Int? = nil, pageToken: String? = nil) {
        self.limit = limit
        self.pageToken = pageToken
    }
}

/// The JSON coding of the cloud's API: times in RFC 3339 with milliseconds, sorted keys.
public enum CloudJSON {
    private static let format = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(format))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = try? Date(text, strategy: format) { return date }
            if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\"\(text)\" is not an RFC 3339 time"))
        }
        return decoder
    }

    /// Now, to the millisecond: what the state database keeps and the API shows.
    static func now() -> Date {
        Date(timeIntervalSince1970: Double(Int64((Date().timeIntervalSince1970 * 1000).rounded())) / 1000)
    }
}
