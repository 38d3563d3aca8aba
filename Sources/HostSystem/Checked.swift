// Checked arithmetic for numbers that come from outside the process.
/// Arithmetic on numbers that come from outside (a request, a tool's output, a superblock):
/// nil instead of a trap when the result does not fit.
public enum Checked {
    public static func multiply(_ a: Int64, _ b: Int64) -> Int64? {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? nil : product
    }

    public static func add(_ a: Int64, _ b: Int64) -> Int64? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    /// `value` as an Int64, or nil when it is larger.
    public static func int64<T: BinaryInteger>(_ value: T) -> Int64? { Int64(exactly: value) }

    /// `value` (>= 0) rounded up to a multiple of `unit` (> 0); nil when that does not fit or
    /// `value` is negative.
    public static func roundUp(_ value: Int64, toMultipleOf unit: Int64) -> Int64? {
        precondition(unit > 0)
        guard value >= 0 else { return nil }
        let remainder = value % unit
        guard remainder != 0 else { return value }
        return add(value, unit - remainder)
    }
}
