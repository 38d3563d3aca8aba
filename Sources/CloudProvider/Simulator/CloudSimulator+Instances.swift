// The simulator's region and instances: registration (idempotent by name), lookups, lists, and
// state changes (terminating an instance detaches its disks, forcibly, as a cloud does).
import Foundation
import HostSystem

extension CloudSimulator {
    public func describeRegion() async throws -> (region: String, zones: [Zone]) {
        try injectFault(.describe)
        let zones = try configuration.zones.map { name in
            Zone(name: name, region: configuration.region, capacityBytes: configuration.zoneCapacityBytes,
                 usedBytes: try database.usedBytes(zone: name))
        }
        return (configuration.region, zones)
    }

    public func registerInstance(_ request: RegisterInstanceRequest) async throws -> Instance {
        try injectFault(.register)
        try request.validate(zones: configuration.zones, region: configuration.region)
        return try database.transaction {
            if let existing = try database.instances(named: request.name).first, existing.state != .terminated {
                let same = (request.zone ?? existing.zone) == existing.zone && (request.type ?? existing.type) == existing.type
                    && (request.attachLimit ?? existing.attachLimit) == existing.attachLimit
                    && (request.addresses ?? existing.addresses) == existing.addresses
                guard same else {
                    throw CloudError(.alreadyExists, "instance \(request.name) is already registered as \(existing.id) with other parameters; terminate it first or register the same ones")
                }
                return existing
            }
            let zone = try request.zone ?? configuration.zones[try database.instanceCount() % configuration.zones.count]
            let instance = Instance(id: CloudValidation.newID(.instance), name: request.name, zone: zone,
                                    type: request.type ?? configuration.defaultInstanceType, state: .running,
                                    addresses: request.addresses ?? [InstanceAddress(type: "InternalIP", address: "127.0.0.1"),
                                                                     InstanceAddress(type: "Hostname", address: request.name)],
                                    attachLimit: request.attachLimit ?? configuration.defaultAttachLimit, createdAt: CloudJSON.now())
            try database.insert(instance)
            logger.info("instance registered", metadata: ["instance": "\(instance.id)", "name": "\(instance.name)", "zone": "\(zone)"])
            return instance
        }
    }

    public func describeInstance(id: String) async throws -> Instance {
        try injectFault(.describe)
        return try instance(id, parameter: "id")
    }

    public func findInstance(name: String) async throws -> Instance? {
        try injectFault(.describe)
        try CloudValidation.checkInstanceName(name)
        return try database.instances(named: name).first
    }

    public func listInstances(_ page: PageRequest) async throws -> Page<Instance> {
        try injectFault(.list)
        let (after, limit) = try pageBounds(page, .instance)
        return paged(try database.instances(after: after, limit: limit + 1), limit: limit, id: \.id)
    }

    public func setInstanceState(id: String, to state: InstanceState) async throws -> Instance {
        try injectFault(.instanceState)
        let current = try instance(id, parameter: "id")
        if current.state == state { return current }
        guard current.state != .terminated else {
            throw CloudError(.incorrectState, "instance \(id) is terminated; register a new instance instead")
        }
        if state == .terminated {
            // A terminated instance keeps no disks: detach them all, forcibly, as a cloud does.
            for attachment in try database.attachments(instanceId: id) {
                _ = try await startDetach(diskId: attachment.diskId, instanceId: id, force: true)
            }
        }
        try database.transaction { try database.setInstanceState(id, state) }
        logger.info("instance state changed", metadata: ["instance": "\(id)", "state": "\(state.rawValue)"])
        return try instance(id, parameter: "id")
    }
}
