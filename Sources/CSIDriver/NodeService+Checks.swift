// What the node service checks before it touches anything: that a path resolves under the
// kubelet root, that a device is the volume it is asked about, and that a mount shows that
// volume before it is unmounted. A volume's identity comes from the kernel (the loop device's
// backing file) read through the cloud's own naming (`LoopDeviceBackend.diskID(backingFile:)`),
// never from what a request says.
import CloudProvider
import Foundation
import HostSystem

extension NodeService {
    /// `path` resolved under the kubelet root (`PathConfinement`): INVALID_ARGUMENT naming
    /// `field` when it is relative, holds "." or "..", lies outside, or leads out through a
    /// symlink.
    func confine(_ path: String, field: String) throws -> String {
        guard !path.isEmpty else { throw CSIError.required(field) }
        do {
            return try PathConfinement.resolve(path, under: configuration.kubeletRoot)
        } catch {
            throw CSIError.invalid(field, "\(error.message); the driver only touches paths under --kubelet-root")
        }
    }

    /// The volume `device` holds, from its backing file; nil for anything else.
    func volumeID(of device: BlockDevice) -> String? {
        device.backingFile.flatMap(LoopDeviceBackend.diskID(backingFile:))
    }

    /// A device is this volume when it is a loop device whose backing file is the volume's,
    /// and the serial, if given, is the volume id. Anything else is refused before it is touched.
    func verify(device: String, isVolume volumeID: String, serial: String?) throws -> BlockDevice {
        guard LoopDevices.loopName(device) != nil else {
            throw CSIError.invalid("publish_context.\(PublishContext.devicePath)", "\"\(device)\" is not a loop device")
        }
        if let serial, serial != volumeID {
            throw CSIError(.failedPrecondition, "publish_context.serial \(serial) is not volume \(volumeID); refusing to touch \(device)")
        }
        guard let found = mounter.blockDevice(device), let backing = found.backingFile else {
            throw CSIError(.notFound, "device \(device) of volume \(volumeID) is not attached to this node; publish the volume again")
        }
        guard self.volumeID(of: found) == volumeID else {
            throw CSIError(.failedPrecondition, "device \(device) is \(backing), not volume \(volumeID); refusing to touch it — publish the volume again")
        }
        return found
    }

    /// Unmounts what is mounted at `path` (stacked mounts too), after checking that each
    /// mount shows `volumeID`'s device: a mount of anything else is FAILED_PRECONDITION and
    /// stays. Nothing mounted: nothing to do.
    func unmountVolume(_ volumeID: String, at path: String, field: String) async throws {
        for _ in 0..<8 {
            guard let mounted = mounter.mount(at: path) else { return }
            let device = mounter.device(of: mounted)
            guard let device, self.volumeID(of: device) == volumeID else {
                let what = device.map { "device \($0.path)" + ($0.backingFile.map { " (\($0))" } ?? "") } ?? "\(mounted.source) (\(mounted.fsType))"
                throw CSIError(.failedPrecondition, "\(field) \(path) holds \(what), not volume \(volumeID); refusing to unmount it — unmount it by hand if it is stale")
            }
            try await mounter.unmount(path)
        }
        if mounter.mount(at: path) != nil { throw CSIError(.internalError, "\(path) is still mounted after 8 unmounts") }
    }

    /// Grows a mounted file system, saying what to do when ext4 cannot grow online.
    func growFileSystem(device: String, mountPath: String, fsType: String) async throws {
        do {
            try await mounter.growFileSystem(device: device, mountPath: mountPath, fsType: fsType)
        } catch let error as HostSystemError where error.code == .permissionDenied {
            throw CSIError(.failedPrecondition, "\(error.message); it grows when the volume is next staged (restart the pod)")
        }
    }
}
