/// The one error type of the engine: a code callers can switch on, a message
/// that names the file, offset or option involved and says what to do, and
/// the underlying cause when there is one.
public struct LSMError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as a stable kind. A struct over a private enum, so that
    /// codes can be added without breaking exhaustive switches in callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Kind: String, Sendable {
            case corruption, io, notAStore, newerFormat, locked, invalidArgument, closed, readOnly
        }
        let kind: Kind
        /// Stored bytes fail their checksum or do not parse: never returned as data.
        public static let corruption = Code(kind: .corruption)
        /// A system call failed (disk full, permission, ...).
        public static let io = Code(kind: .io)
        /// The directory holds files but is not a Ballast store.
        public static let notAStore = Code(kind: .notAStore)
        /// The store was written by a newer Ballast with a format this build cannot read.
        public static let newerFormat = Code(kind: .newerFormat)
        /// Another process has the store open.
        public static let locked = Code(kind: .locked)
        /// The caller passed something the engine cannot accept.
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// The store was closed.
        public static let closed = Code(kind: .closed)
        /// An earlier background failure made the store read-only until reopened.
        public static let readOnly = Code(kind: .readOnly)
        public var description: String { kind.rawValue }
    }

    public let code: Code
    public let message: String
    public let cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var isCorruption: Bool { code == .corruption }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }

    static func corruption(_ file: String, offset: Int? = nil, _ what: String) -> LSMError {
        let at = offset.map { " at offset \($0)" } ?? ""
        return LSMError(.corruption, "corruption in \(file)\(at): \(what); the store refuses to return damaged data — restore this file from a backup or snapshot")
    }
}
