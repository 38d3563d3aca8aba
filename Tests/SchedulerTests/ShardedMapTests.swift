// The sharded map behind the state's large maps: a dictionary's semantics, and copies that keep
// their view while the original changes.
@testable import Scheduler
import Testing

@Suite struct ShardedMapTests {
    @Test func behavesAsADictionary() {
        var map = ShardedMap<Int>()
        #expect(map.isEmpty && map.count == 0 && map["a"] == nil)
        for index in 0..<1000 { map["key-\(index)"] = index }
        #expect(map.count == 1000 && !map.isEmpty)
        #expect(map["key-7"] == 7 && map["key-999"] == 999 && map["key-1000"] == nil)
        map["key-7", default: 0] += 10
        map["fresh", default: 5] += 1
        #expect(map["key-7"] == 17 && map["fresh"] == 6)
        map["key-8"]? += 1
        map["absent"]? += 1
        #expect(map["key-8"] == 9 && map["absent"] == nil)
        #expect(map.removeValue(forKey: "key-9") == 9 && map.removeValue(forKey: "key-9") == nil)
        map["key-10"] = nil
        #expect(map.count == 999)
        #expect(Set(map.keys).count == 999 && map.values.reduce(0, +) == (0..<1000).reduce(0, +) + 10 + 1 + 6 - 9 - 10)
    }

    @Test func copiesAreIndependent() {
        var map = ShardedMap<[String]>()
        for index in 0..<100 { map["k\(index)"] = ["v\(index)"] }
        let copy = map
        map["k1", default: []].append("changed")
        map["k2"] = nil
        map["new"] = ["n"]
        #expect(map["k1"] == ["v1", "changed"] && map["k2"] == nil && map["new"] == ["n"] && map.count == 100)
        #expect(copy["k1"] == ["v1"] && copy["k2"] == ["v2"] && copy["new"] == nil && copy.count == 100)
    }
}
