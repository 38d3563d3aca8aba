// What is wrong with a DNS message a client sent: the one error of the wire format. The server
// maps it once to a response code (FORMERR) or to dropping the packet (a header too short to
// answer).

/// A message that cannot be read: where and why.
public struct DNSWireError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Value: Sendable, Hashable { case truncated, badName, pointerLoop, tooLong, trailingBytes }
        private let value: Value
        /// The message ends inside a field.
        public static let truncated = Code(value: .truncated)
        /// A label length or name length out of range, or a reserved label type.
        public static let badName = Code(value: .badName)
        /// A compression pointer that does not point strictly backwards, or too many of them.
        public static let pointerLoop = Code(value: .pointerLoop)
        /// A message longer than the largest one accepted.
        public static let tooLong = Code(value: .tooLong)
        /// Bytes after the last record the header counts.
        public static let trailingBytes = Code(value: .trailingBytes)
        public var description: String { "\(value)" }
    }

    public let code: Code
    public let message: String
    /// The byte offset where reading failed.
    public let offset: Int

    init(_ code: Code, _ message: String, at offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String { "malformed DNS message at byte \(offset): \(message)" }
}
