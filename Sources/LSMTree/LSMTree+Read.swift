// The read path. A read takes, under the lock, the memtables, the current
// version and the sequence number to read at; then it searches without the
// lock: memtable, frozen memtables newest first, level-0 tables newest first,
// then one table per deeper level (bloom filter first).

struct ReadView {
    let mem: MemTable
    let imm: [MemTable]
    let version: Version
    let sequence: SequenceNumber
}

extension LSMTree {
    func readView(at snapshot: Snapshot?) throws -> ReadView {
        try lock.withLock {
            if closed { throw LSMError(.closed, "the store at \(path) is closed") }
            return ReadView(mem: mem, imm: imm, version: versions.current,
                            sequence: snapshot?.sequence ?? versions.lastSequence)
        }
    }

    /// The value of `key`, or nil when absent, as of `snapshot` (default: now).
    public func get(_ key: [UInt8], snapshot: Snapshot? = nil) throws -> [UInt8]? {
        let view = try readView(at: snapshot)
        let r: LookupResult = key.withUnsafeBytes { k in
            let m = view.mem.get(k, seq: view.sequence)
            if case .notFound = m {} else { return m }
            for t in view.imm.reversed() {
                let r = t.get(k, seq: view.sequence)
                if case .notFound = r {} else { return r }
            }
            return .notFound
        }
        switch r {
        case .found(let v): return v
        case .deleted: return nil
        case .notFound:
            if case .found(let v) = try view.version.get(key, seq: view.sequence, tableCache: tableCache) { return v }
            return nil
        }
    }

    /// A read view that stays consistent until released (by dropping the object).
    public func snapshot() -> Snapshot {
        lock.withLock { Snapshot(sequence: versions.lastSequence, list: snapshots) }
    }

    /// Iterates keys in [lowerBound, upperBound) (nil: unbounded), ascending or,
    /// with `reverse`, descending, as of `snapshot` (default: now). The
    /// iterator sees a consistent state even while writes and compactions go on.
    public func makeIterator(
        from lowerBound: [UInt8]? = nil, to upperBound: [UInt8]? = nil,
        reverse: Bool = false, snapshot: Snapshot? = nil
    ) throws -> LSMIterator {
        let view = try readView(at: snapshot)
        var children: [any InternalIterator] = [view.mem.makeIterator()]
        for t in view.imm.reversed() { children.append(t.makeIterator()) }
        for f in view.version.levels[0] { children.append(try tableCache.table(f.number).makeIterator()) }
        for level in 1..<view.version.levels.count where !view.version.levels[level].isEmpty {
            children.append(LevelIterator(files: view.version.levels[level], tableCache: tableCache))
        }
        let merged = MergingIterator(children, reverse: reverse)
        return LSMIterator(merged: merged, view: view, snapshot: snapshot,
                           lowerBound: lowerBound, upperBound: upperBound, reverse: reverse)
    }
}

/// Iterates user keys and values at one sequence number, hiding older
/// versions and deleted keys. Not thread-safe: one iterator per task.
public final class LSMIterator {
    private let merged: MergingIterator
    private let view: ReadView
    private let snapshot: Snapshot?
    private let lowerBound: [UInt8]?
    private let upperBound: [UInt8]?
    private let reverse: Bool
    private var started = false
    private var finished = false

    init(merged: MergingIterator, view: ReadView, snapshot: Snapshot?,
         lowerBound: [UInt8]?, upperBound: [UInt8]?, reverse: Bool) {
        self.merged = merged
        self.view = view
        self.snapshot = snapshot
        self.lowerBound = lowerBound
        self.upperBound = upperBound
        self.reverse = reverse
    }

    private func start() throws {
        started = true
        if reverse {
            if let upperBound {
                try merged.seekForPrev(makeInternalKey(upperBound, maxSequenceNumber, EntryKind.seek))
            } else {
                try merged.seekToLast()
            }
        } else {
            if let lowerBound {
                try merged.seek(makeInternalKey(lowerBound, maxSequenceNumber, EntryKind.seek))
            } else {
                try merged.seekToFirst()
            }
        }
    }

    /// The next key and value, or nil at the end of the range.
    public func next() throws -> (key: [UInt8], value: [UInt8])? {
        if finished { return nil }
        if !started { try start() }
        let r = reverse ? try nextReverse() : try nextForward()
        if r == nil { finished = true }
        return r
    }

    private func nextForward() throws -> (key: [UInt8], value: [UInt8])? {
        let seq = view.sequence
        while merged.isValid {
            let ikey = merged.key
            let trailer = ikey.trailer
            if let upperBound, compareUserKey(ofInternal: ikey, with: upperBound) >= 0 { return nil }
            if trailerSequence(trailer) > seq {
                try merged.next()
                continue
            }
            let userKey = Array(ikey.userKeyPart)
            let isValue = trailerKind(trailer) == EntryKind.value.rawValue
            let value = isValue ? merged.value : []
            // Skip the older versions of this key.
            try merged.next()
            while merged.isValid && userKeysEqual(merged.key, userKey) { try merged.next() }
            if isValue { return (userKey, value) }
        }
        return nil
    }

    private func nextReverse() throws -> (key: [UInt8], value: [UInt8])? {
        let seq = view.sequence
        while merged.isValid {
            let userKey = Array(merged.key.userKeyPart)
            if let lowerBound, compareBytes(userKey, lowerBound) < 0 { return nil }
            // Going backwards, a key's versions arrive oldest first: the last visible one wins.
            var newest: (isValue: Bool, value: [UInt8])?
            while merged.isValid {
                let ikey = merged.key
                guard userKeysEqual(ikey, userKey) else { break }
                let trailer = ikey.trailer
                if trailerSequence(trailer) <= seq {
                    let isValue = trailerKind(trailer) == EntryKind.value.rawValue
                    newest = (isValue, isValue ? merged.value : [])
                }
                try merged.prev()
            }
            if let newest, newest.isValue { return (userKey, newest.value) }
        }
        return nil
    }
}

/// Concatenates the sorted, non-overlapping tables of one level, opening each
/// only when the iteration reaches it.
final class LevelIterator: InternalIterator {
    private let files: [FileMetaData]
    private let tableCache: TableCache
    private var index = 0
    private var table: TableIterator?

    init(files: [FileMetaData], tableCache: TableCache) {
        self.files = files
        self.tableCache = tableCache
    }

    var isValid: Bool { table?.isValid ?? false }
    var key: [UInt8] { table!.key }
    var value: [UInt8] { table!.value }

    private func open(_ i: Int) throws {
        index = i
        table = (i >= 0 && i < files.count) ? try tableCache.table(files[i].number).makeIterator() : nil
    }

    private func skipForward() throws {
        while let t = table, !t.isValid {
            try open(index + 1)
            try table?.seekToFirst()
        }
    }

    private func skipBackward() throws {
        while let t = table, !t.isValid {
            try open(index - 1)
            try table?.seekToLast()
        }
    }

    func seekToFirst() throws {
        try open(0)
        try table?.seekToFirst()
        try skipForward()
    }

    func seekToLast() throws {
        try open(files.count - 1)
        try table?.seekToLast()
        try skipBackward()
    }

    func seek(_ target: [UInt8]) throws {
        var lo = 0
        var hi = files.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareInternalKeys(files[mid].largest, target) < 0 { lo = mid + 1 } else { hi = mid }
        }
        try open(lo)
        try table?.seek(target)
        try skipForward()
    }

    func seekForPrev(_ target: [UInt8]) throws {
        // The last table whose smallest key is <= target.
        var lo = 0
        var hi = files.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareInternalKeys(files[mid].smallest, target) <= 0 { lo = mid + 1 } else { hi = mid }
        }
        try open(lo - 1)
        try table?.seekForPrev(target)
        try skipBackward()
    }

    func next() throws {
        try table!.next()
        try skipForward()
    }

    func prev() throws {
        try table!.prev()
        try skipBackward()
    }
}
