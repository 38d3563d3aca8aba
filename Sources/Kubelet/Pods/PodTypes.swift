// Typed views of the parts of core/v1 that ClusterAPI keeps as raw JSON and the kubelet reads
// or writes: probes, container statuses and states, configMap and secret volume sources,
// env `valueFrom`. Decoded from (and encoded to) `JSONValue` at the edge.
import ClusterAPI
import Foundation

/// core/v1 `Probe`.
public struct Probe: Codable, Sendable, Equatable {
    public var exec: ExecAction?
    public var httpGet: HTTPGetAction?
    public var tcpSocket: TCPSocketAction?
    public var initialDelaySeconds: Int32?
    public var timeoutSeconds: Int32?
    public var periodSeconds: Int32?
    public var successThreshold: Int32?
    public var failureThreshold: Int32?

    public struct ExecAction: Codable, Sendable, Equatable {
        public var command: [String]?
    }

    public struct HTTPGetAction: Codable, Sendable, Equatable {
        public var path: String?
        /// A number or a named container port.
        public var port: JSONValue
        public var host: String?
        public var scheme: String?
        public var httpHeaders: [Header]?
        public struct Header: Codable, Sendable, Equatable {
            public var name: String
            public var value: String
        }
    }

    public struct TCPSocketAction: Codable, Sendable, Equatable {
        public var port: JSONValue
        public var host: String?
    }

    /// The probe in `json`, or nil when absent or not a probe.
    public static func from(_ json: JSONValue?) -> Probe? {
        guard let json, case .object = json else { return nil }
        return try? json.decode(as: Probe.self)
    }
}

/// core/v1 `ContainerStatus`.
public struct ContainerStatusView: Codable, Sendable, Equatable {
    public var name: String
    public var state: State
    public var lastState: State
    public var ready: Bool
    public var restartCount: Int32
    public var image: String
    public var imageID: String
    public var containerID: String?
    public var started: Bool?

    public struct State: Codable, Sendable, Equatable {
        public var waiting: Waiting?
        public var running: Running?
        public var terminated: Terminated?

        public init(waiting: Waiting? = nil, running: Running? = nil, terminated: Terminated? = nil) {
            self.waiting = waiting
            self.running = running
            self.terminated = terminated
        }
    }

    public struct Waiting: Codable, Sendable, Equatable {
        public var reason: String?
        public var message: String?
    }

    public struct Running: Codable, Sendable, Equatable {
        public var startedAt: Time?
    }

    public struct Terminated: Codable, Sendable, Equatable {
        public var exitCode: Int32
        public var signal: Int32?
        public var reason: String?
        public var message: String?
        public var startedAt: Time?
        public var finishedAt: Time?
        public var containerID: String?
    }
}

/// The key-to-path items of configMap, secret and projected sources.
public struct KeyToPath: Codable, Sendable, Equatable {
    public var key: String
    public var path: String
    public var mode: Int32?
}

/// core/v1 `ConfigMapVolumeSource` and `SecretVolumeSource` (their common part).
public struct KeyedVolumeSource: Codable, Sendable, Equatable {
    /// configMap: `name`.
    public var name: String?
    /// secret: `secretName`.
    public var secretName: String?
    public var items: [KeyToPath]?
    public var defaultMode: Int32?
    public var optional: Bool?
}

/// An env var's `valueFrom`.
public struct EnvVarSource: Codable, Sendable, Equatable {
    public var fieldRef: FieldRef?
    public var resourceFieldRef: ResourceFieldRef?
    public var configMapKeyRef: KeyRef?
    public var secretKeyRef: KeyRef?

    public struct FieldRef: Codable, Sendable, Equatable {
        public var fieldPath: String
    }

    public struct ResourceFieldRef: Codable, Sendable, Equatable {
        public var containerName: String?
        public var resource: String
        public var divisor: Quantity?
    }

    public struct KeyRef: Codable, Sendable, Equatable {
        public var name: String?
        public var key: String
        public var optional: Bool?
    }
}

/// An `envFrom` entry: every key of a ConfigMap or a Secret, with `prefix`.
public struct EnvFromSource: Codable, Sendable, Equatable {
    public var prefix: String?
    public var configMapRef: Ref?
    public var secretRef: Ref?

    public struct Ref: Codable, Sendable, Equatable {
        public var name: String?
        public var optional: Bool?
    }

    /// The ConfigMap or Secret this entry names, and whether it is a Secret; nil when it names
    /// neither.
    var source: (ref: Ref, secret: Bool)? {
        configMapRef.map { ($0, false) } ?? secretRef.map { ($0, true) }
    }
}

extension Pod {
    /// "namespace/name".
    var key: String { (metadata.namespace ?? "default") + "/" + (metadata.name ?? "") }
    /// What Kubernetes prints in kubelet messages: `name_namespace(uid)`.
    var logName: String { "\(metadata.name ?? "")_\(metadata.namespace ?? "default")(\(metadata.uid ?? ""))" }
    var uid: String { metadata.uid ?? "" }
    /// `spec.shareProcessNamespace`: the pod's containers share one PID namespace, whose PID 1
    /// is the pod's pause process.
    var sharesProcessNamespace: Bool { spec.shareProcessNamespace == true }
}
