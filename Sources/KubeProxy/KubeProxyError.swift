/// A failure of the proxy: what it was doing, which table or Service, and what to do.
public struct KubeProxyError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String { case configuration, nftables }
        private let value: Value
        /// A flag or the node's objects cannot make a table.
        public static let configuration = Code(value: .configuration)
        /// `nft` is missing or refused a transaction.
        public static let nftables = Code(value: .nftables)
        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String { message }
}
