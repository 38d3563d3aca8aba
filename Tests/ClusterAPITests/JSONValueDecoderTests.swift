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

    /// Unknown members are read straight from the tree (not through the container's keys):
    /// the same members, null and nested ones included, at every level, as Foundation's way.
    @Test func keepsUnknownMembersAsFoundationDoes() throws {
        let text = #"""
        {"apiVersion":"v1","kind":"Event","extra":{"a":[1,null]},"nothing":null,"flag":false,
         "metadata":{"name":"e1","namespace":"default","futureMeta":"x"},
         "involvedObject":{"kind":"Pod","name":"p","futureRef":7},"reason":"Scheduled","count":1}
        """#
        try same(Event.self, text)
        let event = try JSONValueDecoder().decode(Event.self, from: JSONValue(parsing: Data(text.utf8)))
        #expect(event.unknownFields == ["extra": ["a": [1, .null]], "nothing": .null, "flag": false])
        #expect(event.metadata.unknownFields == ["futureMeta": "x"])
        #expect(event.involvedObject.unknownFields == ["futureRef": 7])
        #expect(event.reason == "Scheduled" && event.count == 1)
        // Nothing unknown: nothing kept.
        let plain = try JSONValueDecoder().decode(ObjectReference.self, from: ["kind": "Pod", "name": "p"])
        #expect(plain.unknownFields.isEmpty)
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

@Suite("JSONValueEncoder: typed values straight into a tree")
struct JSONValueEncoderTests {
    /// Encodes `value` both ways: the tree must be what Foundation's text reads to.
    private func same<T: Encodable>(_ value: T) throws {
        let foundation = try JSONValue(parsing: JSONEncoder().encode(value))
        #expect(try JSONValueEncoder().encode(value) == foundation)
    }

    @Test func encodesEveryModelAsFoundationDoes() throws {
        func model<T: Codable>(_ type: T.Type, _ text: String) throws { try same(try JSONDecoder().decode(T.self, from: Data(text.utf8))) }
        try model(Pod.self, Manifests.pod)
        try model(Namespace.self, Manifests.namespace)
        try model(Node.self, Manifests.node)
        try model(PersistentVolume.self, Manifests.persistentVolume)
        try model(PersistentVolumeClaim.self, Manifests.persistentVolumeClaim)
        try model(Event.self, Manifests.event)
        try model(Service.self, Manifests.service)
        try model(Endpoints.self, Manifests.endpoints)
        try model(StorageClass.self, Manifests.storageClass)
        try model(VolumeAttachment.self, Manifests.volumeAttachment)
        try model(CSIDriver.self, Manifests.csiDriver)
        try model(CSINode.self, Manifests.csiNode)
        try model(Lease.self, Manifests.lease)
        try model(ClusterAPI.List<Pod>.self, Manifests.podList)
    }

    struct Sample: Codable, Equatable {
        var name = "a"
        var count: UInt64 = 42
        var small: Int8 = -3
        var ratio: Float = 0.5
        var tags = ["x", "y"]
        var nested: [String: [Int?]] = ["k": [1, nil]]
        var byNumber: [Int: String] = [2: "two"]
        var blob = Data([1, 2, 3])
        var when = Date(timeIntervalSinceReferenceDate: 10.5)
        var free: JSONValue = ["z": [true, nil]]
        var missing: String?
    }

    @Test func encodesScalarsCollectionsAndFoundationTypes() throws {
        try same(Sample())
        try same([Sample(), Sample(name: "b")])
        try same(["one": 1.25])
        // Beyond Int64, a Double as the reader makes it (not read back into a UInt64 exactly).
        try same([UInt64.max])
        let tree = try JSONValueEncoder().encode(Sample())
        #expect(try tree.decode(as: Sample.self) == Sample())
    }

    @Test func refusesWhatJSONCannotHold() {
        #expect(throws: EncodingError.self) { _ = try JSONValueEncoder().encode(["x": Double.nan]) }
        #expect(throws: EncodingError.self) { _ = try JSONValueEncoder().encode([Double.infinity]) }
    }

    struct Inner: Encodable { var ratio = Double.nan }
    struct Outer: Encodable { var name = "o"; var inner = Inner(); var list: [Inner] = [] }

    /// The path is built only for an error: it still names the field and the element, as
    /// Foundation's does.
    @Test func anErrorNamesTheFieldAsFoundationDoes() {
        func path(_ body: () throws -> Void) -> [String]? {
            do { try body() } catch EncodingError.invalidValue(_, let context) { return context.codingPath.map(\.stringValue) } catch {}
            return nil
        }
        let ours = path { _ = try JSONValueEncoder().encode(Outer()) }
        #expect(ours == ["inner", "ratio"])
        #expect(ours == path { _ = try JSONEncoder().encode(Outer()) })
        var listed = Outer()
        listed.inner.ratio = 1
        listed.list = [Inner(ratio: 2), Inner()]
        let element = path { _ = try JSONValueEncoder().encode(listed) }
        #expect(element == ["list", "Index 1", "ratio"])
        #expect(element == path { _ = try JSONEncoder().encode(listed) })
    }

    enum Shape: Codable { case circle(radius: Double), square(side: Int, label: String?), none }

    /// Writes a member whole, then more into it through a nested container (as Foundation's
    /// encoder allows), and a superclass's members through `superEncoder`.
    struct Layered: Encodable {
        enum Keys: String, CodingKey { case spec, items }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(["a": 1], forKey: .spec)
            var spec = container.nestedContainer(keyedBy: Keys.self, forKey: .spec)
            try spec.encode("more", forKey: .items)
            try container.encode([1, 2], forKey: .items)
            var items = container.nestedUnkeyedContainer(forKey: .items)
            try items.encode(3)
            try "base".encode(to: container.superEncoder())
        }
    }

    @Test func nestedContainersAndEnumsAsFoundationDoes() throws {
        try same([Shape.circle(radius: 1.5), .square(side: 2, label: nil), .square(side: 3, label: "x"), .none])
        try same(Layered())
    }
}
