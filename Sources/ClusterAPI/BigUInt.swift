/// A small arbitrary-precision unsigned integer used by `Quantity` for exact decimal arithmetic.
///
/// Stored as little-endian base-2^32 limbs with no trailing zero limbs (zero is `[]`).
struct BigUInt: Hashable, Sendable {
    private(set) var limbs: [UInt32]

    /// Powers of ten that fit in a limb: 10^0 ... 10^9.
    static let smallPowersOfTen: [UInt32] = [
        1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
    ]

    /// Zero.
    init() { limbs = [] }

    /// The value of `value`.
    init(_ value: UInt64) {
        limbs = []
        if value != 0 {
            limbs.append(UInt32(truncatingIfNeeded: value))
            let high = UInt32(truncatingIfNeeded: value >> 32)
            if high != 0 { limbs.append(high) }
        }
    }

    /// Parses ASCII decimal digits (the caller guarantees they are digits).
    init<C: Collection>(decimalDigits digits: C) where C.Element == UInt8 {
        self.init()
        var chunk: UInt32 = 0
        var chunkLength = 0
        for digit in digits {
            chunk = chunk * 10 + UInt32(digit &- 48)
            chunkLength += 1
            if chunkLength == 9 {
                multiply(by: 1_000_000_000, adding: chunk)
                chunk = 0
                chunkLength = 0
            }
        }
        if chunkLength > 0 {
            multiply(by: Self.smallPowersOfTen[chunkLength], adding: chunk)
        }
    }

    var isZero: Bool { limbs.isEmpty }

    /// The value when it fits in 64 bits.
    var uint64Value: UInt64? {
        switch limbs.count {
        case 0: return 0
        case 1: return UInt64(limbs[0])
        case 2: return UInt64(limbs[1]) << 32 | UInt64(limbs[0])
        default: return nil
        }
    }

    private mutating func trim() {
        while let last = limbs.last, last == 0 { limbs.removeLast() }
    }

    /// self = self * factor + addend.
    mutating func multiply(by factor: UInt32, adding addend: UInt32 = 0) {
        var carry = UInt64(addend)
        for index in limbs.indices {
            let product = UInt64(limbs[index]) * UInt64(factor) + carry
            limbs[index] = UInt32(truncatingIfNeeded: product)
            carry = product >> 32
        }
        if carry != 0 { limbs.append(UInt32(carry)) }
        trim()
    }

    /// Divides in place and returns the remainder.
    @discardableResult
    mutating func divide(by divisor: UInt32) -> UInt32 {
        precondition(divisor != 0)
        var remainder: UInt64 = 0
        for index in limbs.indices.reversed() {
            let current = remainder << 32 | UInt64(limbs[index])
            limbs[index] = UInt32(truncatingIfNeeded: current / UInt64(divisor))
            remainder = current % UInt64(divisor)
        }
        trim()
        return UInt32(remainder)
    }

    /// The remainder of dividing by `divisor`, without changing the value.
    func remainder(dividingBy divisor: UInt32) -> UInt32 {
        var remainder: UInt64 = 0
        for limb in limbs.reversed() {
            remainder = (remainder << 32 | UInt64(limb)) % UInt64(divisor)
        }
        return UInt32(remainder)
    }

    /// self = self * 2^bits.
    mutating func shiftLeft(by bits: Int) {
        guard !isZero, bits > 0 else { return }
        let bitShift = bits % 32
        if bitShift != 0 {
            var carry: UInt32 = 0
            for index in limbs.indices {
                let value = limbs[index]
                limbs[index] = (value << UInt32(bitShift)) | carry
                carry = value >> UInt32(32 - bitShift)
            }
            if carry != 0 { limbs.append(carry) }
        }
        let limbShift = bits / 32
        if limbShift > 0 {
            limbs.insert(contentsOf: repeatElement(0, count: limbShift), at: 0)
        }
    }

    /// self = self * 10^power (power >= 0).
    mutating func multiplyByPowerOfTen(_ power: Int) {
        guard !isZero else { return }
        var power = power
        while power >= 9 {
            multiply(by: 1_000_000_000)
            power -= 9
        }
        if power > 0 { multiply(by: Self.smallPowersOfTen[power]) }
    }

    /// self = self / 10^power (truncating); returns `true` when a non-zero remainder was dropped.
    mutating func divideByPowerOfTen(_ power: Int) -> Bool {
        guard !isZero, power > 0 else { return false }
        // Each limb holds fewer than 10 decimal digits, so 10^power exceeds the value.
        if power > limbs.count * 10 {
            self = BigUInt()
            return true
        }
        var inexact = false
        var power = power
        while power >= 9 && !isZero {
            if divide(by: 1_000_000_000) != 0 { inexact = true }
            power -= 9
        }
        if power > 0 && !isZero {
            if divide(by: Self.smallPowersOfTen[power]) != 0 { inexact = true }
        }
        return inexact
    }

    /// Removes factors of ten, returning how many were removed (0 for zero).
    mutating func removeFactorsOfTen() -> Int {
        guard !isZero else { return 0 }
        var count = 0
        while remainder(dividingBy: 1_000_000_000) == 0 {
            divide(by: 1_000_000_000)
            count += 9
        }
        while remainder(dividingBy: 10) == 0 {
            divide(by: 10)
            count += 1
        }
        return count
    }

    /// -1, 0 or 1 as `lhs` is less than, equal to or greater than `rhs`.
    static func compare(_ lhs: BigUInt, _ rhs: BigUInt) -> Int {
        if lhs.limbs.count != rhs.limbs.count {
            return lhs.limbs.count < rhs.limbs.count ? -1 : 1
        }
        for index in lhs.limbs.indices.reversed() where lhs.limbs[index] != rhs.limbs[index] {
            return lhs.limbs[index] < rhs.limbs[index] ? -1 : 1
        }
        return 0
    }

    static func + (lhs: BigUInt, rhs: BigUInt) -> BigUInt {
        var result = BigUInt()
        let count = max(lhs.limbs.count, rhs.limbs.count)
        result.limbs.reserveCapacity(count + 1)
        var carry: UInt64 = 0
        for index in 0..<count {
            let a = index < lhs.limbs.count ? UInt64(lhs.limbs[index]) : 0
            let b = index < rhs.limbs.count ? UInt64(rhs.limbs[index]) : 0
            let sum = a + b + carry
            result.limbs.append(UInt32(truncatingIfNeeded: sum))
            carry = sum >> 32
        }
        if carry != 0 { result.limbs.append(UInt32(carry)) }
        return result
    }

    /// `lhs - rhs`; requires `lhs >= rhs`.
    static func - (lhs: BigUInt, rhs: BigUInt) -> BigUInt {
        precondition(compare(lhs, rhs) >= 0, "BigUInt subtraction underflow")
        var result = BigUInt()
        result.limbs.reserveCapacity(lhs.limbs.count)
        var borrow: Int64 = 0
        for index in lhs.limbs.indices {
            let b = index < rhs.limbs.count ? Int64(rhs.limbs[index]) : 0
            var difference = Int64(lhs.limbs[index]) - b - borrow
            if difference < 0 {
                difference += 1 << 32
                borrow = 1
            } else {
                borrow = 0
            }
            result.limbs.append(UInt32(difference))
        }
        result.trim()
        return result
    }

    /// Decimal digits of the value ("0" for zero).
    var decimalString: String {
        if let small = uint64Value { return String(small) }
        var chunks: [UInt32] = []
        var rest = self
        while !rest.isZero { chunks.append(rest.divide(by: 1_000_000_000)) }
        var result = String(chunks[chunks.count - 1])
        for chunk in chunks.dropLast().reversed() {
            let part = String(chunk)
            result += String(repeating: "0", count: 9 - part.count) + part
        }
        return result
    }

    /// Number of decimal digits (1 for zero).
    var decimalDigitCount: Int {
        if let small = uint64Value {
            var count = 1
            var value = small
            while value >= 10 {
                value /= 10
                count += 1
            }
            return count
        }
        return decimalString.utf8.count
    }
}
