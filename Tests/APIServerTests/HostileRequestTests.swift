// Requests that trapped the API server or made it work without bound (issue 12): each is
// now an error with a Status, answered at once, and the server goes on serving.
import ClusterAPI
import Foundation
import HTTPKit
import NIOHTTP1
import Testing
@testable import APIServer

@Suite struct HostileRequestTests {
    @Test func anOverflowingTimeoutIs400NotATrap() async throws {
        try await withFixture { f in
            // Anonymous, as the finding sent it: GET /healthz?timeout=99999999999999999h.
            let response = await f.handler.handle(HTTPRequest(method: .GET, uri: "/healthz?timeout=99999999999999999h", headers: [:], body: Data()))
            #expect(response.status == .badRequest)
            let status = try JSONDecoder().decode(JSONValue.self, from: response.body)
            #expect(status["reason"] == "BadRequest")
            #expect(status["message"] == #"invalid timeout specified in the request URL - time: invalid duration "99999999999999999h""#)
            // Longer than the server's limit is the limit; a sane one is honoured.
            #expect(try f.handler.timeout(["timeout": "2562047h"]) == .seconds(60))
            #expect(try f.handler.timeout(["timeout": "32s"]) == .seconds(32))
            #expect(try f.handler.timeout(["timeout": "-5s"]) == .seconds(60))
            #expect(await f.request(.GET, "/api/v1/namespaces/default?timeout=5s").code == 200)
        }
    }

    @Test func theLargestLimitListsEverything() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            // Any node token could send this; Int(limit) + 1 trapped in the store.
            let all = await f.request(.GET, "/api/v1/persistentvolumeclaims?limit=9223372036854775807")
            #expect(all.code == 200)
            #expect(all.body["items"]?.arrayValue?.count == 1 && all.body["metadata"]?["continue"] == nil)
            let negative = await f.request(.GET, "/api/v1/persistentvolumeclaims?limit=-9223372036854775808")
            #expect(negative.code == 200 && negative.body["items"]?.arrayValue?.count == 1)
            let junk = await f.request(.GET, "/api/v1/persistentvolumeclaims?limit=99999999999999999999")
            #expect(junk.code == 400 && junk.body["message"]?.stringValue?.contains("limit") == true)
            // A forged continue token (revision 0, or an empty start key) is a 400, not a store call.
            let token = Data(#"{"v":"meta.k8s.io/v1","rv":0,"start":"x"}"#.utf8).base64EncodedString()
            #expect(await f.request(.GET, "/api/v1/persistentvolumeclaims?limit=1&continue=\(token)").code == 400)
        }
    }

    @Test func aMalformedProtobufBodyIs400() async throws {
        try await withFixture { f in
            // "k8s\0", then field 1 (length-delimited) with a 10-byte varint length.
            let bodies: [[UInt8]] = [
                ProtobufBody.magic + [0x0A] + [UInt8](repeating: 0xFF, count: 9) + [0x01],
                ProtobufBody.magic + [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7F],
                ProtobufBody.magic + [0x09, 0x01],  // a fixed64 cut short
                ProtobufBody.magic + [0x0A],  // a tag and nothing else
            ]
            for body in bodies {
                let response = await f.handler.handle(HTTPRequest(
                    method: .POST, uri: "/api/v1/namespaces",
                    headers: ["Authorization": "Bearer \(HandlerFixture.adminToken)", "Content-Type": "application/vnd.kubernetes.protobuf"],
                    body: Data(body)))
                #expect(response.status == .badRequest, "\(body)")
                let status = try JSONDecoder().decode(JSONValue.self, from: response.body)
                #expect(status["message"]?.stringValue?.contains("protobuf") == true)
            }
            #expect(await f.request(.GET, "/api/v1/namespaces/default").code == 200)
        }
    }

    @Test func hugeWatchTimeoutsAndGracePeriodsAreClamped() async throws {
        try await withFixture { f in
            #expect(try f.handler.watchTimeout("9223372036854775807") == Int(APIHandler.maxWatchTimeoutSeconds))
            #expect(try f.handler.watchTimeout("-9223372036854775808") == 0)
            #expect(throws: APIError.self) { try f.handler.watchTimeout("forever") }
            // The watch opens and delivers (it trapped arming its timer).
            let response = await f.handler.handle(HTTPRequest(
                method: .GET, uri: "/api/v1/namespaces/default/persistentvolumeclaims?watch=true&timeoutSeconds=9223372036854775807",
                headers: ["Authorization": "Bearer \(HandlerFixture.adminToken)"], body: Data()))
            let stream = try #require(response.stream)
            let collector = LineCollector()
            let watching = Task { try await stream(collector.writer) }
            defer { watching.cancel() }
            _ = await f.request(.POST, "/api/v1/namespaces/default/persistentvolumeclaims", body: pvcJSON)
            #expect(await collector.wait(for: 1).first?["type"] == "ADDED")

            // A bound pod deleted with the largest grace period: the deletion is at the end of time.
            let pod = #"{"metadata":{"name":"web"},"spec":{"nodeName":"node-a","containers":[{"name":"a","image":"nginx"}]}}"#
            #expect(await f.request(.POST, "/api/v1/namespaces/default/pods", body: pod).code == 201)
            let deleted = await f.request(.DELETE, "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=9223372036854775807")
            #expect(deleted.code == 200)
            #expect(deleted.body["metadata"]?["deletionTimestamp"] == "9999-12-31T23:59:59Z")
            // The same through the body's field; a shorter one still shortens it.
            let shorter = await f.request(.DELETE, "/api/v1/namespaces/default/pods/web", body: #"{"gracePeriodSeconds":9223372036854775807}"#)
            #expect(shorter.code == 200)
            let bad = await f.request(.DELETE, "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=1e99")
            #expect(bad.code == 400)
            #expect(await f.request(.DELETE, "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=0").code == 200)
        }
    }

    @Test func copyOperationsCannotDoubleAnObject() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/api/v1/nodes", body: #"{"metadata":{"name":"node-a","labels":{"a":"b"}},"status":{"capacity":{"cpu":"2"}}}"#)
            // 1.2 KB of copies, each doubling /status: >100 s and 400 MB before the cap.
            let ops = (0..<40).map { #"{"op":"copy","from":"/status","path":"/status/x\#($0)"}"# }.joined(separator: ",")
            let started = ContinuousClock.now
            let doubled = await f.request(.PATCH, "/api/v1/nodes/node-a", body: "[\(ops)]", contentType: "application/json-patch+json")
            #expect(started.duration(to: .now) < .seconds(2))
            #expect(doubled.code == 422)
            #expect(doubled.body["reason"] == "Invalid")
            #expect(doubled.body["message"]?.stringValue?.contains("Unable to complete the copy, the accumulated size increase of copy is") == true)
            // More operations than Kubernetes allows: 413 before any is applied.
            let many = Array(repeating: #"{"op":"test","path":"/metadata/name","value":"node-a"}"#, count: JSONPatch.maxOperations + 1)
            let tooMany = await f.request(.PATCH, "/api/v1/nodes/node-a", body: "[\(many.joined(separator: ","))]",
                                          contentType: "application/json-patch+json")
            #expect(tooMany.code == 413)
            #expect(tooMany.body["message"] == "The allowed maximum operations in a JSON patch is 10000, got 10001")
            // A patch that grows the object past what storage takes: 413, nothing stored.
            let big = String(repeating: "x", count: 1 << 20)
            let grown = await f.request(.PATCH, "/api/v1/nodes/node-a",
                                        body: #"[{"op":"add","path":"/spec","value":{"a":"\#(big)"}},{"op":"copy","from":"/spec/a","path":"/spec/b"}]"#,
                                        contentType: "application/json-patch+json")
            #expect(grown.code == 413, "\(grown.body)")
            #expect(await f.request(.GET, "/api/v1/nodes/node-a").body["spec"]?["a"] == nil)
        }
    }

    @Test func longKeyedListPatchesStayLinear() throws {
        // 20,000 containers merged by name, then reordered: a scan per element was 4·10^8
        // comparisons; through an index it is linear.
        let n = 20_000
        let pod: JSONValue = ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "web", "finalizers": ["a", "b"]],
                              "spec": ["containers": [["name": "a", "image": "nginx"]]]]
        let containers = JSONValue.array((0..<n).map { ["name": .string("c\($0)"), "image": "i"] })
        let order = JSONValue.array((0..<n).reversed().map { ["name": .string("c\($0)")] })
        let finalizers = JSONValue.array((0..<n).map { .string("f\($0)") })
        let patch: JSONValue = ["spec": ["containers": containers, "$setElementOrder/containers": order],
                                "metadata": ["finalizers": finalizers, "$deleteFromPrimitiveList/finalizers": finalizers]]
        let started = ContinuousClock.now
        let result = try StrategicMergePatch.apply(patch, to: pod, kind: "Pod")
        #expect(started.duration(to: .now) < .seconds(5), "\(started.duration(to: .now))")
        #expect(result["spec"]?["containers"]?.arrayValue?.count == n + 1)
        #expect(result["spec"]?["containers"]?[0]?["name"] == .string("c\(n - 1)"))
        #expect(result["metadata"]?["finalizers"] == ["a", "b"])
    }
}
