import ClusterAPI
import Testing
@testable import APIServer

/// The watch cache's per-resource event log (`EventLog`): each cursor reads every event appended
/// after it was taken, once and in order, across segments; its lag is what it has not read; and a
/// segment is freed once no cursor stands in it or before it.
@Suite struct EventLogTests {
    static func event(_ revision: Int64, cost: Int = 10) -> CachedEvent {
        let key = "/registry/pods/default/p\(revision)"
        let object = CachedObject(key: key, object: ["metadata": ["name": .string("p\(revision)")]], revision: revision, cost: cost)
        return CachedEvent(revision: revision, key: key, current: object, previous: nil)
    }

    static func read(_ cursor: inout EventLog.Cursor, upTo limit: Int = .max) -> [Int64] {
        var revisions: [Int64] = []
        cursor.read(upTo: limit) { event in
            revisions.append(event.revision)
            return true
        }
        return revisions
    }

    @Test func cursorsReadWhatFollowsThemInOrderAcrossSegments() {
        let log = EventLog()
        log.append(Self.event(1))
        var early = log.cursor()  // after event 1
        let count = 3 * EventLog.segmentEvents + 5
        for revision in 2...Int64(count) { log.append(Self.event(revision)) }
        var late = log.cursor()  // at the end
        #expect(log.lag(early).events == count - 1)
        #expect(log.lag(early).bytes == 10 * (count - 1))
        #expect(log.lag(late).events == 0)
        // Up to a position (a control item's mark), then the rest.
        let first = Self.read(&early, upTo: early.position + 10)
        #expect(first == Array(2...11))
        let rest = Self.read(&early)
        #expect(rest == Array(12...Int64(count)))
        #expect(log.lag(early).events == 0 && log.lag(early).bytes == 0)
        #expect(Self.read(&late).isEmpty)
        log.append(Self.event(Int64(count) + 1))
        #expect(Self.read(&early) == [Int64(count) + 1])
        #expect(Self.read(&late) == [Int64(count) + 1])
    }

    @Test func aReaderStopsWhenTold() {
        let log = EventLog()
        var cursor = log.cursor()
        for revision in Int64(1)...10 { log.append(Self.event(revision)) }
        var taken: [Int64] = []
        cursor.read(upTo: .max) { event in
            taken.append(event.revision)
            return taken.count < 4
        }
        #expect(taken == [1, 2, 3, 4])
        #expect(log.lag(cursor).events == 6)
        #expect(Self.read(&cursor) == Array(5...10))
    }

    /// A large event closes its segment, so that the tail the log keeps holds little beyond it.
    @Test func segmentsCloseAtTheirByteLimit() {
        let log = EventLog()
        var cursor = log.cursor()
        for revision in Int64(1)...4 { log.append(Self.event(revision, cost: EventLog.segmentBytes)) }
        #expect(log.lag(cursor).bytes == 4 * EventLog.segmentBytes)
        #expect(Self.read(&cursor) == [1, 2, 3, 4])
        #expect(cursor.segment.base == 3, "each event past the byte limit starts a segment")
    }

    /// Events are freed once every cursor has moved past their segment (and the log's tail has
    /// moved on): what a watch holds back is what it has not read.
    @Test func segmentsAreFreedOnceNoCursorNeedsThem() {
        let log = EventLog()
        weak var first: CachedEvent?
        var cursor = log.cursor()
        do {
            let event = Self.event(1)
            first = event
            log.append(event)
        }
        for revision in 2...Int64(2 * EventLog.segmentEvents) { log.append(Self.event(revision)) }
        #expect(first != nil, "the cursor still stands before it")
        _ = Self.read(&cursor, upTo: EventLog.segmentEvents + 1)
        #expect(first == nil, "freed once the only cursor left its segment")
    }
}
