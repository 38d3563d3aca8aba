import ClusterAPI
import Foundation
import Synchronization
import Testing
@testable import APIServer

/// Request deadlines kept by one watcher for every request: work past its deadline is cancelled
/// and answered 504; work that ends in time keeps its answer; a deadline earlier than the one
/// the watcher sleeps until still fires on time; nothing stays registered.
@Suite struct RequestDeadlineTests {
    struct Hung: Error {}

    /// Waits until cancelled (at most `seconds`), then throws.
    static func hang(seconds: Int = 20) async throws -> String {
        try await Task.sleep(for: .seconds(seconds))
        throw Hung()
    }

    @Test func workPastItsDeadlineIsCancelledAndTimesOut() async throws {
        let deadlines = RequestDeadlines()
        defer { deadlines.stop() }
        let started = ContinuousClock.now
        await #expect(throws: APIError.self) { try await deadlines.run(limit: .milliseconds(200)) { try await Self.hang() } }
        let took = started.duration(to: .now)
        #expect(took >= .milliseconds(200) && took < .seconds(5), "\(took)")
        #expect(deadlines.count == 0)
        do {
            _ = try await deadlines.run(limit: .milliseconds(100)) { try await Self.hang() }
        } catch let error as APIError {
            #expect(error.code == .timeout)
            #expect(error.message.contains("context deadline exceeded"))
        }
    }

    @Test func workThatEndsInTimeKeepsItsAnswerOrError() async throws {
        let deadlines = RequestDeadlines()
        defer { deadlines.stop() }
        #expect(try await deadlines.run(limit: .seconds(30)) { "at once" } == "at once")
        #expect(try await deadlines.run(limit: .seconds(30)) {
            try await Task.sleep(for: .milliseconds(20))
            return "after a wait"
        } == "after a wait")
        await #expect(throws: Hung.self) { try await deadlines.run(limit: .seconds(30)) { () async throws -> String in throw Hung() } }
        #expect(deadlines.count == 0)
    }

    /// The watcher sleeps until the first deadline (60 s); a request with 300 ms arriving after it
    /// must wake it earlier; hundreds of requests of each kind at once all end as they should.
    @Test func anEarlierDeadlineWakesTheWatcherAndManyRunAtOnce() async throws {
        let deadlines = RequestDeadlines()
        defer { deadlines.stop() }
        try await withThrowingTaskGroup(of: (Bool, Bool).self) { group in
            group.addTask {  // the long one, first
                (false, (try? await deadlines.run(limit: .seconds(60)) {
                    try await Task.sleep(for: .milliseconds(1500))
                    return "slow but in time"
                }) == "slow but in time")
            }
            try await Task.sleep(for: .milliseconds(50))
            for index in 0..<200 {
                group.addTask {
                    if index % 2 == 0 {  // past its deadline
                        do {
                            _ = try await deadlines.run(limit: .milliseconds(300)) { try await Self.hang() }
                            return (true, false)
                        } catch let error as APIError {
                            return (true, error.code == .timeout)
                        }
                    }
                    return (true, (try? await deadlines.run(limit: .seconds(30)) { "quick" }) == "quick")
                }
            }
            let started = ContinuousClock.now
            var short = 0
            for try await (isShort, ok) in group {
                #expect(ok)
                if isShort { short += 1 }
                if short == 200 { #expect(started.duration(to: .now) < .seconds(5), "the 300 ms deadlines fired late") }
            }
        }
        #expect(deadlines.count == 0)
    }

    /// Through the handler: a list read from a store that takes 20 s, with `timeout=1s`, is
    /// answered 504 after about a second, its store call cancelled.
    @Test func theHandlerAnswers504AtTheRequestsTimeout() async throws {
        try await withSlowStoreFixture { f, store in
            store.listDelay.withLock { $0 = .seconds(20) }
            let started = ContinuousClock.now
            let r = await f.request(.GET, "/api/v1/pods?resourceVersion=1&resourceVersionMatch=Exact&timeout=1s")
            let took = started.duration(to: .now)
            #expect(r.code == 504, "\(r.body)")
            #expect(r.body["message"]?.stringValue?.contains("context deadline exceeded") == true, "\(r.body)")
            #expect(took >= .seconds(1) && took < .seconds(10), "\(took)")
            #expect(f.handler.deadlines.count == 0)
        }
    }
}
