// The checks of each request that need none of the cloud's state: names, zones, sizes, types,
// tags, tokens, filters, addresses. The simulator runs them first, before it reads or changes
// anything; the fuzz targets run them on arbitrary JSON.
import Foundation

extension CloudValidation {
    /// Throws InvalidParameter naming `parameter` unless `zone` is one of `zones`.
    public static func checkZone(_ zone: String, zones: [String], region: String, parameter: String) throws {
        guard zones.contains(zone) else {
            throw CloudError.invalid(parameter, "\"\(printable(zone))\" is not a zone of region \(region); zones are \(zones.joined(separator: ", "))")
        }
    }

    static let addressTypes = ["InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"]
}

extension RegisterInstanceRequest {
    /// At most 16 addresses, each of a Kubernetes address type and 1–253 printable characters.
    public func validate(zones: [String], region: String) throws {
        try CloudValidation.checkInstanceName(name)
        if let zone { try CloudValidation.checkZone(zone, zones: zones, region: region, parameter: "zone") }
        if let attachLimit, !(1...256).contains(attachLimit) {
            throw CloudError.invalid("attachLimit", "must be 1 to 256, got \(attachLimit)")
        }
        if let type { try CloudValidation.checkName(type, parameter: "type") }
        let addresses = self.addresses ?? []
        guard addresses.count <= 16 else { throw CloudError.invalid("addresses", "\(addresses.count) addresses; at most 16 are allowed") }
        for (index, address) in addresses.enumerated() {
            guard CloudValidation.addressTypes.contains(address.type) else {
                throw CloudError.invalid("addresses[\(index)].type", "\"\(CloudValidation.printable(address.type))\" is not one of \(CloudValidation.addressTypes.joined(separator: ", "))")
            }
            guard (1...253).contains(address.address.utf8.count), address.address.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                throw CloudError.invalid("addresses[\(index)].address", "must be 1 to 253 printable ASCII characters without spaces")
            }
        }
    }
}

extension CreateDiskRequest {
    /// Returns the size rounded up to a whole MiB, and the type ("standard" when not given).
    public func validate(zones: [String], region: String, maxDiskBytes: Int64) throws -> (sizeBytes: Int64, type: String) {
        try CloudValidation.checkName(name, parameter: "name")
        try CloudValidation.checkZone(zone, zones: zones, region: region, parameter: "zone")
        let size = try CloudValidation.checkSize(sizeBytes, maximum: maxDiskBytes)
        let type = self.type ?? "standard"
        guard ["standard", "ssd"].contains(type) else {
            throw CloudError.invalid("type", "\"\(CloudValidation.printable(type))\" is not a disk type; use standard or ssd")
        }
        try CloudValidation.checkTags(tags)
        try CloudValidation.checkToken(clientToken)
        guard snapshotId == nil || sourceDiskId == nil else {
            throw CloudError.invalid("snapshotId", "give either snapshotId or sourceDiskId, not both")
        }
        if let snapshotId { try CloudValidation.checkID(snapshotId, .snapshot, parameter: "snapshotId") }
        if let sourceDiskId { try CloudValidation.checkID(sourceDiskId, .disk, parameter: "sourceDiskId") }
        return (size, type)
    }
}

extension CreateSnapshotRequest {
    public func validate() throws {
        try CloudValidation.checkName(name, parameter: "name")
        try CloudValidation.checkTags(tags)
        try CloudValidation.checkToken(clientToken)
        try CloudValidation.checkID(diskId, .disk, parameter: "diskId")
    }
}

extension DiskFilter {
    public func validate(zones: [String], region: String) throws {
        if let name { try CloudValidation.checkName(name, parameter: "name") }
        if let zone { try CloudValidation.checkZone(zone, zones: zones, region: region, parameter: "zone") }
        if let instanceId { try CloudValidation.checkID(instanceId, .instance, parameter: "instanceId") }
        if let tag, !tag.contains("=") { throw CloudError.invalid("tag", "\"\(CloudValidation.printable(tag))\" is not KEY=VALUE") }
    }
}
