// The snapshot controller: external-snapshotter's common controller (snapshot-controller) and its
// CSI sidecar (csi-snapshotter) in one, for the driver the controller manager talks to.
//
//   VolumeSnapshot ──(common)──> VolumeSnapshotContent ──(sidecar)──> CreateSnapshot / DeleteSnapshot
//          ^   status: bound name, readyToUse,        │   status: snapshotHandle, readyToUse,
//          └────────── restoreSize, creationTime <─────┘           restoreSize, creationTime, error
//
// The snapshot.storage.k8s.io resources are CustomResourceDefinitions: the controller waits
// until the API serves them, then follows VolumeSnapshots, VolumeSnapshotContents and
// VolumeSnapshotClasses on informers of its own (the shared ones must not wait for a resource
// that may never be installed), and claims on the shared informer (a claim restoring from a
// snapshot protects it). Two queues: `snapshot-controller` (VolumeSnapshot keys) and
// `csi-snapshotter` (content names); each side enqueues the other's key when it changes.
import APIClient
import ClusterAPI
import CSIProto
import Foundation
import Logging

final class SnapshotController: Sendable {
    let driver: String
    let client: KubeClient
    let csi: any CSIPlugin
    let claims: Informer<PersistentVolumeClaim>
    let volumes: Informer<PersistentVolume>
    let recorder: EventRecorder
    let workers: Int
    let resync: Duration
    let logger: Logger

    init(driver: String, client: KubeClient, csi: any CSIPlugin, claims: Informer<PersistentVolumeClaim>, volumes: Informer<PersistentVolume>,
         recorder: EventRecorder, workers: Int, resync: Duration, logger: Logger) {
        self.driver = driver
        self.client = client
        self.csi = csi
        self.claims = claims
        self.volumes = volumes
        self.recorder = recorder
        self.workers = workers
        self.resync = resync
        self.logger = logger
    }

    /// Until cancelled: waits for the resources to be served, then runs both queues.
    func run() async {
        guard await waitForResources() else { return }
        let informers = SharedInformers(client: client, resync: resync, logger: logger)
        let syncer = SnapshotSyncer(
            controller: self, snapshots: await informers.informer(VolumeSnapshot.self),
            contents: await informers.informer(VolumeSnapshotContent.self), classes: await informers.informer(VolumeSnapshotClass.self))
        await syncer.subscribe()
        await informers.start()
        await informers.waitForSync()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await syncer.snapshotQueue.run() }
            group.addTask { await syncer.contentQueue.run() }
        }
        await informers.stop()
    }

    /// Polls discovery until `snapshot.storage.k8s.io/v1` lists the three resources; false when cancelled.
    private func waitForResources() async -> Bool {
        var logged = false
        while !Task.isCancelled {
            if let response = try? await client.send(.GET, "/apis/\(SnapshotNames.group)/v1"), response.status.code == 200,
               let document = try? JSONValue(parsing: response.body) {
                let names = Set((document["resources"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue })
                if names.isSuperset(of: ["volumesnapshots", "volumesnapshotcontents", "volumesnapshotclasses"]) { return true }
            }
            if !logged {
                logger.info("waiting for the snapshot.storage.k8s.io/v1 CustomResourceDefinitions (fixtures/crds/; ballast up installs them)")
                logged = true
            }
            try? await Task.sleep(for: .seconds(1))
        }
        return false
    }
}

/// The two queues and their caches, made once the resources are served.
final class SnapshotSyncer: Sendable {
    let controller: SnapshotController
    let snapshots: Informer<VolumeSnapshot>
    let contents: Informer<VolumeSnapshotContent>
    let classes: Informer<VolumeSnapshotClass>
    let snapshotQueue: Controller<String>
    let contentQueue: Controller<String>

    var client: KubeClient { controller.client }
    var csi: any CSIPlugin { controller.csi }
    var recorder: EventRecorder { controller.recorder }
    var logger: Logger { controller.logger }
    var driver: String { controller.driver }

    init(controller: SnapshotController, snapshots: Informer<VolumeSnapshot>, contents: Informer<VolumeSnapshotContent>,
         classes: Informer<VolumeSnapshotClass>) {
        self.controller = controller
        self.snapshots = snapshots
        self.contents = contents
        self.classes = classes
        let box = LateBound<SnapshotSyncer>()
        snapshotQueue = Controller(name: "snapshot-controller", workers: controller.workers,
                                   queue: WorkQueue(baseDelay: .milliseconds(100), maxDelay: .seconds(300)), logger: controller.logger) { key in
            guard let syncer = box.value else { return .done }
            do {
                return try await syncer.syncSnapshot(key)
            } catch let error as APIError where error.isConflict {
                // The cache had not caught up with this controller's own last write: normal,
                // looked at again after the key's back-off without a warning.
                return .retry
            }
        }
        contentQueue = Controller(name: "csi-snapshotter", workers: controller.workers,
                                  queue: WorkQueue(baseDelay: .milliseconds(100), maxDelay: .seconds(300)), logger: controller.logger) { name in
            guard let syncer = box.value else { return .done }
            do {
                return try await syncer.syncContent(name)
            } catch let error as APIError where error.isConflict {
                return .retry
            }
        }
        box.value = self
    }

    /// Subscribes both queues to the informers (before they run, to see the first list).
    func subscribe() async {
        await snapshotQueue.enqueue(from: snapshots) { event in [Informer<VolumeSnapshot>.key(event.object)] }
        // A snapshot gone: its content may have to go too (deletionPolicy Delete).
        await contentQueue.enqueue(from: snapshots) { event in
            guard case .deleted(let snapshot) = event else { return [] }
            return [snapshot.status?.boundVolumeSnapshotContentName ?? SnapshotNames.contentName(snapshotUID: snapshot.metadata.uid ?? "")]
        }
        await contentQueue.enqueue(from: contents) { event in [event.object.metadata.name ?? ""] }
        await snapshotQueue.enqueue(from: contents) { event in
            let ref = event.object.spec.volumeSnapshotRef
            guard let name = ref.name, !name.isEmpty else { return [] }
            return [Informer<VolumeSnapshot>.key(name: name, namespace: ref.namespace)]
        }
        // A claim restoring from a snapshot holds it; when the claim is provisioned or gone,
        // the snapshot may be deleted.
        await snapshotQueue.enqueue(from: controller.claims) { event in
            guard let name = SnapshotSyncer.sourceSnapshot(of: event.object) else { return [] }
            return [Informer<VolumeSnapshot>.key(name: name, namespace: event.object.metadata.namespace)]
        }
        // A class that appears after the snapshots that need it is found at the next resync.
    }

    /// The VolumeSnapshot in the claim's own namespace that `dataSourceRef` (or `dataSource`) names.
    static func sourceSnapshot(of claim: PersistentVolumeClaim) -> String? {
        if let ref = claim.spec.dataSourceRef {
            guard ref.kind == "VolumeSnapshot", ref.apiGroup == SnapshotNames.group,
                  ref.namespace == nil || ref.namespace == claim.metadata.namespace else { return nil }
            return ref.name
        }
        if let source = claim.spec.dataSource, source.kind == "VolumeSnapshot", source.apiGroup == SnapshotNames.group {
            return source.name
        }
        return nil
    }

    // MARK: Reading

    /// The snapshot from the cache, else from the API server (the cache may not show an object
    /// this controller just wrote); nil when it does not exist.
    func snapshot(name: String, namespace: String?) async throws -> VolumeSnapshot? {
        if let cached = await snapshots.get(name: name, namespace: namespace) { return cached }
        do {
            return try await client.get(VolumeSnapshot.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            return nil
        }
    }

    /// The content, from the cache or the API server; nil when it does not exist.
    func content(_ name: String) async throws -> VolumeSnapshotContent? {
        if let cached = await contents.get(name: name) { return cached }
        do {
            return try await client.get(VolumeSnapshotContent.self, name: name)
        } catch let error as APIError where error.isNotFound {
            return nil
        }
    }

    // MARK: Writing

    /// Patches `metadata.annotations[name]` to `value` (nil removes it), with the object's
    /// resourceVersion as precondition.
    func annotate<T: APIObject>(_ object: T, _ name: String, _ value: String?) async throws -> T {
        if object.metadata.annotations?[name] == value { return object }
        var metadata: [String: JSONValue] = ["annotations": .object([name: value.map { .string($0) } ?? .null])]
        if let version = object.metadata.resourceVersion { metadata["resourceVersion"] = .string(version) }
        return try await client.mergePatch(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace,
                                           patch: .object(["metadata": .object(metadata)]))
    }
}
