// What the controller-manager harnesses share: waiting for something to happen (or for it not
// to), and a transport's way of holding back a pods watch or refusing a request.
import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import Testing

/// A harness that waits: `eventually` polls until a condition holds, `stays` that it keeps holding.
protocol Polling {
    /// How long `eventually` waits unless told otherwise.
    var patience: Duration { get }
}

extension Polling {
    /// Polls `condition` every 20 ms until it holds; records an issue naming `what` after
    /// `timeout` (the harness's patience unless given).
    @discardableResult
    func eventually(_ what: String, timeout: Duration? = nil, sourceLocation: SourceLocation = #_sourceLocation,
                    _ condition: () async throws -> Bool) async -> Bool {
        let timeout = timeout ?? patience
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out after \(timeout) waiting for: \(what)", sourceLocation: sourceLocation)
        return false
    }

    /// Holds `condition` true, checked every 20 ms, for `period` (something must NOT happen).
    func stays(_ what: String, for period: Duration = .milliseconds(1500), sourceLocation: SourceLocation = #_sourceLocation,
               _ condition: () async throws -> Bool) async {
        let deadline = ContinuousClock.now + period
        while ContinuousClock.now < deadline {
            if (try? await condition()) != true {
                Issue.record("no longer true: \(what)", sourceLocation: sourceLocation)
                return
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A Kubernetes `Status` failure, as the API server answers it.
func failureResponse(_ status: HTTPResponseStatus, reason: String, message: String) -> HTTPResponse {
    let body: JSONValue = ["kind": "Status", "apiVersion": "v1", "status": "Failure", "message": .string(message),
                           "reason": .string(reason), "code": .number(Double(status.code))]
    return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body.jsonData)
}

/// `response` as it is, unless `request` is a pods watch: then the same chunks in the same order,
/// each passed on only after `beforeChunk` returns (a lagging informer).
func relayingPodWatch(_ request: HTTPRequest, _ response: HTTPStreamingResponse,
                      beforeChunk: @escaping @Sendable () async throws -> Void) -> HTTPStreamingResponse {
    guard request.path.hasSuffix("/pods"), request.query["watch"] == "true" else { return response }
    let (body, output) = AsyncThrowingStream<Data, any Error>.makeStream()
    let relay = Task {
        do {
            for try await chunk in response.body {
                try await beforeChunk()
                output.yield(chunk)
            }
            output.finish()
        } catch {
            output.finish(throwing: error)
        }
    }
    output.onTermination = { _ in relay.cancel() }
    return HTTPStreamingResponse(status: response.status, headers: response.headers, body: body)
}
