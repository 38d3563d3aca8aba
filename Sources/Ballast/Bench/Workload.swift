import ArgumentParser
import Primitives

/// The order in which the fill phase writes keys.
enum KeyOrder: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// A seeded shuffle of 0..<keys.
    case random
    /// 0..<keys in order.
    case sequential
}

/// Durability of each write: `always` waits for the data to reach the disk (LSM WAL fsync,
/// SQLite `synchronous=FULL`); `none` leaves it to the OS (SQLite `synchronous=OFF`).
enum BenchSyncMode: String, CaseIterable, ExpressibleByArgument, Sendable {
    case always
    case none
}

/// Where the store benchmark sends its writes.
enum BenchVia: String, CaseIterable, ExpressibleByArgument, Sendable {
    case local, etcd
}

/// Which engines a run measures.
enum EngineChoice: String, CaseIterable, ExpressibleByArgument, Sendable {
    case lsm, sqlite, all

    /// The engines in the order they run: Ballast's first, then the peer.
    var kinds: [EngineKind] {
        switch self {
        case .lsm: [.lsm]
        case .sqlite: [.sqlite]
        case .all: [.lsm, .sqlite]
        }
    }
}

enum EngineKind: String, Sendable {
    case lsm, sqlite
}

/// Everything that defines the workload; the same for every engine of a run.
struct StoreWorkload: Sendable {
    var keys: Int
    var keySize: Int
    var valueSize: Int
    var compressibility: Double
    var order: KeyOrder
    var batch: Int
    var writers: Int
    var sync: BenchSyncMode
    var reads: Int
    var seed: UInt64

    /// Bytes of user data per entry: key plus value.
    var entryBytes: Int { keySize + valueSize }

    /// The random prefix of each value; the rest of the value is zeros (db_bench's
    /// `--compression_ratio`): round(valueSize * (1 - compressibility)) bytes.
    var randomValueBytes: Int {
        Swift.min(valueSize, Swift.max(0, Int((Double(valueSize) * (1 - compressibility)).rounded())))
    }

    /// Decimal digits needed to print the largest key index.
    static func digits(_ n: UInt64) -> Int {
        var n = n, d = 1
        while n >= 10 { n /= 10; d += 1 }
        return d
    }

    /// The key indexes in fill order: a permutation of 0..<keys, shuffled (Fisher–Yates with
    /// a seeded SplitMix64) for `.random`. Built before any timing starts.
    func fillOrder() -> [UInt64] {
        var indexes = [UInt64](unsafeUninitializedCapacity: keys) { buffer, initialized in
            for i in 0..<keys { buffer[i] = UInt64(i) }
            initialized = keys
        }
        if order == .random && keys > 1 {
            var rng = SplitMix64(seed: seed)
            indexes.withUnsafeMutableBufferPointer { a in
                for i in stride(from: keys - 1, to: 0, by: -1) {
                    let j = Int(rng.next(below: UInt64(i + 1)))
                    a.swapAt(i, j)
                }
            }
        }
        return indexes
    }
}

/// Writes `index` as a zero-padded decimal of exactly `size` bytes ("0000000000000042").
/// The caller checks that `size` has room for every index of the run.
@inline(__always)
func renderKey(_ index: UInt64, into destination: UnsafeMutableRawPointer, size: Int) {
    let p = destination.assumingMemoryBound(to: UInt8.self)
    var v = index
    var i = size - 1
    while i >= 0 {
        p[i] = 0x30 &+ UInt8(truncatingIfNeeded: v % 10)
        v /= 10
        i -= 1
    }
}

/// Random bytes that value prefixes are copied from, generated once per run.
///
/// Each value is `randomLength` bytes taken at a random offset of the pool, then zeros up to
/// `valueSize`, so an LZ4 block sees as much redundancy as the compressibility asks for and no
/// more (the pool is large enough that repeats of a slice are rare within a block).
struct ValuePool: Sendable {
    let bytes: [UInt8]
    let randomLength: Int
    let valueSize: Int

    init(workload: StoreWorkload) {
        randomLength = workload.randomValueBytes
        valueSize = workload.valueSize
        let size = Swift.max(1 << 20, randomLength * 4)
        var rng = SplitMix64(seed: workload.seed ^ 0xA5A5_5A5A_0F0F_F0F0)
        bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            var i = 0
            while i < size {
                var word = rng.next()
                for _ in 0..<8 where i < size {
                    buffer[i] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    i += 1
                }
            }
            initialized = size
        }
    }

    /// Copies a random slice of the pool into the first `randomLength` bytes of `destination`.
    /// The remaining bytes of the value must already be zero: `BatchBuffer` never writes them.
    @inline(__always)
    func fillValue(_ destination: UnsafeMutableRawPointer, rng: inout SplitMix64) {
        guard randomLength > 0 else { return }
        let offset = Int(rng.next(below: UInt64(bytes.count - randomLength + 1)))
        bytes.withUnsafeBytes { pool in
            destination.copyMemory(from: pool.baseAddress! + offset, byteCount: randomLength)
        }
    }
}

/// Reusable memory for one writer thread's batches: `capacity` keys and values laid end to end.
/// Keys and values are rendered here before the clock starts; engines read them through
/// `BenchBatch`.
final class BatchBuffer {
    let keySize: Int
    let valueSize: Int
    let capacity: Int
    private let keys: UnsafeMutableRawPointer
    private let values: UnsafeMutableRawPointer
    private(set) var count = 0

    init(keySize: Int, valueSize: Int, capacity: Int) {
        self.keySize = keySize
        self.valueSize = valueSize
        self.capacity = capacity
        keys = .allocate(byteCount: Swift.max(1, keySize * capacity), alignment: 16)
        values = .allocate(byteCount: Swift.max(1, valueSize * capacity), alignment: 16)
        values.initializeMemory(as: UInt8.self, repeating: 0, count: Swift.max(1, valueSize * capacity))
    }

    deinit {
        keys.deallocate()
        values.deallocate()
    }

    /// Renders the keys `indexes` and a value for each into the buffer.
    func fill(_ indexes: ArraySlice<UInt64>, pool: ValuePool, rng: inout SplitMix64) {
        precondition(indexes.count <= capacity)
        var slot = 0
        for index in indexes {
            renderKey(index, into: keys + slot * keySize, size: keySize)
            pool.fillValue(values + slot * valueSize, rng: &rng)
            slot += 1
        }
        count = slot
    }

    var batch: BenchBatch {
        BenchBatch(keys: UnsafeRawPointer(keys), values: UnsafeRawPointer(values),
                   keySize: keySize, valueSize: valueSize, count: count)
    }
}

/// A view of one write batch: `count` keys and values, valid for the duration of one
/// `BenchWriter.write` call.
struct BenchBatch {
    let keys: UnsafeRawPointer
    let values: UnsafeRawPointer
    let keySize: Int
    let valueSize: Int
    let count: Int

    @inline(__always)
    func key(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: keys + i * keySize, count: keySize)
    }

    @inline(__always)
    func value(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: values + i * valueSize, count: valueSize)
    }
}
