// core/v1 Events as client-go's tools/record writes them, so `kubectl describe` shows what a
// controller did in Kubernetes' words.
//
//   recorder.event(pvc, .warning, "ProvisioningFailed", "…")      never blocks, never throws
//        │  (bounded buffer of 1000; full: the event is dropped, logged and counted)
//        v
//   writer task ── correlator ──┬─ first time: POST  name = <object>.<hex unix nanos>, count 1
//   (8 writes in flight at most,│
//    `writesWhileBusy` while the│
//    component says it is busy, │
//    after `holdWhileBusy`;     │
//    an event of an object with │
//    a write in flight waits)   │
//                               └─ repeat (same source, object, type, reason, message):
//                                  PATCH count+1, lastTimestamp (404: POST a new one)
//
// Events are best effort and background work, as in client-go, whose tools/record writes them
// from one goroutine one at a time: a component whose own writes compete with its events for
// the API server (the scheduler's bindings) passes `busy`, and while it says so the writer keeps
// `writesWhileBusy` (1) in flight, so the events trail the component's work and catch up with
// `concurrentWrites` once it is idle. With `holdWhileBusy` (the kubelet's), an event recorded
// while the component is busy is not written until it is idle or the event has waited that
// long: the events of a burst of work are written after it instead of during it.
//
// The correlator is client-go's: an LRU of the events written (key: source, involved object,
// type, reason, message) that turns a repeat into a count patch, and an aggregator that, after
// 10 events of one object and reason with different messages within 10 minutes, writes further
// ones as a single "(combined from similar events): …" event. Transport failures are retried
// (12 tries, 10 s apart by default, as client-go); a refusal from the server is not.
import ClusterAPI
import Foundation
import Logging
import Synchronization

/// `Normal` or `Warning`.
public enum EventType: String, Sendable {
    case normal = "Normal"
    case warning = "Warning"
}

/// An object reference for `involvedObject`: kind, namespace, name, uid, apiVersion and
/// resourceVersion of `object`.
public func objectReference<T: APIObject>(_ object: T) -> ObjectReference {
    ObjectReference(kind: T.defaultKind, namespace: object.metadata.namespace, name: object.metadata.name,
                    uid: object.metadata.uid, apiVersion: T.defaultAPIVersion, resourceVersion: object.metadata.resourceVersion)
}

/// Writes core/v1 Events for one component (`source.component`) on one host.
public final class EventRecorder: Sendable {
    /// How the recorder retries and aggregates (client-go's values by default).
    public struct Options: Sendable {
        /// Events waiting to be written before new ones are dropped.
        public var bufferSize = 1000
        /// Write attempts per event when the API server cannot be reached.
        public var maxTries = 12
        /// Pause between attempts.
        public var retryInterval: Duration = .seconds(10)
        /// Distinct messages of one object and reason before they are combined.
        public var maxSimilarEvents = 10
        /// Window in which similar events are counted.
        public var similarEventsWindow: Duration = .seconds(600)
        /// Events remembered for count patches.
        public var cacheSize = 4096
        /// Writes in flight at once while the component is not busy (see `writesWhileBusy`).
        /// client-go's tools/record writes one at a time; here each write waits for the API
        /// server's durable commit, and one at a time with client-go's 1,000-event buffer did
        /// not keep up with a scheduler binding ~1,000 pods/s (`bench scheduler`: 43% of a
        /// burst's `Scheduled` events were dropped); writes in flight together share a commit.
        public var concurrentWrites = 8
        /// Writes in flight at once while the component's `busy` says its own work is in flight
        /// (events yield to it; at least 1, so they never stop). Unused without `busy`.
        public var writesWhileBusy = 1
        /// How long an event may wait, unwritten, while `busy` says the component is busy: it is
        /// written once the component is idle or it has waited this long (then at
        /// `writesWhileBusy`). Zero (the default): events do not wait. Unused without `busy`.
        public var holdWhileBusy: Duration = .zero
        /// How often a held event asks `busy` again (at least every millisecond).
        public var busyPollInterval: Duration = .milliseconds(20)

        public init() {}
    }

    public let component: String
    public let host: String
    private let client: KubeClient
    private let options: Options
    private let logger: Logger
    private let stream: AsyncStream<Recorded>
    private let continuation: AsyncStream<Recorded>.Continuation
    private let state = Mutex(State())
    /// The component's own writes in flight: the writer keeps `writesWhileBusy` while true.
    private let busy: (@Sendable () -> Bool)?

    /// An event and when it was recorded (for `holdWhileBusy`).
    private struct Recorded: Sendable {
        let event: Event
        let at: ContinuousClock.Instant
    }

    private struct State {
        var dropped = 0
        var written = 0
        var pending = 0
        var inFlight = 0
        var maxInFlight = 0
    }

    /// `busy`: whether the component's own API writes are in flight (asked before each write
    /// is started, cheap and non-blocking); while it is true, at most `writesWhileBusy` events
    /// are written at once.
    public init(client: KubeClient, component: String, host: String = ProcessInfo.processInfo.hostName,
                options: Options = Options(), logger: Logger, busy: (@Sendable () -> Bool)? = nil) {
        self.busy = busy
        self.client = client
        self.component = component
        self.host = host
        self.options = options
        self.logger = logger
        (stream, continuation) = AsyncStream<Recorded>.makeStream(bufferingPolicy: .bufferingOldest(options.bufferSize))
    }

    /// Records an event about `object`. Returns at once; the event is written in the background.
    public func event<T: APIObject>(_ object: T, _ type: EventType, _ reason: String, _ message: String) {
        event(reference: objectReference(object), type, reason, message)
    }

    /// Records an event about the object `reference` names.
    public func event(reference: ObjectReference, _ type: EventType, _ reason: String, _ message: String) {
        let now = Date()
        // Unix nanoseconds from the clock itself (a Double of them is only good to ~240 ns),
        // as client-go names events.
        var clock = timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        let nanoseconds = UInt64(max(0, clock.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, clock.tv_nsec))
        let name = "\(reference.name ?? "").\(String(nanoseconds, radix: 16))"
        // Events about cluster-scoped objects live in `default`, as client-go puts them.
        let namespace = (reference.namespace ?? "").isEmpty ? "default" : reference.namespace!
        let event = Event(metadata: ObjectMeta(name: name, namespace: namespace), involvedObject: reference, reason: reason,
                          message: String(message.prefix(1024)), source: EventSource(component: component, host: host),
                          firstTimestamp: Time(now), lastTimestamp: Time(now), count: 1, type: type.rawValue,
                          reportingComponent: component, reportingInstance: host)
        state.withLock { $0.pending += 1 }
        if case .dropped = continuation.yield(Recorded(event: event, at: .now)) {
            state.withLock {
                $0.dropped += 1
                $0.pending -= 1
            }
            logger.warning("event buffer full; event dropped", metadata: ["reason": "\(reason)", "object": "\(reference.name ?? "")",
                                                                          "buffer": "\(options.bufferSize)", "dropped": "\(droppedCount)"])
        }
    }

    /// Events dropped because the buffer was full.
    public var droppedCount: Int { state.withLock { $0.dropped } }
    /// Events written (created or patched).
    public var writtenCount: Int { state.withLock { $0.written } }
    /// Events recorded but not yet written or given up.
    public var pendingCount: Int { state.withLock { $0.pending } }
    /// Event writes in flight now, and the most there have been at once.
    public var inFlightCount: Int { state.withLock { $0.inFlight } }
    public var maxInFlightCount: Int { state.withLock { $0.maxInFlight } }

    /// Writes in flight allowed now: `writesWhileBusy` while the component is busy.
    private var writeLimit: Int {
        if let busy, busy() { return max(1, options.writesWhileBusy) }
        return max(1, options.concurrentWrites)
    }

    /// Writes recorded events until the task is cancelled: correlated one by one, in order, and
    /// written up to `writeLimit` at once (asked again as each write lands, so the writer speeds
    /// up as soon as the component is idle). An event of an object with a write in flight (a
    /// possible repeat: a count patch, or a combined event; or the object's next event, which
    /// must land after it) waits until the writes in flight have landed and are remembered, so
    /// it is correlated as one at a time would be and each object's events land in order.
    public func run() async {
        var correlator = EventCorrelator(options: options)
        await withTaskGroup(of: (written: Event?, object: String).self) { writes in
            var inFlight: [String: Int] = [:]
            var count = 0
            func land(_ result: (written: Event?, object: String)) {
                if let written = result.written { correlator.remember(written) }
                inFlight[result.object, default: 1] -= 1
                if inFlight[result.object] == 0 { inFlight[result.object] = nil }
                count -= 1
            }
            for await recorded in stream {
                if Task.isCancelled { break }
                await waitWhileBusy(recorded)
                let event = recorded.event
                let object = EventCorrelator.objectKey(event)
                // Until this object's writes have landed (not every write in flight), and until
                // the writes in flight are below the limit, which may have fallen since the last
                // write started (the component became busy).
                while count > 0 && (inFlight[object] != nil || count >= writeLimit) {
                    guard let result = await writes.next() else { break }
                    land(result)
                }
                let (correlated, patch) = correlator.correlate(event)
                inFlight[object, default: 0] += 1
                count += 1
                state.withLock {
                    $0.inFlight += 1
                    $0.maxInFlight = max($0.maxInFlight, $0.inFlight)
                }
                writes.addTask { (await self.writeRetrying(correlated, patch: patch), object) }
            }
            while let result = await writes.next() { land(result) }
        }
    }

    /// Waits while the component is busy, until `holdWhileBusy` after `recorded` was recorded
    /// (not at all without a hold, without `busy`, or once the task is cancelled).
    private func waitWhileBusy(_ recorded: Recorded) async {
        guard let busy, options.holdWhileBusy > .zero else { return }
        let until = recorded.at + options.holdWhileBusy
        while !Task.isCancelled, busy() {
            let left = until - .now
            guard left > .zero else { return }
            try? await Task.sleep(for: min(left, max(.milliseconds(1), options.busyPollInterval)))
        }
    }

    /// Writes one event, retrying transport failures; the stored event, if any.
    private func writeRetrying(_ event: Event, patch: Bool) async -> Event? {
        defer {
            state.withLock {
                $0.pending -= 1
                $0.inFlight -= 1
            }
        }
        for attempt in 1...max(1, options.maxTries) {
            if let written = await write(event, patch: patch) { return written }
            if attempt == options.maxTries || Task.isCancelled {
                logger.warning("giving up writing an event", metadata: ["reason": "\(event.reason ?? "")"])
                return nil
            }
            try? await Task.sleep(for: options.retryInterval)
        }
        return nil
    }

    /// Stops accepting events; `run` returns once the buffer is written.
    public func finish() { continuation.finish() }

    /// nil: retry (transport failure); .some(nil): done without a stored event; .some(event): written.
    private func write(_ event: Event, patch: Bool) async -> Event?? {
        do {
            if patch {
                do {
                    let written = try await client.mergePatch(Event.self, name: event.metadata.name ?? "", namespace: event.metadata.namespace,
                                                              patch: ["count": .integer(Int64(event.count ?? 1)),
                                                                      "lastTimestamp": .string(event.lastTimestamp?.rfc3339 ?? ""),
                                                                      "message": .string(event.message ?? "")])
                    state.withLock { $0.written += 1 }
                    return .some(written)
                } catch let error as APIError where error.isNotFound {
                    // Expired or deleted: write it anew below.
                }
            }
            var fresh = event
            fresh.metadata.resourceVersion = nil
            // The server's copy is not read back: what the correlator keeps of a written event
            // (its name, count and first timestamp, for a later count patch) is what was sent.
            // Decoding the answer was a third of an event write's cost to the writer.
            try await client.createDiscardingResult(fresh)
            state.withLock { $0.written += 1 }
            return .some(fresh)
        } catch let error as APIError {
            if case .status = error {
                if !error.isAlreadyExists {
                    logger.warning("server rejected event (will not retry)", metadata: ["reason": "\(event.reason ?? "")", "error": "\(error)"])
                }
                return .some(nil)
            }
            return nil
        } catch {
            return nil
        }
    }
}

/// client-go's EventCorrelator: aggregation of similar events and count patches of repeats.
struct EventCorrelator {
    private let options: EventRecorder.Options
    /// Full key (with message) → the last event written under it.
    private var seen: [String: Event] = [:]
    private var order: [String] = []
    /// Key without message → messages seen in the window and when the last came.
    private var similar: [String: (messages: Set<String>, last: ContinuousClock.Instant)] = [:]

    init(options: EventRecorder.Options) { self.options = options }

    /// The involved object: its events are written in order, one at a time.
    static func objectKey(_ event: Event) -> String {
        let object = event.involvedObject
        return [object.kind ?? "", object.namespace ?? "", object.name ?? "", object.uid ?? ""].joined(separator: "\u{0}")
    }

    static func key(_ event: Event, message: Bool = true) -> String {
        let object = event.involvedObject
        var parts = [event.source?.component ?? "", event.source?.host ?? "", object.kind ?? "", object.namespace ?? "", object.name ?? "",
                     object.uid ?? "", object.apiVersion ?? "", event.type ?? "", event.reason ?? ""]
        // The full key (client-go's getEventKey) names the field too (a container of a pod);
        // the key of similar events (EventAggregatorByReasonFunc) does not.
        if message { parts += [object.fieldPath ?? "", event.message ?? ""] }
        return parts.joined(separator: "\u{0}")
    }

    /// The event to write and whether it patches an earlier one.
    mutating func correlate(_ incoming: Event) -> (Event, patch: Bool) {
        var event = incoming
        let group = Self.key(event, message: false)
        let now = ContinuousClock.now
        var record = similar[group] ?? (messages: [], last: now)
        if now - record.last > options.similarEventsWindow { record.messages = [] }
        record.messages.insert(event.message ?? "")
        record.last = now
        var key = Self.key(event)
        if record.messages.count >= options.maxSimilarEvents {
            record.messages.remove(event.message ?? "")
            event.message = "(combined from similar events): " + (event.message ?? "")
            key = group
        }
        similar[group] = record
        if let last = seen[key] {
            event.count = (last.count ?? 1) + 1
            event.firstTimestamp = last.firstTimestamp
            event.metadata.name = last.metadata.name
            event.metadata.resourceVersion = last.metadata.resourceVersion
            seen[key] = event
            return (event, true)
        }
        store(key, event)
        return (event, false)
    }

    /// Keeps the server's copy (its name and count) for the next repeat.
    mutating func remember(_ written: Event) {
        let key = Self.key(written)
        if seen[key] != nil || written.message?.hasPrefix("(combined from similar events): ") == true {
            let stored = written.message?.hasPrefix("(combined from similar events): ") == true ? Self.key(written, message: false) : key
            seen[stored] = written
        }
    }

    private mutating func store(_ key: String, _ event: Event) {
        if seen[key] == nil { order.append(key) }
        seen[key] = event
        if order.count > options.cacheSize {
            let evicted = order.removeFirst()
            seen[evicted] = nil
        }
    }
}
