// The typed error of HostSystem: what failed, on which object, and the system's reason. The
// layers above (the CSI driver, the cloud) map it once, at their edge.
#if canImport(Glibc)
import Glibc
#endif

public struct HostSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure: a struct over a private enum, so kinds can be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case notFound, invalidArgument, spawnFailed, commandFailed, timedOut, busy, permissionDenied, system, closed, cancelled
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A file, device, tool or mount that is not there.
        public static let notFound = Code(.notFound)
        /// An argument HostSystem refuses (a mount option with a comma, an empty argv).
        public static let invalidArgument = Code(.invalidArgument)
        /// The child process could not be started.
        public static let spawnFailed = Code(.spawnFailed)
        /// A tool ran and failed (see `CommandError` for its output).
        public static let commandFailed = Code(.commandFailed)
        /// A tool did not finish in time and was killed.
        public static let timedOut = Code(.timedOut)
        /// A device or mount point is in use.
        public static let busy = Code(.busy)
        /// This process lacks a privilege the work needs (a capability, root).
        public static let permissionDenied = Code(.permissionDenied)
        /// A system call failed; the message names it and the object.
        public static let system = Code(.system)
        /// A descriptor was closed while a task waited for it.
        public static let closed = Code(.closed)
        /// The waiting task was cancelled.
        public static let cancelled = Code(.cancelled)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    /// The errno behind a `.system` error, when there is one.
    public var errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    /// A failed system call: "cannot <action>: <strerror(errno)>", with the current errno.
    static func system(_ action: String, errno number: Int32 = Glibc.errno) -> HostSystemError {
        HostSystemError(number == ENOENT ? .notFound : number == EBUSY ? .busy : number == EPERM || number == EACCES ? .permissionDenied : .system,
                        "cannot \(action): \(String(cString: strerror(number)))", errno: number)
    }

    public var description: String { message }
}
