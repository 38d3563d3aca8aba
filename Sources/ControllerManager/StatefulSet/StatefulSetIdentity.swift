// What a StatefulSet's replica is made of (kube-controller-manager's stateful_set_utils.go):
// its name `<set>-<ordinal>`, its identity labels, hostname and subdomain, its claims
// `<template>-<set>-<ordinal>`, and the ControllerRevisions that record each template. Pure
// functions: the controller decides, these build.
import APIClient
import ClusterAPI
import Foundation

enum StatefulSetLabel {
    /// The pod's own name, so that a Service can select one replica.
    static let podName = "statefulset.kubernetes.io/pod-name"
    /// The replica's ordinal.
    static let podIndex = "apps.kubernetes.io/pod-index"
    /// The ControllerRevision a pod was made from (shared with DaemonSets upstream).
    static let revisionHash = "controller-revision-hash"
}

extension StatefulSet {
    var name: String { metadata.name ?? "" }
    var namespace: String { metadata.namespace ?? "" }
    var replicaCount: Int { Int(spec.replicas ?? 1) }
    var isParallel: Bool { spec.podManagementPolicy == "Parallel" }
    var isOnDelete: Bool { spec.updateStrategy?.type == "OnDelete" }
    var partition: Int { Int(spec.updateStrategy?.rollingUpdate?.partition ?? 0) }
    var ordinals: Range<Int> { firstOrdinal..<(firstOrdinal + replicaCount) }

    /// The pod name of an ordinal.
    func podName(_ ordinal: Int) -> String { "\(name)-\(ordinal)" }

    /// The claim of `template` for an ordinal.
    func claimName(_ template: PersistentVolumeClaim, _ ordinal: Int) -> String {
        "\(template.metadata.name ?? "")-\(name)-\(ordinal)"
    }

    /// The owner reference the replicas carry.
    var controllerReference: OwnerReference {
        OwnerReference(apiVersion: Self.defaultAPIVersion, kind: Self.defaultKind, name: name, uid: metadata.uid ?? "",
                       controller: true, blockOwnerDeletion: true)
    }

    /// The ordinal of `pod` when it is one of this set's (its name is `<set>-<n>`), else nil
    /// (`getParentNameAndOrdinal`).
    func ordinal(of pod: Pod) -> Int? {
        let podName = pod.metadata.name ?? ""
        guard let dash = podName.lastIndex(of: "-"), podName[..<dash] == name else { return nil }
        let digits = podName[podName.index(after: dash)...]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), let n = Int(digits),
              String(n) == digits else { return nil }
        return n
    }

    /// The pod of an ordinal, made from `template` (the template of the revision it belongs
    /// to): `newStatefulSetPod` plus `updateIdentity` and `updateStorage`.
    func newPod(ordinal: Int, template: PodTemplateSpec, revision: String) -> Pod {
        var pod = Pod()
        pod.metadata.name = podName(ordinal)
        pod.metadata.namespace = namespace
        var labels = template.metadata.labels ?? [:]
        labels[StatefulSetLabel.podName] = podName(ordinal)
        labels[StatefulSetLabel.podIndex] = String(ordinal)
        labels[StatefulSetLabel.revisionHash] = revision
        pod.metadata.labels = labels
        pod.metadata.annotations = template.metadata.annotations
        pod.metadata.finalizers = template.metadata.finalizers
        pod.metadata.ownerReferences = [controllerReference]
        pod.spec = template.spec
        pod.spec.hostname = podName(ordinal)
        if let service = spec.serviceName, !service.isEmpty { pod.spec.subdomain = service }
        var volumes = (pod.spec.volumes ?? []).filter { volume in
            !(spec.volumeClaimTemplates ?? []).contains { $0.metadata.name == volume.name }
        }
        for claim in spec.volumeClaimTemplates ?? [] {
            var volume = Volume(name: claim.metadata.name ?? "")
            volume.persistentVolumeClaim = PersistentVolumeClaimVolumeSource(claimName: claimName(claim, ordinal))
            volumes.append(volume)
        }
        if !volumes.isEmpty { pod.spec.volumes = volumes }
        return pod
    }

    /// Whether `pod` carries the identity of its ordinal (`identityMatches`).
    func identityMatches(_ pod: Pod, ordinal: Int) -> Bool {
        let labels = pod.metadata.labels ?? [:]
        return pod.metadata.name == podName(ordinal) && pod.metadata.namespace == namespace
            && labels[StatefulSetLabel.podName] == podName(ordinal) && labels[StatefulSetLabel.podIndex] == String(ordinal)
    }

    /// The claims the replica of `ordinal` needs (`getPersistentVolumeClaims`): the
    /// template's spec, labels, annotations, plus the set's `matchLabels`.
    func claims(ordinal: Int) -> [PersistentVolumeClaim] {
        (spec.volumeClaimTemplates ?? []).map { template in
            var claim = PersistentVolumeClaim()
            claim.metadata.name = claimName(template, ordinal)
            claim.metadata.namespace = namespace
            var labels = template.metadata.labels ?? [:]
            for (key, value) in spec.selector?.matchLabels ?? [:] { labels[key] = value }
            claim.metadata.labels = labels.isEmpty ? nil : labels
            claim.metadata.annotations = template.metadata.annotations
            claim.spec = template.spec
            return claim
        }
    }

    /// The owner references a claim of `ordinal` should carry under the retention policy
    /// (`updateClaimOwnerRefForSetAndPod`): the pod alone when `whenScaled: Delete` and the
    /// ordinal is scaled away, else the set when `whenDeleted: Delete`; none of either
    /// otherwise. Other owners are kept.
    func claimOwners(current: [OwnerReference]?, ordinal: Int, pod: Pod?) -> [OwnerReference] {
        let policy = spec.persistentVolumeClaimRetentionPolicy
        var owners = (current ?? []).filter { $0.uid != metadata.uid && !($0.kind == "Pod" && $0.name == podName(ordinal)) }
        // A scaled-away replica's claim has its pod as its only owner here: with the set as a
        // second owner, the garbage collector would keep it when the pod goes.
        if policy?.whenScaled == "Delete", !ordinals.contains(ordinal), let pod, let uid = pod.metadata.uid {
            owners.append(OwnerReference(apiVersion: "v1", kind: "Pod", name: pod.metadata.name ?? "", uid: uid))
        } else if policy?.whenDeleted == "Delete" {
            owners.append(OwnerReference(apiVersion: Self.defaultAPIVersion, kind: Self.defaultKind, name: name,
                                         uid: metadata.uid ?? ""))
        }
        return owners
    }
}

// MARK: Revisions

enum StatefulSetRevisions {
    /// The data a revision records: the template as a patch that replaces it
    /// (`getPatch`: `{"spec":{"template":{…,"$patch":"replace"}}}`).
    static func data(of set: StatefulSet) throws -> JSONValue {
        var template = try JSONValue(encoding: set.spec.template)
        template["$patch"] = "replace"
        return ["spec": ["template": template]]
    }

    /// The template a revision recorded.
    static func template(of revision: ControllerRevision) throws -> PodTemplateSpec {
        guard var template = revision.data?["spec"]?["template"] else {
            throw StatefulSetError("ControllerRevision \(revision.metadata.name ?? "") has no spec.template in its data")
        }
        template["$patch"] = nil
        return try template.decode(as: PodTemplateSpec.self)
    }

    /// The revision's name suffix: FNV-1a (32 bits) of the data and the collision count,
    /// written in Kubernetes' safe alphabet (`controller.ComputeHash` + `rand.SafeEncodeString`).
    static func hash(_ data: JSONValue, collisionCount: Int32) -> String {
        var h: UInt32 = 0x811c_9dc5
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { h = (h ^ UInt32(b)) &* 0x0100_0193 } }
        mix(data.jsonBytes)
        if collisionCount != 0 { mix(withUnsafeBytes(of: collisionCount.littleEndian) { Array($0) }) }
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789".utf8)
        return String(decoding: String(h).utf8.map { alphabet[Int($0) % alphabet.count] }, as: UTF8.self)
    }

    /// A new revision of `set` numbered `number` (`newRevision`).
    static func make(_ set: StatefulSet, number: Int64, collisionCount: Int32) throws -> ControllerRevision {
        let data = try data(of: set)
        let hash = hash(data, collisionCount: collisionCount)
        var revision = ControllerRevision()
        revision.metadata.name = "\(set.name)-\(hash)"
        revision.metadata.namespace = set.namespace
        var labels = set.spec.template.metadata.labels ?? [:]
        labels[StatefulSetLabel.revisionHash] = hash
        revision.metadata.labels = labels
        revision.metadata.ownerReferences = [set.controllerReference]
        revision.data = data
        revision.revision = number
        return revision
    }
}

struct StatefulSetError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Pod health

extension Pod {
    var isCreated: Bool { !(status.phase ?? "").isEmpty }
    var isTerminating: Bool { metadata.deletionTimestamp != nil }
    var hasFinished: Bool { status.phase == "Failed" || status.phase == "Succeeded" }

    /// Running with its Ready condition true (`isRunningAndReady`; readiness and availability
    /// are the workloads' shared `isReady`/`isAvailable`).
    var isRunningAndReady: Bool { status.phase == "Running" && isReady }

    var revisionHash: String { metadata.labels?[StatefulSetLabel.revisionHash] ?? "" }

    var controllerUID: String? { metadata.ownerReferences?.first { $0.controller == true }?.uid }
}
