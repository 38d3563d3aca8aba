import Foundation
import Testing

@testable import ClusterAPI

@Suite("JSONValueDecoder: typed values straight from a tree")
struct JSONValueDecoderTests {
    /// Decodes `text` as `T` both ways and expects the same value.
    private func same<T: Decodable & Equatable>(_ type: T.Type, _ text: String) throws {
        let foundation = try JSONDecoder().decode(T.self, from: Data(text.utf8))
        let tree = try JSONValueDecoder().decode(T.self, from: JSONValue(parsing: Data(text.utf8)))
        #expect(tree == foundation)
    }

    @Test func decodesEveryModelAsFoundationDoes() throws {
        try same(Pod.self, Manifests.pod)
        try same(Namespace.self, Manifests.namespace)
        try same(Node.self, Manifests.node)
        try same(PersistentVolume.self, Manifests.persistentVolume)
        try same(PersistentVolumeClaim.self, Manifests.persistentVolumeClaim)
        try same(Event.self, Manifests.event)
        try same(Service.self, Manifests.service)
        try same(Endpoints.self, Manifests.endpoints)
        try same(StorageClass.self, Manifests.storageClass)
        try same(VolumeAttachment.self, Manifests.volumeAttachment)
        try same(CSIDriver.self, Manifests.csiDriver)
        try same(CSINode.self, Manifests.csiNode)
        try same(Lease.self, Manifests.lease)
        try same(ClusterAPI.List<Pod>.self, Manifests.podList)
        // And the round trip through the tree keeps every field, unknown ones included.
        let pod = try JSONValue(parsing: Data(Manifests.pod.utf8))
        #expect(try JSONValue(encoding: pod.decode(as: Pod.self)) == pod)
    }

    struct Sample: Codable, Equatable {
        var name: String
        var count: Int32
        var ratio: Double?
        var small: UInt8?
        var tags: [String]
        var nested: [String: [Int]]
        var blob: Data?
        var when: Date?
        var free: JSONValue?
    }

    @Test func decodesScalarsOptionalsAndFoundationTypes() throws {
        try same(Sample.self, #"{"name":"a","count":1.0,"ratio":2,"tags":[],"nested":{"x":[1,2]},"blob":"aGk=","when":10.5,"free":{"k":[null]}}"#)
        try same(Sample.self, #"{"name":"a","count":-3,"ratio":null,"small":255,"tags":["t"],"nested":{},"free":null}"#)
        try same([Int?].self, "[1,null,3]")
        try same([String: Bool].self, #"{"a":true}"#)
    }

    /// The coding path of the decoding error, as the API server prints it, or "decoded".
    private func errorPath(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "decoded"
        } catch let error as DecodingError {
            let context: DecodingError.Context
            switch error {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
            case .keyNotFound(let key, let c): context = DecodingError.Context(codingPath: c.codingPath + [key], debugDescription: "")
            @unknown default: return "\(error)"
            }
            return context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        (#"{"name":1,"count":1,"tags":[],"nested":{}}"#, "name", true),
        (#"{"name":"a","count":"1","tags":[],"nested":{}}"#, "count", true),
        (#"{"name":"a","count":1,"tags":[2],"nested":{}}"#, "tags.[0]", true),
        (#"{"name":"a","count":1,"tags":[],"nested":{"x":["y"]}}"#, "nested.x.[0]", true),
        (#"{"count":1,"tags":[],"nested":{}}"#, "name", true),
        (#"{"name":null,"count":1,"tags":[],"nested":{}}"#, "name", true),
        (#"[1]"#, "", true),
        // Foundation names no field for a number that does not fit; this decoder does.
        (#"{"name":"a","count":1.5,"tags":[],"nested":{}}"#, "count", false),
        (#"{"name":"a","count":4294967296,"tags":[],"nested":{}}"#, "count", false),
        (#"{"name":"a","count":1,"small":256,"tags":[],"nested":{}}"#, "small", false),
    ])
    func failsWhereFoundationFails(text: String, path: String, foundationNamesIt: Bool) {
        let data = Data(text.utf8)
        let foundation = errorPath { _ = try JSONDecoder().decode(Sample.self, from: data) }
        let tree = errorPath { _ = try JSONValueDecoder().decode(Sample.self, from: JSONValue(parsing: data)) }
        #expect(foundation != "decoded")
        #expect(tree == path)
        if foundationNamesIt { #expect(foundation == path) }
    }

    @Test func namesTheFieldOfAModelError() throws {
        let text = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":5}]}}"#
        do {
            _ = try JSONValue(parsing: Data(text.utf8)).decode(as: Pod.self)
            Issue.record("decoded a container named 5")
        } catch let DecodingError.typeMismatch(_, context) {
            #expect(context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue } == ["spec", "containers", "0", "name"])
            #expect(context.debugDescription == "Expected to decode String but found number instead.")
        }
    }
}

@Suite("JSONValueDecoder: Foundation's contracts")
struct JSONValueDecoderContractTests {
    /// Tries each element as an Int, and skips what is not one: the index moves only on success.
    struct LenientInts: Decodable, Equatable {
        var values: [Int] = []
        init(values: [Int]) { self.values = values }
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            while !container.isAtEnd {
                if let value = try? container.decode(Int.self) { values.append(value) } else { _ = try container.decode(JSONValue.self) }
            }
            #expect(throws: DecodingError.self) { _ = try container.decodeNil() }
        }
    }

    @Test func anElementThatFailsIsStillThere() throws {
        let text = #"[1,"x",2,null,3]"#
        let foundation = try JSONDecoder().decode(LenientInts.self, from: Data(text.utf8))
        let tree = try JSONValueDecoder().decode(LenientInts.self, from: JSONValue(parsing: Data(text.utf8)))
        #expect(tree == LenientInts(values: [1, 2, 3]))
        #expect(tree == foundation)
    }

    @Test func integersBeyondWhatADoubleHoldsExactlyAreRefused() throws {
        // -9223372036854775809 overflows Int64 and is read as a Double, which rounds to Int64.min.
        #expect(throws: DecodingError.self) {
            _ = try JSONValueDecoder().decode(Int64.self, from: JSONValue(parsing: Data("-9223372036854775809".utf8)))
        }
        #expect(try JSONValueDecoder().decode(Int64.self, from: JSONValue(parsing: Data("1e15".utf8))) == 1_000_000_000_000_000)
    }

    @Test func integralDoublesAreWrittenAsIntegers() {
        #expect(String(decoding: JSONValue.number(1e18).jsonBytes, as: UTF8.self) == "1000000000000000000")
        #expect(String(decoding: JSONValue.number(1e300).jsonBytes, as: UTF8.self) == "1e+300")
        #expect(String(decoding: JSONValue.number(.nan).jsonBytes, as: UTF8.self) == "null")
    }
}
