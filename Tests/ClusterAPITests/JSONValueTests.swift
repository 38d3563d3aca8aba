import Foundation
import Testing

@testable import ClusterAPI

private func decode(_ json: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
}

@Suite("JSONValue")
struct JSONValueTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("0", .integer(0)),
        ("1", .integer(1)),
        ("-42", .integer(-42)),
        ("9223372036854775807", .integer(.max)),
        ("-9223372036854775808", .integer(.min)),
        ("9223372036854775808", .number(9_223_372_036_854_775_808)),
        ("1.5", .number(1.5)),
        ("-0.25", .number(-0.25)),
        ("1e300", .number(1e300)),
        (#""x""#, .string("x")),
        (#""""#, .string("")),
        (#""1""#, .string("1")),
        (#""true""#, .string("true")),
        (#""\u00e9\n""#, .string("é\n")),
        ("[]", .array([])),
        (#"[1,"a",null,[true]]"#, .array([.integer(1), .string("a"), .null, .array([.bool(true)])])),
        ("{}", .object([:])),
        (#"{"a":{"b":null,"c":[1.5]}}"#, .object(["a": .object(["b": .null, "c": .array([.number(1.5)])])])),
    ])
    func decodes(json: String, expected: JSONValue) throws {
        let value = try decode(json)
        #expect(value == expected)
        // Re-encoding gives back an equal value.
        let reencoded = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
        #expect(reencoded == expected)
        // The direct reader agrees with Foundation's, and its writer round-trips.
        let parsed = try JSONValue(parsing: Data(json.utf8))
        #expect(parsed == expected)
        #expect(try JSONValue(parsing: parsed.jsonBytes) == expected)
        #expect(try JSONDecoder().decode(JSONValue.self, from: parsed.jsonData) == expected)
    }

    @Test func integralNumbersWithFractionOrExponentStillReadAsIntegers() throws {
        #expect(try decode("1.0").int64Value == 1)
        #expect(try decode("1e3").int64Value == 1000)
        #expect(try decode("1.5").int64Value == nil)
    }

    @Test func rejectsInvalidJSON() {
        #expect(throws: (any Error).self) { try decode("{") }
        #expect(throws: (any Error).self) { try decode("nul") }
    }

    @Test func subscriptsAndAccessors() throws {
        let value = try decode(
            #"{"metadata":{"name":"web","labels":{"app":"x"},"generation":3},"items":[10,"b"],"ok":true,"ratio":0.5}"#)
        #expect(value["metadata"]?["name"]?.stringValue == "web")
        #expect(value["metadata"]?["labels"]?["app"]?.stringValue == "x")
        #expect(value["metadata"]?["generation"]?.int64Value == 3)
        #expect(value["metadata"]?["generation"]?.doubleValue == 3)
        #expect(value["metadata"]?["missing"] == nil)
        #expect(value["items"]?[0]?.int64Value == 10)
        #expect(value["items"]?[1]?.stringValue == "b")
        #expect(value["items"]?[2] == nil)
        #expect(value["items"]?[-1] == nil)
        #expect(value["items"]?.arrayValue?.count == 2)
        #expect(value["ok"]?.boolValue == true)
        #expect(value["ratio"]?.doubleValue == 0.5)
        #expect(value["ratio"]?.int64Value == nil)
        #expect(value["metadata"]?.objectValue?.count == 3)
        #expect(value["ok"]?["x"] == nil)
        #expect(value["ok"]?.stringValue == nil)
        #expect(JSONValue.null.isNull)
        #expect(!JSONValue.integer(0).isNull)

        var mutable = value
        mutable["metadata"]?["name"] = "api"
        mutable["new"] = ["a": 1]
        mutable["ok"] = nil
        #expect(mutable["metadata"]?["name"] == "api")
        #expect(mutable["new"]?["a"] == .integer(1))
        #expect(mutable["ok"] == nil)
        var scalar: JSONValue = 5
        scalar["k"] = "v"
        #expect(scalar == ["k": "v"])
    }

    @Test func literalsEqualityAndHashing() {
        let value: JSONValue = ["a": [1, 2.5, "s", true, nil], "b": [:]]
        #expect(value == .object(["a": .array([.integer(1), .number(2.5), .string("s"), .bool(true), .null]), "b": .object([:])]))
        #expect(JSONValue.integer(1) != JSONValue.number(1))
        #expect(Set<JSONValue>([1, 1, "1", [1], ["1": 1]]).count == 4)
    }

    @Test func convertsToAndFromCodableTypes() throws {
        struct Sample: Codable, Equatable {
            var name: String
            var count: Int
            var tags: [String]
        }
        let sample = Sample(name: "n", count: 2, tags: ["x"])
        let value = try JSONValue(encoding: sample)
        #expect(value == ["name": "n", "count": 2, "tags": ["x"]])
        #expect(try value.decode(as: Sample.self) == sample)
    }
}
