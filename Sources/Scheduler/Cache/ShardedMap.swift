// A map from String keys split into shards by the key's hash, for the large maps of the state
// the cycles copy (nodes, claims, volumes, claim users). A copy of the state shares every shard;
// a change then copies the array of shards (32 references) and the one shard it touches, not
// the whole table. With a plain Dictionary each assume, while any cycle held a copy, copied the
// whole node map (500 entries in `bench scheduler`) and the claim users (one per placed claim,
// thousands), and each claim or volume event copied all the claims or volumes.
struct ShardedMap<Value: Sendable>: Sendable {
    private static var shardCount: Int { 32 }
    private var shards: [[String: Value]] = Array(repeating: [:], count: ShardedMap.shardCount)

    init() {}

    /// FNV-1a of the key's bytes: the shard is looked up beside the dictionary's own (seeded,
    /// SipHash) hashing of the key, and a second SipHash per lookup was 17% of a scheduling
    /// cycle (`state.nodes[name]` for hundreds of nodes per pod).
    @inline(__always)
    private static func shard(_ key: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in key.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash & UInt32(shardCount - 1))
    }

    subscript(key: String) -> Value? {
        get { shards[Self.shard(key)][key] }
        _modify { yield &shards[Self.shard(key)][key] }
        set { shards[Self.shard(key)][key] = newValue }
    }

    subscript(key: String, default defaultValue: @autoclosure () -> Value) -> Value {
        get { shards[Self.shard(key)][key] ?? defaultValue() }
        _modify { yield &shards[Self.shard(key)][key, default: defaultValue()] }
    }

    @discardableResult
    mutating func removeValue(forKey key: String) -> Value? { shards[Self.shard(key)].removeValue(forKey: key) }

    var count: Int { shards.reduce(0) { $0 + $1.count } }
    var isEmpty: Bool { shards.allSatisfy(\.isEmpty) }
    /// Every value, in no particular order.
    var values: [Value] { shards.flatMap(\.values) }
    /// Every key, in no particular order.
    var keys: [String] { shards.flatMap(\.keys) }
}
