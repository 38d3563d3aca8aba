// A seeded mutator for the targets, so that `make test` fuzzes without libFuzzer and a failure
// is reproduced exactly by its seed (`ballast-fuzz run TARGET --seed S`).
import Primitives

/// Mutates corpus inputs the way libFuzzer's default mutators do, in a simpler form: bit and
/// byte flips, inserted and erased runs, "interesting" integers (0, -1, the extremes, as
/// bytes and as protobuf varints), copied parts, and splices with another corpus input.
public struct FuzzMutator: Sendable {
    public let corpus: [[UInt8]]
    public let maxLength: Int
    package var random: SplitMix64

    public init(corpus: [[UInt8]], maxLength: Int, seed: UInt64) {
        self.corpus = corpus.isEmpty ? [[]] : corpus
        self.maxLength = max(1, maxLength)
        self.random = SplitMix64(seed: seed)
    }

    static let interesting: [[UInt8]] = [
        [0], [0xFF], [0x7F], [0x80], [0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF],
        [0x7F, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // varint of UInt64.max
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],        // varint of Int64.max
        [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],  // overlong varint
        Array("9223372036854775807".utf8), Array("-1".utf8), Array("99999999999999999999".utf8),
        Array("{".utf8), Array("}".utf8), Array("[".utf8), Array("\"".utf8), Array("\\u0000".utf8),
    ]

    /// The next input: a corpus entry with one to four mutations applied.
    public mutating func next() -> [UInt8] {
        var input = corpus[Int(random.next() % UInt64(corpus.count))]
        for _ in 0..<(1 + Int(random.next() % 4)) { mutate(&input) }
        if input.count > maxLength { input.removeLast(input.count - maxLength) }
        return input
    }

    private mutating func index(_ count: Int) -> Int { count == 0 ? 0 : Int(random.next() % UInt64(count)) }

    private mutating func mutate(_ input: inout [UInt8]) {
        switch random.next() % 9 {
        case 0 where !input.isEmpty:  // flip a bit
            let i = index(input.count)
            input[i] ^= UInt8(1) << UInt8(random.next() % 8)
        case 1 where !input.isEmpty:  // set a byte
            input[index(input.count)] = UInt8(truncatingIfNeeded: random.next())
        case 2:  // insert random bytes
            let n = 1 + index(16)
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            input.insert(contentsOf: bytes, at: index(input.count + 1))
        case 3 where !input.isEmpty:  // erase a run
            let start = index(input.count)
            let n = 1 + index(min(16, input.count - start))
            input.removeSubrange(start..<min(input.count, start + n))
        case 4:  // overwrite or insert an interesting value
            let value = Self.interesting[index(Self.interesting.count)]
            let at = index(input.count + 1)
            if random.next() % 2 == 0 || at + value.count > input.count {
                input.insert(contentsOf: value, at: at)
            } else {
                input.replaceSubrange(at..<(at + value.count), with: value)
            }
        case 5 where input.count > 1:  // copy a part elsewhere
            let from = index(input.count)
            let n = 1 + index(min(32, input.count - from))
            let part = Array(input[from..<(from + n)])
            input.insert(contentsOf: part, at: index(input.count + 1))
        case 6:  // splice with another corpus input
            let other = corpus[index(corpus.count)]
            let cut = index(input.count + 1), otherCut = index(other.count + 1)
            input = Array(input[..<cut]) + Array(other[otherCut...])
        case 7 where !input.isEmpty:  // add or subtract a small number from a byte
            let i = index(input.count)
            input[i] = input[i] &+ UInt8(truncatingIfNeeded: Int(random.next() % 70) - 35)
        case 8 where input.count > 1:  // truncate
            input.removeLast(index(input.count))
        default:
            input.append(UInt8(truncatingIfNeeded: random.next()))
        }
    }
}
