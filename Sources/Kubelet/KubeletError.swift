// The kubelet's one error type: a code (what kind of failure, which Kubernetes reason it maps
// to), a message that names the object, the field and the fix, and the cause when there is one.

/// A failure in the kubelet: images, runtime, volumes, the node's API calls.
public struct KubeletError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; a struct over a private enum so that codes can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case imageNotPresent, invalidImage, runtime, containerCreate, volume, attach, invalidSpec, notFound
            case api, configuration, timeout, network
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The image is not in the node's store (waiting reason `ErrImageNeverPull`).
        public static let imageNotPresent = Code(.imageNotPresent)
        /// The image reference cannot be parsed (waiting reason `InvalidImageName`).
        public static let invalidImage = Code(.invalidImage)
        /// The OCI runtime failed (runc or crun, the shim).
        public static let runtime = Code(.runtime)
        /// A container could not be created (waiting reason `CreateContainerError` /
        /// `CreateContainerConfigError`).
        public static let containerCreate = Code(.containerCreate)
        /// A volume could not be set up or torn down (event `FailedMount`).
        public static let volume = Code(.volume)
        /// A volume is not attached (event `FailedAttachVolume`).
        public static let attach = Code(.attach)
        /// The pod asks for something the kubelet cannot do.
        public static let invalidSpec = Code(.invalidSpec)
        /// Something named does not exist.
        public static let notFound = Code(.notFound)
        /// An API server call failed.
        public static let api = Code(.api)
        /// The kubelet's own configuration is wrong.
        public static let configuration = Code(.configuration)
        /// Something did not happen in time.
        public static let timeout = Code(.timeout)
        /// The pod's network could not be set up or torn down (event `FailedCreatePodSandBox`,
        /// `FailedKillPod`): a CNI plugin failed, or the node has no pod range.
        public static let network = Code(.network)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    /// What failed underneath, for logs.
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause.map { "\($0)" }
    }

    public var description: String { message }
}
