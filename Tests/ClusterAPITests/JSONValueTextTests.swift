import Foundation
import Testing

@testable import ClusterAPI

@Suite("JSONValue text: the direct reader and writer")
struct JSONValueTextTests {
    private func parse(_ text: String) throws(JSONValue.ParseError) -> JSONValue { try JSONValue(parsing: Array(text.utf8)) }
    private func text(_ value: JSONValue) -> String { String(decoding: value.jsonBytes, as: UTF8.self) }

    @Test func readsWhatFoundationReads() throws {
        #expect(try parse(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n") == ["a": [1, 2]])
        #expect(try parse("1.0") == .integer(1))
        #expect(try parse("1e3") == .integer(1000))
        #expect(try parse("-0") == .integer(0))
        #expect(try parse("1E-2") == .number(0.01))
        #expect(try parse("92233720368547758.7") == .number(92233720368547758.7))
        #expect(try parse("123456789012345678901234567890") == .number(123456789012345678901234567890))
        #expect(try parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\ud83d\ude00 é 😀""#) == .string("😀 é 😀"))
        #expect(try parse(#"{"k":1,"k":2}"#) == ["k": 2])
        // The slow path (after an escape) keeps the bytes before and after it.
        #expect(try parse(#""abc\ndéf""#) == .string("abc\ndéf"))
        // Any collection of bytes, contiguous or not.
        #expect(try JSONValue(parsing: "[true]".utf8) == [true])
    }

    @Test(arguments: [
        ("", "unexpected end of the text: expected a value at byte 0"),
        ("{", "expected a string key in the object at byte 1"),
        ("[1,]", "unexpected character ']': expected a value at byte 3"),
        ("[1 2]", "expected ',' or ']' in the array at byte 3"),
        (#"{"a" 1}"#, #"expected ':' after the key "a" at byte 5"#),
        (#"{"a":1,}"#, "expected a string key in the object at byte 7"),
        ("nul", "invalid literal: expected null at byte 0"),
        ("01", "a number cannot start with a leading zero at byte 0"),
        ("1.", "a number needs a digit after its decimal point at byte 0"),
        ("1e", "a number needs a digit in its exponent at byte 0"),
        ("-", "a number needs a digit after its sign at byte 0"),
        ("1e400", "the number 1e400 does not fit a 64-bit float at byte 0"),
        ("1 2", "unexpected text after the JSON value at byte 2"),
        (#""abc"#, "unterminated string at byte 0"),
        ("\"a\tb\"", "a control character must be escaped in a string at byte 2"),
        (#""\x""#, #"invalid escape '\x' in a string at byte 1"#),
        (#""\u12""#, #"a \u escape needs four hexadecimal digits at byte 1"#),
        (#""\ud83d""#, "a high surrogate escape must be followed by a low one at byte 1"),
        (#""\ude00""#, "a low surrogate escape without a high one at byte 1"),
        ("'a'", "unexpected character ''': expected a value at byte 0"),
    ])
    func refusesWhatIsNotJSON(input: String, message: String) {
        do {
            let value = try parse(input)
            Issue.record("\(input) read as \(value)")
        } catch {
            #expect(error.description == message)
        }
    }

    /// As Go's encoding/json, which the Kubernetes API server reads with, does.
    @Test func replacesBytesThatAreNotUTF8() throws {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x22, 0x5C, 0x6E, 0xED, 0xA0, 0x80, 0x22]] {
            let value = try JSONValue(parsing: bytes)
            #expect(value.stringValue?.contains("\u{FFFD}") == true)
        }
    }

    @Test func boundsNesting() throws {
        let limit = JSONValue.maximumDepth
        _ = try parse(String(repeating: "[", count: limit) + String(repeating: "]", count: limit))
        #expect(throws: JSONValue.ParseError.self) { try parse(String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)) }
        // Far deeper input fails at the limit, without exhausting the stack.
        #expect(throws: JSONValue.ParseError.self) { try parse(String(repeating: #"{"a":"#, count: 100_000)) }
    }

    @Test func writesCompactTextWithKeysInByteOrder() {
        let value: JSONValue = ["b": [1, 2.5, "s/t", true, nil], "a": [:], "B": "é\u{1}\"\\\n", "aa": -0.125, "big": 1e300]
        #expect(text(value) == #"{"B":"é\u0001\"\\\n","a":{},"aa":-0.125,"b":[1,2.5,"s/t",true,null],"big":1e+300}"#)
        #expect(text(.number(2.0)) == "2")
        #expect(text(.integer(.min)) == "-9223372036854775808")
        #expect(text(.string("\u{7f}\u{1f}")) == "\"\u{7f}\\u001f\"")
    }

    @Test func writerAndFoundationReadEachOther() throws {
        let value: JSONValue = ["metadata": ["name": "web-0", "labels": ["app.kubernetes.io/name": "x"]], "n": [0.1, -3, 1e-7],
                                "s": "tab\there \u{0} 😀"]
        #expect(try JSONDecoder().decode(JSONValue.self, from: value.jsonData) == value)
        #expect(try JSONValue(parsing: JSONEncoder().encode(value)) == value)
    }
}
