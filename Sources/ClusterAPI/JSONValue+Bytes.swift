// JSON text ↔ `JSONValue`, directly. The API server turns every request body, stored object
// and watch event into a tree and back; through Foundation's coders that was half its CPU
// (a generic container walk per node, and `JSONValue.init(from:)` trying each type in turn).
// This reader and writer do the same in one pass over the bytes.
//
// Reading follows RFC 8259 strictly (what Foundation's JSONDecoder accepts): one value with
// whitespace around it, strings with no raw control characters, escapes including surrogate
// pairs (bytes that are not UTF-8 become U+FFFD, as Foundation and Go's encoding/json read them), at most `maximumDepth` nested arrays and objects. A number
// without fraction or exponent that fits Int64 is `.integer`; any other number is `.number`,
// or `.integer` when its Double is integral and below 2^53 (as decoding through Foundation
// did for "1.0"), and a
// number too large for a Double is an error. A key given twice keeps its last value.
//
// Writing sorts object keys by their UTF-8 bytes (as Go's encoding/json sorts map keys),
// escapes `"`, `\` and control characters, and writes the rest of the UTF-8 as is (slashes
// unescaped). Doubles use Swift's shortest round-trip form, integral ones below 2^63 as
// integers, NaN and infinities (which no text reads to) as null.
import Foundation

extension JSONValue {
    /// Nested arrays and objects allowed when reading (Foundation's limit): deeper input is
    /// refused before the recursion can exhaust the stack.
    public static let maximumDepth = 512

    /// Why a text is not JSON, and the byte where that was found.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var offset: Int
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// The value of the JSON text `bytes`.
    public init(parsing bytes: some Collection<UInt8>) throws(ParseError) {
        var result = bytes.withContiguousStorageIfAvailable { buffer in Result { () throws(ParseError) in try Self.parse(buffer) } }
        if result == nil {
            result = Array(bytes).withUnsafeBufferPointer { buffer in Result { () throws(ParseError) in try Self.parse(buffer) } }
        }
        self = try result!.get()
    }

    /// The value of the JSON text in `data`.
    public init(parsing data: Data) throws(ParseError) {
        let result = data.withUnsafeBytes { raw in Result { () throws(ParseError) in try Self.parse(raw.bindMemory(to: UInt8.self)) } }
        self = try result.get()
    }

    private static func parse(_ buffer: UnsafeBufferPointer<UInt8>) throws(ParseError) -> JSONValue {
        var reader = JSONReader(buffer)
        return try reader.document()
    }

    /// This value as compact JSON text, object keys sorted.
    public var jsonBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        JSONWriter.write(self, to: &out)
        return out
    }

    /// This value as compact JSON text, object keys sorted.
    public var jsonData: Data { Data(jsonBytes) }
}

/// One pass over a JSON text.
private struct JSONReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var depth = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ reason: String, at offset: Int? = nil) -> JSONValue.ParseError {
        JSONValue.ParseError(reason: reason, offset: offset ?? index)
    }

    mutating func document() throws(JSONValue.ParseError) -> JSONValue {
        skipWhitespace()
        let value = try self.value()
        skipWhitespace()
        guard index == bytes.count else { throw fail("unexpected text after the JSON value") }
        return value
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func value() throws(JSONValue.ParseError) -> JSONValue {
        guard index < bytes.count else { throw fail("unexpected end of the text: expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character '\(Self.printable(bytes[index]))': expected a value")
        }
    }

    static func printable(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }

    mutating func literal(_ word: StaticString) throws(JSONValue.ParseError) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count,
              UnsafeBufferPointer(rebasing: bytes[index..<index + count]).elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: count))
        else { throw fail("invalid literal: expected \(word)") }
        index += count
    }

    mutating func enter() throws(JSONValue.ParseError) {
        depth += 1
        guard depth <= JSONValue.maximumDepth else {
            throw fail("too deeply nested: more than \(JSONValue.maximumDepth) levels of arrays and objects")
        }
    }

    mutating func object() throws(JSONValue.ParseError) -> JSONValue {
        try enter()
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string key in the object") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':' after the key \"\(key)\"") }
            index += 1
            skipWhitespace()
            members[key] = try value()
            if try closes(UInt8(ascii: "}"), "object") { return .object(members) }
        }
    }

    /// After a member or element: true at the closing bracket `close` (consumed, the level
    /// left), false after a comma.
    mutating func closes(_ close: UInt8, _ what: String) throws(JSONValue.ParseError) -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw fail("unexpected end of the text in an \(what)") }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            return false
        }
        guard bytes[index] == close else { throw fail("expected ',' or '\(Character(UnicodeScalar(close)))' in the \(what)") }
        index += 1
        depth -= 1
        return true
    }

    mutating func array() throws(JSONValue.ParseError) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value())
            if try closes(UInt8(ascii: "]"), "array") { return .array(elements) }
        }
    }

    mutating func string() throws(JSONValue.ParseError) -> String {
        let start = index
        index += 1
        // The common case: no escape, so the string is the bytes between the quotes.
        var scan = index
        while scan < bytes.count {
            let byte = bytes[scan]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<scan]), as: UTF8.self)
                index = scan + 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail("a control character must be escaped in a string", at: scan) }
            scan += 1
        }
        guard scan < bytes.count else { throw fail("unterminated string", at: start) }
        var out = Array(UnsafeBufferPointer(rebasing: bytes[index..<scan]))
        index = scan
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw fail("unterminated string", at: start) }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"): try unicodeEscape(into: &out)
                default: throw fail("invalid escape '\\\(Self.printable(escape))' in a string", at: index - 2)
                }
            default:
                if byte < 0x20 { throw fail("a control character must be escaped in a string") }
                out.append(byte)
                index += 1
            }
        }
        throw fail("unterminated string", at: start)
    }

    /// The four hex digits of the `\u` escape that starts at `escape`.
    mutating func hex4(escape: Int) throws(JSONValue.ParseError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw fail("a \\u escape needs four hexadecimal digits", at: escape) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("a \\u escape needs four hexadecimal digits", at: escape)
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func unicodeEscape(into out: inout [UInt8]) throws(JSONValue.ParseError) {
        let at = index - 2
        var code = try hex4(escape: at)
        if (0xD800...0xDBFF).contains(code) {
            guard bytes.count - index >= 2, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                throw fail("a high surrogate escape must be followed by a low one", at: at)
            }
            index += 2
            let low = try hex4(escape: index - 2)
            guard (0xDC00...0xDFFF).contains(low) else { throw fail("a high surrogate escape must be followed by a low one", at: at) }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(code) {
            throw fail("a low surrogate escape without a high one", at: at)
        }
        guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape", at: at) }
        out.append(contentsOf: UTF8.encode(scalar)!)
    }

    mutating func number() throws(JSONValue.ParseError) -> JSONValue {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw fail("a number needs a digit after its sign", at: start)
        }
        // Integer part, accumulated negatively so that Int64.min fits.
        var accumulated: Int64 = 0
        var overflow = false
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                throw fail("a number cannot start with a leading zero", at: start)
            }
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                let digit = Int64(bytes[index] - UInt8(ascii: "0"))
                let (times, o1) = accumulated.multipliedReportingOverflow(by: 10)
                let (next, o2) = times.subtractingReportingOverflow(digit)
                overflow = overflow || o1 || o2
                accumulated = next
                index += 1
            }
        }
        var integral = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw fail("a number needs a digit after its decimal point", at: start)
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw fail("a number needs a digit in its exponent", at: start)
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if integral && !overflow {
            if negative { return .integer(accumulated) }
            if accumulated != .min { return .integer(-accumulated) }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let double = Double(text), double.isFinite else { throw fail("the number \(text) does not fit a 64-bit float", at: start) }
        // "1.0" and "1e3" are integers, as decoding through Foundation made them; a fraction lost
        // to the Double's precision (beyond 2^53) does not make one.
        if double.magnitude < 0x1p53, let exact = Int64(exactly: double) { return .integer(exact) }
        return .number(double)
    }
}

/// Compact JSON text of a tree.
private enum JSONWriter {
    static func write(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .integer(let number): out.append(contentsOf: String(number).utf8)
        case .number(let number):
            // Integral values in integer form (a Go client reads "1000000000000000000" into an
            // int64, not "1e+18"); JSON has no NaN or infinity: null.
            if !number.isFinite {
                out.append(contentsOf: "null".utf8)
            } else if number == number.rounded(), number.magnitude < 0x1p63 {
                out.append(contentsOf: String(Int64(number)).utf8)
            } else {
                out.append(contentsOf: number.description.utf8)
            }
        case .string(let text): write(text, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                write(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                write(key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(members[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    static func write(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for position in 0..<utf8.count {
                let byte = utf8[position]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<position]))
                runStart = position + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: "u00".utf8)
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        out.append(UInt8(ascii: "\""))
    }
}
