import NIOCore

/// The bounds of a `GRPCWireServer`: what one client, or all of them, may
/// make the server hold or do. The port has no authentication (like etcd's
/// client port without TLS), so every buffer a client can fill is bounded
/// here, and floods are answered as Go's and nghttp2's servers answer them:
/// GOAWAY with ENHANCE_YOUR_CALM, then close. See docs/security.md#store-wire-grpcwire.
public struct GRPCWireLimits: Sendable, Equatable {
    /// Connections open at once (HTTP/2 and HTTP/1 together); the ones over
    /// it are closed as they are accepted.
    public var maxConnections = 4096
    /// Calls open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS;
    /// etcd's --max-concurrent-streams). Calls the client reset while their
    /// work still runs count too, so that opening and resetting streams in a
    /// loop ("rapid reset") cannot queue more work than this.
    public var maxConcurrentStreams = 1000
    /// Request bytes one connection may make the server hold: messages being
    /// received, and requests whose calls have not been answered yet.
    /// Flow-control credit is given back as they are answered or consumed,
    /// so a client that sends more waits; it never costs more memory.
    /// At least twice the largest request, so that concurrent large requests
    /// on one connection always make progress.
    public var maxConnectionBufferedBytes = 32 << 20
    /// A new connection must send the HTTP/2 preface and SETTINGS (or an
    /// HTTP/1 request line) within this.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// A connection with no call open for this long is sent GOAWAY and closed
    /// (gRPC's MaxConnectionIdle; clients reconnect when they next need it).
    /// nil: never.
    public var idleTimeout: TimeAmount? = .minutes(5)
    /// An HTTP/1 connection (/metrics, /health) is closed after this long without a byte either way.
    public var http1IdleTimeout: TimeAmount = .seconds(30)
    /// Streams a client may reset while the server still works on them, or
    /// open beyond `maxConcurrentStreams`, in a burst; the allowance grows
    /// back at `resetsPerSecond` (nghttp2's defaults: 1000 and 33). Past it:
    /// GOAWAY ENHANCE_YOUR_CALM.
    public var resetBurst = 1000
    public var resetsPerSecond = 33.0
    /// Frames the server must answer (PING and SETTINGS acknowledgements,
    /// RST_STREAM, WINDOW_UPDATE) that may pile up while the client does not
    /// read (Go's maxQueuedControlFrames). Past it: GOAWAY ENHANCE_YOUR_CALM.
    public var maxQueuedControlFrames = 10_000
    /// Response bytes waiting for the socket at which a connection stops
    /// being read until they drain (and streaming calls' senders wait).
    public var writeBufferHighWaterMark = 1 << 20

    public init() {}

    /// The inbound flow-control window of a connection: half the buffer
    /// bound (at most 16 MiB), so that a client can always send while the
    /// server holds the other half.
    var connectionWindow: Int { min(16 << 20, max(HTTP2.defaultWindow, maxConnectionBufferedBytes / 2)) }
}
