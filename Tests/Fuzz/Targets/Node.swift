// Fuzz targets of the cloud and the CSI driver: the cloud's JSON request bodies (decoding and
// the validation that runs before anything is read or changed), CSI requests (protobuf decoding
// and the driver's checks, without side effects), and what the node reads from the kernel and
// its tools: /proc/self/mountinfo, `blkid -p -o export`, `dumpe2fs -h`.
@testable import CloudProvider
@testable import CSIDriver
import Foundation
import HostSystem
import SwiftProtobuf

extension FuzzTargets {
    static let node: [FuzzTarget] = [
        FuzzTarget("cloud-json", maxLength: 8192, run: cloudJSON),
        FuzzTarget("csi-request", maxLength: 8192, run: csiRequest),
        FuzzTarget("mountinfo", maxLength: 16384, run: mountinfo),
        FuzzTarget("blkid-export", maxLength: 4096, run: blkidExport),
        FuzzTarget("dumpe2fs", maxLength: 4096, run: dumpe2fs),
    ]

    static let fuzzZones = ["ballast-1a", "ballast-1b"]

    /// First byte: which body; the rest: its JSON. Decoding fails with a DecodingError (which
    /// the service turns into a sentence), or validation answers a CloudError, or the request
    /// is valid and its size is a whole MiB within the limit.
    @Sendable static func cloudJSON(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let body = Data(input.dropFirst())
        let decoder = CloudJSON.decoder()
        do {
            switch selector % 7 {
            case 0:
                try decoder.decode(RegisterInstanceRequest.self, from: body).validate(zones: fuzzZones, region: "ballast-1")
            case 1:
                let request = try decoder.decode(CreateDiskRequest.self, from: body)
                let (size, _) = try request.validate(zones: fuzzZones, region: "ballast-1", maxDiskBytes: 1 << 40)
                fuzzCheck(size > 0 && size % CloudValidation.mebibyte == 0 && size <= 1 << 40 && size >= request.sizeBytes,
                          "size \(size) for \(request.sizeBytes)")
            case 2:
                try decoder.decode(CreateSnapshotRequest.self, from: body).validate()
            case 3:
                let resize = try decoder.decode(ResizeRequest.self, from: body)
                _ = try CloudValidation.checkSize(resize.sizeBytes, maximum: .max)
            case 4:
                let attach = try decoder.decode(AttachRequest.self, from: body)
                try CloudValidation.checkID(attach.instanceId, .instance, parameter: "instanceId")
            case 5:
                let filter = try decoder.decode(DiskFilter.self, from: body)
                try filter.validate(zones: fuzzZones, region: "ballast-1")
            default:
                _ = try decoder.decode(CloudErrorEnvelope.self, from: body)
            }
        } catch let error as DecodingError {
            fuzzCheck(!CloudHTTPService.describe(error).isEmpty, "a decoding error without a message")
        } catch let error as CloudError {
            fuzzCheck(error.code == .invalidParameter && error.body.parameter != nil, "validation answered \(error)")
        } catch {
            fuzzCheck(false, "unexpected error \(error)")
        }
    }

    /// First byte: which request; the rest: its protobuf encoding. The driver's checks either
    /// answer a CSIError (INVALID_ARGUMENT, OUT_OF_RANGE, NOT_FOUND) or accept the request.
    @Sendable static func csiRequest(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let bytes = Array(input.dropFirst())
        do {
            switch selector % 6 {
            case 0:
                let request = try Csi_V1_CreateVolumeRequest(serializedBytes: bytes)
                let parameters = try VolumeParameters(request.parameters)
                _ = try Capability.all(request.volumeCapabilities, field: "volume_capabilities", defaultFileSystem: parameters.fsType)
                try checkSize(request.hasCapacityRange ? request.capacityRange : nil)
            case 1:
                let request = try Csi_V1_ControllerExpandVolumeRequest(serializedBytes: bytes)
                try checkSize(request.capacityRange)
            case 2:
                let request = try Csi_V1_NodeStageVolumeRequest(serializedBytes: bytes)
                _ = try Capability(request.volumeCapability, field: "volume_capability")
                _ = VolumeID.isValid(request.volumeID)
                checkPath(request.stagingTargetPath)
            case 3:
                let request = try Csi_V1_NodePublishVolumeRequest(serializedBytes: bytes)
                _ = try Capability(request.volumeCapability, field: "volume_capability")
                checkPath(request.targetPath)
                checkPath(request.stagingTargetPath)
            case 4:
                let request = try Csi_V1_NodeGetVolumeStatsRequest(serializedBytes: bytes)
                checkPath(request.volumePath)
                _ = LoopDeviceBackend.diskID(backingFile: request.volumePath)
            default:
                let request = try Csi_V1_ValidateVolumeCapabilitiesRequest(serializedBytes: bytes)
                _ = try Capability.all(request.volumeCapabilities, field: "volume_capabilities")
                _ = try VolumeParameters(request.parameters)
            }
        } catch is SwiftProtobuf.BinaryDecodingError {
        } catch let error as CSIError {
            fuzzCheck([.invalidArgument, .outOfRange, .notFound].contains(error.code) && !error.message.isEmpty, "checks answered \(error)")
        } catch {
            fuzzCheck(false, "unexpected error \(error)")
        }
    }

    /// RequestedSize: a whole MiB, at least what was required, within the limit.
    static func checkSize(_ range: Csi_V1_CapacityRange?) throws {
        let size = try RequestedSize(range, defaultBytes: 1 << 30, field: "capacity_range")
        fuzzCheck(size.bytes > 0 && size.bytes % CloudValidation.mebibyte == 0 && size.bytes >= size.required
                  && (size.limit == 0 || size.bytes <= size.limit), "size \(size)")
    }

    /// Confinement under a root that does not exist: refused, or resolved strictly under it.
    static func checkPath(_ path: String) {
        let root = "/nonexistent-ballast-fuzz/kubelet"
        guard let resolved = try? PathConfinement.resolve(path, under: root) else { return }
        fuzzCheck(resolved.hasPrefix(root + "/") && !resolved.split(separator: "/").contains(".."), "\(path) resolved to \(resolved)")
    }

    /// Any text: the lines that parse have their fields, and mount points survive escaping.
    @Sendable static func mountinfo(_ input: [UInt8]) {
        for mount in Mounts.parse(table: String(decoding: input, as: UTF8.self)) {
            fuzzCheck(Mounts.unescape(Substring(Mounts.escape(mount.mountPoint))) == mount.mountPoint, "escape round trip of \(mount.mountPoint)")
            _ = mount.isReadOnly
            _ = mount.showsDeviceNode("loop0")
        }
    }

    /// blkid's export format: blank exactly when nothing was found.
    @Sendable static func blkidExport(_ input: [UInt8]) {
        let text = String(decoding: input.dropFirst(), as: UTF8.self)
        let signature = DeviceSignature.parse(blkidExport: text, ambivalent: input.first.map { $0 & 1 == 1 } ?? false)
        fuzzCheck(signature.isBlank == (signature.type == nil && signature.partitionTable == nil && !signature.ambivalent), "isBlank")
        fuzzCheck(signature.type?.isEmpty != true && signature.partitionTable?.isEmpty != true, "empty values are no signature")
        fuzzCheck(!signature.summary.isEmpty, "summary")
    }

    /// dumpe2fs's header: sizes are non-negative, and their product is checked.
    @Sendable static func dumpe2fs(_ input: [UInt8]) {
        guard let geometry = Ext4Geometry.parse(dumpe2fs: String(decoding: input, as: UTF8.self)) else { return }
        fuzzCheck(geometry.blockCount >= 0 && geometry.blockSize > 0, "\(geometry)")
        if let bytes = geometry.bytes { fuzzCheck(bytes >= geometry.blockCount, "\(bytes) for \(geometry)") }
    }
}
