// Parsing the label selector syntax (apimachinery `labels.Parse`): `LabelSelector(parsing:)`
// and the lexer and recursive-descent parser behind it, with apimachinery's error wording
// ("found 'x', expected: ..."). Private to this file; the model is in LabelSelector.swift.

extension LabelSelector {
    /// Parses selector syntax: comma-separated `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    /// `k notin (a)`, `k`, `!k`, `k>n`, `k<n`. Whitespace between tokens is ignored; `""` is
    /// `everything`.
    public init(parsing text: String) throws(LabelSelectorError) {
        var parser = LabelSelectorParser(text)
        self.init(requirements: try parser.parse())
    }
}

private enum LabelToken: Equatable {
    case identifier
    case doesNotExist  // !
    case notEquals  // !=
    case equals  // =
    case doubleEquals  // ==
    case greaterThan  // >
    case lessThan  // <
    case openParenthesis
    case closeParenthesis
    case comma
    case inKeyword
    case notInKeyword
    case endOfString
    case error
}

private struct LabelSelectorParser {
    private enum Context { case keyAndOperator, values }

    private var items: [(token: LabelToken, literal: String)] = []
    private var position = 0

    init(_ text: String) {
        items = Self.lex(Array(text.utf8))
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A
    }

    private static func isSpecial(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "("), UInt8(ascii: ")"),
            UInt8(ascii: ","), UInt8(ascii: ">"), UInt8(ascii: "<"):
            return true
        default:
            return false
        }
    }

    private static func symbol(_ text: String) -> LabelToken? {
        switch text {
        case "!": return .doesNotExist
        case "!=": return .notEquals
        case "=": return .equals
        case "==": return .doubleEquals
        case ">": return .greaterThan
        case "<": return .lessThan
        case "(": return .openParenthesis
        case ")": return .closeParenthesis
        case ",": return .comma
        default: return nil
        }
    }

    private static func lex(_ bytes: [UInt8]) -> [(token: LabelToken, literal: String)] {
        var result: [(token: LabelToken, literal: String)] = []
        var index = 0
        while true {
            while index < bytes.count && isWhitespace(bytes[index]) { index += 1 }
            if index >= bytes.count {
                result.append((.endOfString, ""))
                return result
            }
            if isSpecial(bytes[index]) {
                // Longest run of special characters that still forms a known symbol.
                var buffer = ""
                var best: (LabelToken, String)?
                while index < bytes.count && isSpecial(bytes[index]) {
                    let candidate = buffer + String(UnicodeScalar(bytes[index]))
                    if let token = symbol(candidate) {
                        best = (token, candidate)
                        buffer = candidate
                        index += 1
                    } else if best != nil {
                        break
                    } else {
                        buffer = candidate
                        index += 1
                    }
                }
                if let best {
                    result.append(best)
                } else {
                    result.append((.error, "error expected: keyword found '\(buffer)'"))
                }
            } else {
                let start = index
                while index < bytes.count && !isWhitespace(bytes[index]) && !isSpecial(bytes[index]) {
                    index += 1
                }
                let word = String(decoding: bytes[start..<index], as: UTF8.self)
                switch word {
                case "in": result.append((.inKeyword, word))
                case "notin": result.append((.notInKeyword, word))
                default: result.append((.identifier, word))
                }
            }
        }
    }

    private func lookahead(_ context: Context) -> (token: LabelToken, literal: String) {
        var item = items[position]
        if context == .values && (item.token == .inKeyword || item.token == .notInKeyword) {
            item.token = .identifier
        }
        return item
    }

    private mutating func consume(_ context: Context) -> (token: LabelToken, literal: String) {
        let item = lookahead(context)
        if position < items.count - 1 { position += 1 }
        return item
    }

    mutating func parse() throws(LabelSelectorError) -> [LabelSelector.Requirement] {
        var requirements: [LabelSelector.Requirement] = []
        while true {
            let (token, literal) = lookahead(.values)
            switch token {
            case .identifier, .doesNotExist:
                do {
                    requirements.append(try parseRequirement())
                } catch {
                    throw LabelSelectorError("unable to parse requirement: \(error.message)")
                }
                let (next, nextLiteral) = consume(.values)
                switch next {
                case .endOfString:
                    return requirements
                case .comma:
                    let (after, afterLiteral) = lookahead(.values)
                    if after != .identifier && after != .doesNotExist {
                        throw LabelSelectorError("found '\(afterLiteral)', expected: identifier after ','")
                    }
                default:
                    throw LabelSelectorError("found '\(nextLiteral)', expected: ',' or 'end of string'")
                }
            case .endOfString:
                return requirements
            default:
                throw LabelSelectorError("found '\(literal)', expected: !, identifier, or 'end of string'")
            }
        }
    }

    private mutating func parseRequirement() throws(LabelSelectorError) -> LabelSelector.Requirement {
        var (token, literal) = consume(.values)
        var op: LabelSelector.Operator?
        if token == .doesNotExist {
            op = .doesNotExist
            (token, literal) = consume(.values)
        }
        guard token == .identifier else {
            throw LabelSelectorError("found '\(literal)', expected: identifier")
        }
        let key = literal
        let keyErrors = LabelValidation.qualifiedNameErrors(key)
        if !keyErrors.isEmpty {
            throw LabelSelectorError("key: Invalid value: \(goQuoted(key)): " + keyErrors.joined(separator: "; "))
        }
        let next = lookahead(.values).token
        if next == .endOfString || next == .comma, op == nil {
            op = .exists
        }
        if let op, op == .exists || op == .doesNotExist {
            return try LabelSelector.Requirement(key: key, operator: op, values: [])
        }

        let (operatorToken, operatorLiteral) = consume(.keyAndOperator)
        let binary: LabelSelector.Operator
        switch operatorToken {
        case .inKeyword: binary = .in
        case .notInKeyword: binary = .notIn
        case .equals: binary = .equals
        case .doubleEquals: binary = .doubleEquals
        case .notEquals: binary = .notEquals
        case .greaterThan: binary = .greaterThan
        case .lessThan: binary = .lessThan
        default:
            throw LabelSelectorError("found '\(operatorLiteral)', expected: in, notin, =, ==, !=, gt, lt")
        }
        let values: [String]
        switch binary {
        case .in, .notIn: values = try parseValueList()
        default: values = try parseExactValue()
        }
        return try LabelSelector.Requirement(key: key, operator: binary, values: values)
    }

    private mutating func parseValueList() throws(LabelSelectorError) -> [String] {
        let (open, openLiteral) = consume(.values)
        guard open == .openParenthesis else {
            throw LabelSelectorError("found '\(openLiteral)' expected: '('")
        }
        let (first, firstLiteral) = lookahead(.values)
        switch first {
        case .identifier, .comma:
            let values = try parseIdentifierList()
            let (close, _) = consume(.values)
            if close != .closeParenthesis {
                throw LabelSelectorError("found '\(firstLiteral)', expected: ')'")
            }
            return values
        case .closeParenthesis:
            _ = consume(.values)
            return [""]
        default:
            throw LabelSelectorError("found '\(firstLiteral)', expected: ',', ')' or identifier")
        }
    }

    private mutating func parseIdentifierList() throws(LabelSelectorError) -> [String] {
        var values: Set<String> = []
        while true {
            let (token, literal) = consume(.values)
            switch token {
            case .identifier:
                values.insert(literal)
                let (next, nextLiteral) = lookahead(.values)
                switch next {
                case .comma: continue
                case .closeParenthesis: return values.sorted()
                default: throw LabelSelectorError("found '\(nextLiteral)', expected: ',' or ')'")
                }
            case .comma:
                // "(," ",," and ",)" each stand for an empty value.
                if values.isEmpty { values.insert("") }
                let next = lookahead(.values).token
                if next == .closeParenthesis {
                    values.insert("")
                    return values.sorted()
                }
                if next == .comma {
                    _ = consume(.values)
                    values.insert("")
                }
            default:
                throw LabelSelectorError("found '\(literal)', expected: ',', or identifier")
            }
        }
    }

    private mutating func parseExactValue() throws(LabelSelectorError) -> [String] {
        let next = lookahead(.values).token
        if next == .endOfString || next == .comma { return [""] }
        let (token, literal) = consume(.values)
        guard token == .identifier else {
            throw LabelSelectorError("found '\(literal)', expected: identifier")
        }
        return [literal]
    }
}
