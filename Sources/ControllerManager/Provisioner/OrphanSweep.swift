// The orphan sweep: the leak external-provisioner still has. If it dies between CreateVolume and
// writing the PV, and the claim is deleted before it comes back, nobody ever deletes the disk.
//
// The provisioner marks a volume once its PV is written (ControllerModifyVolume with the mutable
// parameter `csi.ballast.dev/pv`, which the Ballast driver keeps as a tag on the disk and lists
// back in ListVolumes' volume_context). Every sweep period, a volume
//   - named `pvc-<uid>` (volume_context `csi.ballast.dev/name`),
//   - never marked,
//   - with no PV naming it (by name or volume handle, asked of the API server, not only the cache),
//   - whose claim (that uid) is gone,
//   - created longer ago than the grace period,
// is deleted. A volume that ever had a PV is never swept: a Retain volume's disk outlives its PV.
// A plugin that does not implement ControllerModifyVolume, or does not list names, is not swept.
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import Logging

actor OrphanSweep {
    static let nameKey = "csi.ballast.dev/name"
    static let markKey = "csi.ballast.dev/pv"
    static let createdKey = "csi.ballast.dev/created-at"

    let driver: String
    let client: KubeClient
    let csi: any CSIPlugin
    let claims: Informer<PersistentVolumeClaim>
    let volumes: Informer<PersistentVolume>
    let gracePeriod: Duration
    let logger: Logger
    private var marked: Set<String> = []
    private var unsupported = false
    private(set) var swept: [String] = []

    init(driver: String, client: KubeClient, csi: any CSIPlugin, claims: Informer<PersistentVolumeClaim>, volumes: Informer<PersistentVolume>,
         gracePeriod: Duration, logger: Logger) {
        self.driver = driver
        self.client = client
        self.csi = csi
        self.claims = claims
        self.volumes = volumes
        self.gracePeriod = gracePeriod
        self.logger = logger
    }

    /// Marks the disk behind `volume` as having had a PV (once per process).
    func markHasVolume(_ volume: PersistentVolume) async {
        guard !unsupported, let handle = volume.spec.csi?.volumeHandle, volume.spec.csi?.driver == driver,
              !marked.contains(handle) else { return }
        do {
            _ = try await csi.controllerModifyVolume(.with {
                $0.volumeID = handle
                $0.mutableParameters = [Self.markKey: volume.metadata.name ?? ""]
            })
            marked.insert(handle)
        } catch {
            let failure = CSIError(error)
            if failure.code == .unimplemented || failure.code == .invalidArgument {
                unsupported = true
                logger.warning("the CSI plugin cannot mark volumes (ControllerModifyVolume); the orphan sweep is off",
                               metadata: ["error": "\(failure)"])
            } else {
                logger.info("cannot mark a volume yet; the next sweep retries", metadata: ["volume": "\(handle)", "error": "\(failure)"])
            }
        }
    }

    func run(every period: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            if Task.isCancelled { return }
            await sweep()
        }
    }

    /// One pass; returns the volume ids deleted.
    @discardableResult
    func sweep() async -> [String] {
        guard !unsupported else { return [] }
        var deleted: [String] = []
        var live: LiveState?
        var token = ""
        repeat {
            let page: Csi_V1_ListVolumesResponse
            do {
                page = try await csi.listVolumes(.with {
                    $0.maxEntries = 500
                    $0.startingToken = token
                })
            } catch {
                logger.info("orphan sweep: cannot list volumes", metadata: ["error": "\(CSIError(error))"])
                return deleted
            }
            for entry in page.entries {
                if let id = await consider(entry.volume, live: &live) { deleted.append(id) }
            }
            token = page.nextToken
        } while !token.isEmpty
        swept += deleted
        return deleted
    }

    /// What the API server holds, read once per sweep when a candidate turns up.
    struct LiveState {
        var volumeNames: Set<String>
        var volumeHandles: Set<String>
        var claimUIDs: Set<String>
    }

    private func consider(_ volume: Csi_V1_Volume, live: inout LiveState?) async -> String? {
        let context = volume.volumeContext
        guard let name = context[Self.nameKey], name.hasPrefix("pvc-") else { return nil }
        let id = volume.volumeID
        let knownVolume = await volumes.list().first { $0.spec.csi?.volumeHandle == id || $0.metadata.name == name }
        if let knownVolume {
            if context[Self.markKey] == nil { await markHasVolume(knownVolume) }
            return nil
        }
        if context[Self.markKey] != nil { return nil }
        let uid = String(name.dropFirst(4))
        if await claims.list().contains(where: { $0.metadata.uid == uid }) { return nil }
        guard let created = Self.parseTime(context[Self.createdKey] ?? ""),
              Date().timeIntervalSince(created) > Double(gracePeriod.components.seconds) else { return nil }
        // Ask the API server itself before deleting anything: the caches may lag.
        if live == nil {
            guard let pvs = try? await client.list(PersistentVolume.self), let pvcs = try? await client.list(PersistentVolumeClaim.self) else {
                return nil
            }
            live = LiveState(volumeNames: Set(pvs.items.compactMap(\.metadata.name)),
                             volumeHandles: Set(pvs.items.compactMap(\.spec.csi?.volumeHandle)),
                             claimUIDs: Set(pvcs.items.compactMap(\.metadata.uid)))
        }
        guard let live, !live.volumeNames.contains(name), !live.volumeHandles.contains(id), !live.claimUIDs.contains(uid) else { return nil }
        do {
            _ = try await csi.deleteVolume(.with { $0.volumeID = id })
            logger.warning("deleted an orphaned volume (its claim is gone and it never got a PV)",
                           metadata: ["volume": "\(id)", "name": "\(name)"])
            return id
        } catch {
            logger.info("orphan sweep: cannot delete", metadata: ["volume": "\(id)", "error": "\(CSIError(error))"])
            return nil
        }
    }

    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
