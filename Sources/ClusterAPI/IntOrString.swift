/// A number or a percentage string (apimachinery `intstr.IntOrString`), as in a Deployment's
/// `maxSurge: 1` or `maxUnavailable: "25%"`.
public enum IntOrString: Sendable, Hashable, Codable, CustomStringConvertible {
    case int(Int32)
    case string(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int32.self) {
            self = .int(number)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .int(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        }
    }

    public var description: String {
        switch self {
        case .int(let number): return String(number)
        case .string(let text): return text
        }
    }

    /// The percentage of a `"NN%"` string; nil for a number or another string.
    public var percent: Int? {
        guard case .string(let text) = self, text.hasSuffix("%") else { return nil }
        return Int(text.dropLast())
    }

    /// The absolute value against `total` (`intstr.GetScaledValueFromIntOrPercent`): a number
    /// as is, a percentage of `total` rounded up or down; nil for a string that is not a
    /// percentage.
    public func scaled(total: Int, roundUp: Bool) -> Int? {
        switch self {
        case .int(let number): return Int(number)
        case .string:
            guard let percent else { return nil }
            let product = percent.multipliedReportingOverflow(by: total)
            guard !product.overflow else { return nil }
            return roundUp ? (product.partialValue + 99) / 100 : product.partialValue / 100
        }
    }
}
