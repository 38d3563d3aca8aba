// The snapshot.storage.k8s.io/v1 API as a cluster serves it: three CustomResourceDefinitions and
// the default VolumeSnapshotClass (fixtures/crds/, embedded by scripts/embed-snapshot-crds.py).
// `ballast up` installs them with `install`; the snapshot controller waits for them.
import APIClient
import ClusterAPI
import Foundation

public enum SnapshotDefinitions {
    /// The three definitions, decoded.
    public static func definitions() throws -> [CustomResourceDefinition] {
        try manifests.filter { $0.file.hasPrefix(SnapshotNames.group) }.flatMap {
            try YAMLDocuments.decode(CustomResourceDefinition.self, from: $0.yaml)
        }
    }

    /// The default class `ballast up` installs (`ballast-snapshots`).
    public static func defaultClass() throws -> VolumeSnapshotClass {
        guard let manifest = manifests.first(where: { $0.file.hasPrefix("volumesnapshotclass-") }),
              let snapshotClass = try YAMLDocuments.decode(VolumeSnapshotClass.self, from: manifest.yaml).first else {
            throw InstallError(description: "no VolumeSnapshotClass manifest is embedded")
        }
        return snapshotClass
    }

    public struct InstallError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Creates the definitions that are missing (an existing one is left as it is, as
    /// `kubectl create` would), waits until each is Established, then creates the default
    /// class when `withDefaultClass` and no class of that name exists.
    public static func install(_ client: KubeClient, withDefaultClass: Bool = true, timeout: Duration = .seconds(30)) async throws {
        let definitions = try definitions()
        for definition in definitions {
            do {
                _ = try await client.create(definition)
            } catch let error as APIError where error.isAlreadyExists {
            }
        }
        let deadline = ContinuousClock.now + timeout
        for definition in definitions {
            let name = definition.metadata.name ?? ""
            while true {
                let current = try await client.get(CustomResourceDefinition.self, name: name)
                if current.status.conditions?.contains(where: { $0.type == "Established" && $0.status == "True" }) == true { break }
                guard ContinuousClock.now < deadline else {
                    throw InstallError(description: "customresourcedefinition \(name) is not Established after \(timeout): \(current.status.conditions ?? [])")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        guard withDefaultClass else { return }
        let snapshotClass = try defaultClass()
        // The resource is served once Established, by every API server within a moment: a 404
        // right after is retried until the deadline.
        while true {
            do {
                _ = try await client.create(snapshotClass)
                return
            } catch let error as APIError where error.isAlreadyExists {
                return
            } catch let error as APIError where error.isNotFound && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}
