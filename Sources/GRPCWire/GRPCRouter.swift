import NIOConcurrencyHelpers
import NIOCore

/// The methods a server answers, by path (`/package.Service/Method`).
public struct GRPCRouter: Sendable {
    public var methods: [String: GRPCMethod] = [:]
    /// Largest request message accepted; larger ones end the call with RESOURCE_EXHAUSTED.
    public var maxRequestMessageBytes = 4 << 20
    /// Called once per call of a registered method as it ends, with its path and status code (metrics).
    public var observer: (@Sendable (_ path: String, _ code: GRPCStatus.Code) -> Void)?

    public init() {}

    public mutating func register(_ path: String, _ method: GRPCMethod) { methods[path] = method }
}

/// Answers that arrive from other threads for the unary calls of one event
/// loop's connections, delivered in batches: the first answer of a batch
/// schedules one task on the loop, later ones join it, and the batch ends
/// with one flush per connection it touched. One group commit of the store
/// thus costs each event loop one wake-up, however many connections it answers.
final class CompletionInbox: @unchecked Sendable {
    enum Outcome {
        case message([UInt8])
        case status(GRPCStatus)
    }

    let eventLoop: any EventLoop
    private let lock = NIOLock()
    private var pending: [(NIOLoopBound<GRPCConnectionHandler>, UInt32, Outcome)] = []
    private var scheduled = false

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func post(_ connection: NIOLoopBound<GRPCConnectionHandler>, _ id: UInt32, _ outcome: Outcome) {
        let schedule = lock.withLock {
            pending.append((connection, id, outcome))
            defer { scheduled = true }
            return !scheduled
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let batch = lock.withLock {
            scheduled = false
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        var touched: [GRPCConnectionHandler] = []
        for (bound, id, outcome) in batch {
            let connection = bound.value
            connection.answer(id, outcome)
            if !connection.inFlushList {
                connection.inFlushList = true
                touched.append(connection)
            }
        }
        for connection in touched {
            connection.inFlushList = false
            connection.flushIfNeeded()
        }
    }
}
