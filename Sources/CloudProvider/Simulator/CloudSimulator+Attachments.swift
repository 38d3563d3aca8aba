// Attaching and detaching disks: attach limits, zones, read-only attachments, multi-attach, and
// detaches that a mounted device refuses unless forced.
import Foundation
import HostSystem

extension CloudSimulator {
    public func attachDisk(id: String, instanceId: String, readOnly: Bool) async throws -> CloudOperation {
        try injectFault(.attach)
        let disk = try disk(id, parameter: "id")
        let instance = try instance(instanceId, parameter: "instanceId")
        if let existing = disk.attachments.first(where: { $0.instanceId == instanceId }) {
            if existing.readOnly != readOnly, [.attaching, .attached].contains(existing.state) {
                throw CloudError(.alreadyExists, "disk \(id) is attached to \(instanceId) \(existing.readOnly ? "read-only" : "read-write"); detach it before attaching it \(readOnly ? "read-only" : "read-write")")
            }
            switch existing.state {
            case .attached: return try finishedOperation(.diskAttach, target: id, instance: instanceId)
            case .attaching:
                if let running = try database.runningOperation(targetId: id, instanceId: instanceId) { return running }
            case .detaching:
                throw CloudError(.incorrectState, "disk \(id) is detaching from \(instanceId); wait for that, then attach")
            case .lost, .detached:
                break
            }
        }
        guard instance.state == .running else {
            throw CloudError(.incorrectState, "instance \(instanceId) is \(instance.state.rawValue); start it before attaching disks")
        }
        guard instance.zone == disk.zone else {
            throw CloudError.invalid("instanceId", "instance \(instanceId) is in zone \(instance.zone) but disk \(id) is in \(disk.zone); disks attach within their zone")
        }
        guard [.available, .inUse].contains(disk.state) else {
            throw CloudError(.incorrectState, "disk \(id) is \(disk.state.rawValue)\(disk.failureReason.map { " (\($0))" } ?? ""); it cannot be attached now")
        }
        let others = disk.attachments.filter { $0.instanceId != instanceId && $0.state != .lost }
        if !disk.multiAttach, let other = others.first {
            throw CloudError(.inUse, "disk \(id) is attached to instance \(other.instanceId); detach it there first, or create the disk with multiAttach")
        }
        let operation = newOperation(.diskAttach, target: id, instance: instanceId)
        try database.transaction {
            let attached = try database.attachments(instanceId: instanceId).filter { $0.diskId != id }
            guard attached.count < instance.attachLimit else {
                throw CloudError(.attachLimitExceeded, "instance \(instanceId) already has \(attached.count) of \(instance.attachLimit) disks attached; detach one first")
            }
            try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .attaching, devicePath: nil, readOnly: readOnly))
            try database.refreshDiskState(id)
            try database.insert(operation)
        }
        launch(operation, delay: configuration.latency[.attach])
        return operation
    }

    public func detachDisk(id: String, instanceId: String, force: Bool) async throws -> CloudOperation {
        try injectFault(.detach)
        try CloudValidation.checkID(instanceId, .instance, parameter: "instanceId")
        _ = try disk(id, parameter: "id")
        return try await startDetach(diskId: id, instanceId: instanceId, force: force)
    }

    func startDetach(diskId id: String, instanceId: String, force: Bool) async throws -> CloudOperation {
        let disk = try disk(id, parameter: "id")
        guard let existing = disk.attachments.first(where: { $0.instanceId == instanceId }) else {
            return try finishedOperation(.diskDetach, target: id, instance: instanceId)
        }
        switch existing.state {
        case .detaching:
            if let running = try database.runningOperation(targetId: id, instanceId: instanceId) { return running }
        case .attaching:
            guard force else {
                throw CloudError(.incorrectState, "disk \(id) is still attaching to \(instanceId); wait for that, then detach")
            }
            // The detach is queued behind the attach and undoes it.
        case .attached, .lost, .detached:
            break
        }
        if !force, let path = existing.devicePath, let reason = await devices.settledBusyReason(devicePath: path) {
            throw CloudError(.inUse, "disk \(id) is in use on \(path) (\(reason)): unmount it first, or detach with force")
        }
        let operation = newOperation(.diskDetach, target: id, instance: instanceId)
        try database.transaction {
            try database.upsert(Attachment(diskId: id, instanceId: instanceId, state: .detaching, devicePath: existing.devicePath,
                                           readOnly: existing.readOnly))
            try database.insert(operation, argument: force ? 1 : 0)
        }
        launch(operation, delay: configuration.latency[.detach])
        return operation
    }
}
