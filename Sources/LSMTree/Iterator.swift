// Internal iterators walk internal keys (user key + trailer) in sorted order
// over one source: a memtable, a block, a table, a level, or a merge of them.
// The public `LSMIterator` sits on a merging iterator and turns versions and
// tombstones into the user's view at one sequence number.

/// An iterator over internal keys. `seek` positions at the first entry at or
/// after the target, `seekForPrev` at the last entry at or before it.
protocol InternalIterator: AnyObject {
    var isValid: Bool { get }
    /// The current internal key. Only when `isValid`.
    var key: [UInt8] { get }
    /// The current value. Only when `isValid`.
    var value: [UInt8] { get }
    func seekToFirst() throws
    func seekToLast() throws
    func seek(_ target: [UInt8]) throws
    func seekForPrev(_ target: [UInt8]) throws
    func next() throws
    func prev() throws
}

/// Merges child iterators into one sorted stream, in one direction chosen at
/// construction (forward: min-heap on key; reverse: max-heap). Duplicated
/// internal keys cannot occur: every write has its own sequence number.
final class MergingIterator: InternalIterator {
    private let children: [any InternalIterator]
    private let reverse: Bool
    private var heap: [Int] = []
    private var keys: [[UInt8]]

    init(_ children: [any InternalIterator], reverse: Bool) {
        self.children = children
        self.reverse = reverse
        self.keys = Array(repeating: [], count: children.count)
    }

    var isValid: Bool { !heap.isEmpty }
    var key: [UInt8] { keys[heap[0]] }
    var value: [UInt8] { children[heap[0]].value }

    @inline(__always)
    private func before(_ a: Int, _ b: Int) -> Bool {
        let c = compareInternalKeys(keys[a], keys[b])
        return reverse ? c > 0 : c < 0
    }

    private func rebuild() {
        heap.removeAll(keepingCapacity: true)
        for i in children.indices where children[i].isValid {
            keys[i] = children[i].key
            heap.append(i)
        }
        if heap.count > 1 {
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    private func siftDown(_ start: Int) {
        var i = start
        let n = heap.count
        while true {
            let l = 2 * i + 1
            if l >= n { return }
            var m = l
            if l + 1 < n && before(heap[l + 1], heap[l]) { m = l + 1 }
            if before(heap[m], heap[i]) {
                heap.swapAt(i, m)
                i = m
            } else {
                return
            }
        }
    }

    func seekToFirst() throws {
        precondition(!reverse)
        for c in children { try c.seekToFirst() }
        rebuild()
    }

    func seekToLast() throws {
        precondition(reverse)
        for c in children { try c.seekToLast() }
        rebuild()
    }

    func seek(_ target: [UInt8]) throws {
        precondition(!reverse)
        for c in children { try c.seek(target) }
        rebuild()
    }

    func seekForPrev(_ target: [UInt8]) throws {
        precondition(reverse)
        for c in children { try c.seekForPrev(target) }
        rebuild()
    }

    private func advanceTop() throws {
        let top = heap[0]
        let child = children[top]
        if reverse { try child.prev() } else { try child.next() }
        if child.isValid {
            keys[top] = child.key
        } else {
            heap[0] = heap[heap.count - 1]
            heap.removeLast()
        }
        if !heap.isEmpty { siftDown(0) }
    }

    func next() throws {
        precondition(!reverse)
        try advanceTop()
    }

    func prev() throws {
        precondition(reverse)
        try advanceTop()
    }
}

/// An iterator over nothing.
final class EmptyIterator: InternalIterator {
    var isValid: Bool { false }
    var key: [UInt8] { [] }
    var value: [UInt8] { [] }
    func seekToFirst() {}
    func seekToLast() {}
    func seek(_ target: [UInt8]) {}
    func seekForPrev(_ target: [UInt8]) {}
    func next() {}
    func prev() {}
}
