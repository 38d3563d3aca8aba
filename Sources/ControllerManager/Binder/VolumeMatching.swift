// How the binder picks a volume for a claim (component-helpers' FindMatchingVolume and the
// PV controller's checkVolumeSatisfyClaim).
import ClusterAPI

enum VolumeMatching {
    /// The volume to bind `claim` to, or nil: a volume pre-bound to the claim (big enough) wins;
    /// otherwise the smallest Available volume of the claim's class whose capacity, volume mode,
    /// access modes and labels (the claim's selector) fit. With `delayBinding` (a
    /// WaitForFirstConsumer class) only a pre-bound volume is taken: the scheduler picks the rest.
    static func bestMatch(for claim: PersistentVolumeClaim, in volumes: [PersistentVolume], delayBinding: Bool) -> PersistentVolume? {
        guard let requested = claim.requestedStorage else { return nil }
        let selector = try? claim.spec.selector?.selector()
        if claim.spec.selector != nil && selector == nil { return nil }
        let claimModes = claim.spec.accessModes ?? []
        var smallest: PersistentVolume?
        // Volumes with fewer access modes first, as the binder's index orders them, then by name
        // so that equal candidates are chosen the same way every time.
        let candidates = volumes.filter { AccessModes.satisfied(claim: claimModes, volume: $0.spec.accessModes ?? []) }
            .sorted { ($0.spec.accessModes?.count ?? 0, $0.metadata.name ?? "") < ($1.spec.accessModes?.count ?? 0, $1.metadata.name ?? "") }
        for volume in candidates {
            guard let capacity = volume.capacity else { continue }
            if volume.volumeMode != claim.volumeMode { continue }
            if volume.metadata.deletionTimestamp != nil { continue }
            if volume.isBound(to: claim) {
                if capacity < requested { continue }
                return volume
            }
            if delayBinding { continue }
            if volume.phase != "Available" { continue }
            if volume.spec.claimRef != nil { continue }
            if let selector, !selector.matches(volume.metadata.labels ?? [:]) { continue }
            if volume.className != claim.className { continue }
            if capacity >= requested, smallest.map({ capacity < $0.capacity! }) ?? true {
                smallest = volume
            }
        }
        return smallest
    }

    /// Why `volume` cannot satisfy `claim` (the PV controller's checkVolumeSatisfyClaim), nil when it can.
    static func mismatch(_ volume: PersistentVolume, _ claim: PersistentVolumeClaim) -> String? {
        if volume.metadata.deletionTimestamp != nil { return "the volume is marked for deletion \"\(volume.metadata.name ?? "")\"" }
        if let requested = claim.requestedStorage, (volume.capacity ?? .zero) < requested { return "requested PV is too small" }
        if volume.className != claim.className { return "storageClassName does not match" }
        if volume.volumeMode != claim.volumeMode { return "incompatible volumeMode" }
        if !AccessModes.satisfied(claim: claim.spec.accessModes ?? [], volume: volume.spec.accessModes ?? []) { return "incompatible accessMode" }
        return nil
    }
}
