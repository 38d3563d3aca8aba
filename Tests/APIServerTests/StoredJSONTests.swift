import ClusterAPI
import Primitives
import Testing
@testable import APIServer

/// The resource version inserted into stored JSON equals the JSON writer's output for the
/// decoded object with its resource version set, byte for byte; bytes of any other shape are
/// left to the writer.
@Suite struct StoredJSONTests {
    /// A random value: strings with quotes, backslashes, braces and brackets in them, nested
    /// arrays and objects, numbers of every kind.
    static func value(_ rng: inout SplitMix64, depth: Int) -> JSONValue {
        let texts = ["", "web", "a\"b", "back\\slash", "{not:an}[object]", "line\nbreak", "ünïcødé ✓", "resourceVersion", "metadata"]
        switch Int.random(in: 0..<(depth > 2 ? 5 : 7), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .integer(Int64.random(in: -1_000_000...1_000_000, using: &rng))
        case 3: return .number(Double.random(in: -1e6...1e6, using: &rng))
        case 4: return .string(texts.randomElement(using: &rng)!)
        case 5: return .array((0..<Int.random(in: 0..<4, using: &rng)).map { _ in value(&rng, depth: depth + 1) })
        default: return object(&rng, depth: depth + 1, keys: ["a", "resourceVersion", "z", "metadata", "spec", "{", "\"q\""])
        }
    }

    static func object(_ rng: inout SplitMix64, depth: Int, keys: [String]) -> JSONValue {
        var members: [String: JSONValue] = [:]
        for key in keys where Bool.random(using: &rng) { members[key] = value(&rng, depth: depth) }
        return .object(members)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func insertingTheVersionEqualsWritingTheObject(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        // Metadata keys sorting before and after resourceVersion, and odd ones.
        let metadataKeys = ["annotations", "creationTimestamp", "labels", "name", "namespace", "ownerReferences", "r", "resourceVersio",
                            "resourceVersionX", "selfLink", "uid", "~", "A"]
        for round in 0..<500 {
            var object = Self.object(&rng, depth: 0, keys: ["apiVersion", "kind", "spec", "status", "a", "zz"])
            object["metadata"] = Self.object(&rng, depth: 1, keys: metadataKeys)
            let stored = object.jsonBytes  // no resourceVersion in it, as the store keeps it
            let revision = Int64.random(in: 1...Int64.max, using: &rng)
            var served = object
            served["metadata"]?["resourceVersion"] = .string(String(revision))
            let spliced = StoredJSON.withResourceVersion(stored, revision)
            #expect(spliced == served.jsonBytes, "round \(round): \(String(decoding: stored, as: UTF8.self))")
            #expect(try JSONValue(parsing: try #require(spliced)) == served)
        }
    }

    @Test func aStoredPodGetsItsVersionWhereTheWriterPutsIt() throws {
        var pod = Pod(metadata: ObjectMeta(name: "web", namespace: "default", labels: ["app": "web"]))
        pod.metadata.uid = "8c7f0d2e-1111-2222-3333-444455556666"
        pod.spec.containers = [Container(name: "app", image: "busybox")]
        let object = try JSONValue(encoding: pod)
        var served = object
        served["metadata"]?["resourceVersion"] = "42"
        let spliced = try #require(StoredJSON.withResourceVersion(object.jsonBytes, 42))
        #expect(spliced == served.jsonBytes)
        #expect(String(decoding: spliced, as: UTF8.self).contains(#""namespace":"default","resourceVersion":"42","uid":"#))
    }

    @Test(arguments: [
        #"[]"#, #""text""#, #"{}"#, #"{"kind":"Pod"}"#,  // not an object, or no metadata
        #"{"metadata":"web"}"#, #"{"metadata":null}"#,  // metadata not an object
        #"{"metadata":{"name":"a"},"metadata":{"name":"b"}}"#,  // metadata twice: the reader keeps the last
        #"{"metadata":{"resourceVersion":"7"}}"#, #"{"metadata":{"uid":"u","resourceVersion":"7"}}"#,  // a version already there
        #"{"metadata":{"n\u0061me":"a"}}"#, #"{"m\u0065tadata":{"name":"a"}}"#,  // escaped keys: not compared as bytes
        "{\"metadata\":{\"name\":\"a\"},\n\"kind\":\"Pod\"}", "{\"metadata\":{}}\r",  // a line break would split a watch line
        #"{"metadata":{"name":"a"}"#, #"{"metadata":{"name":"a}}"#, #"{"metadata":{"name":"a"}} x"#,  // not one whole object
    ])
    func otherShapesAreLeftToTheWriter(text: String) {
        #expect(StoredJSON.withResourceVersion(Array(text.utf8), 5) == nil, "\(text)")
    }

    @Test func anEmptyMetadataGetsTheVersionAlone() {
        #expect(StoredJSON.withResourceVersion(Array(#"{"a":1,"metadata":{},"z":[{"metadata":{}}]}"#.utf8), 9)
                == Array(#"{"a":1,"metadata":{"resourceVersion":"9"},"z":[{"metadata":{}}]}"#.utf8))
    }
}
