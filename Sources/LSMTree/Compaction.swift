// Leveled compaction. Level 0 holds flushed memtables (tables may overlap);
// levels 1...n hold sorted runs of non-overlapping tables, each level
// `levelMultiplier` times larger than the one above. A compaction merges
// tables of level L with the overlapping tables of L+1 and writes new tables
// to L+1, dropping what no reader can see any more:
//
//  - an older version of a key, when a newer version is visible to every
//    open snapshot (its sequence is <= the oldest snapshot);
//  - a tombstone visible to every snapshot, when no deeper level may hold
//    the key (it hides nothing);
//  - what the `CompactionFilter` declares dead. The filter is asked only
//    about the newest version of a key, and only when no open snapshot can
//    see that version (its sequence is above the newest snapshot), so a
//    snapshot never loses what it reads. A filtered version is dropped when
//    no snapshot needs anything older and no deeper level may hold the key;
//    otherwise it becomes a tombstone, so older versions stay hidden.
//
// Worked example, oldest snapshot 10, key "a" with versions 12 (put), 9
// (delete), 5 (put): 12 is kept (newest); 9 is kept (the newest version
// visible at snapshot 10; at the bottom level with no snapshot it would go
// too); 5 is dropped (9 hides it from everyone).

/// Decides entry by entry (in internal-key order) what a flush or compaction keeps.
struct EntryFilter {
    enum Decision { case keep, drop, keepAsDeletion }

    let smallestSnapshot: SequenceNumber
    /// The newest open snapshot (0: none): the filter is asked only above it.
    let filterFloor: SequenceNumber
    let filter: (any CompactionFilter)?
    /// Whether no deeper level may hold the key; nil: never drop tombstones (flushes).
    let isBaseLevel: ((UnsafeRawBufferPointer) -> Bool)?
    private var currentKey: [UInt8] = []
    private var hasCurrent = false
    /// Sequence of the previous entry of the current key; UInt64.max (above any sequence) before the first.
    private var lastSequenceForKey = UInt64.max

    init(smallestSnapshot: SequenceNumber, filterFloor: SequenceNumber = 0, filter: (any CompactionFilter)?,
         isBaseLevel: ((UnsafeRawBufferPointer) -> Bool)?) {
        self.smallestSnapshot = smallestSnapshot
        self.filterFloor = filterFloor
        self.filter = filter
        self.isBaseLevel = isBaseLevel
    }

    mutating func decide(userKey: UnsafeRawBufferPointer, trailer: UInt64, value: UnsafeRawBufferPointer) -> Decision {
        var first = false
        if !hasCurrent || currentKey.withUnsafeBytes({ compareBytes($0, userKey) }) != 0 {
            currentKey.removeAll(keepingCapacity: true)
            currentKey.append(contentsOf: userKey)
            hasCurrent = true
            lastSequenceForKey = .max
            first = true
        }
        let seq = trailerSequence(trailer)
        defer { lastSequenceForKey = seq }
        if lastSequenceForKey <= smallestSnapshot { return .drop }
        let kind = trailerKind(trailer)
        if kind == EntryKind.deletion.rawValue {
            if seq <= smallestSnapshot, let isBaseLevel, isBaseLevel(userKey) { return .drop }
            return .keep
        }
        if first, seq > filterFloor, let filter, filter.shouldDrop(key: userKey, value: value) {
            if seq <= smallestSnapshot, let isBaseLevel, isBaseLevel(userKey) { return .drop }
            return .keepAsDeletion
        }
        return .keep
    }
}

struct Compaction {
    let level: Int
    let outputLevel: Int
    /// Tables from `level`, then tables from `outputLevel` when it differs.
    let inputs: [FileMetaData]
    let nextInputs: [FileMetaData]
    let version: Version
    let smallestSnapshot: SequenceNumber
    let newestSnapshot: SequenceNumber

    var isTrivialMove: Bool {
        level > 0 && level != outputLevel && inputs.count == 1 && nextInputs.isEmpty
    }

    var allInputs: [FileMetaData] { inputs + nextInputs }
    var inputBytes: UInt64 { allInputs.reduce(0) { $0 + $1.size } }
}

/// A `compactRange` request, worked through level by level by the compaction thread.
final class ManualCompaction {
    let begin: [UInt8]?
    let end: [UInt8]?
    var level = 0
    var produced: Set<UInt64> = []
    var done = false
    var error: LSMError?

    init(begin: [UInt8]?, end: [UInt8]?) {
        self.begin = begin
        self.end = end
    }
}

extension LSMTree {
    func maxBytes(forLevel level: Int) -> Double {
        var b = Double(options.levelBaseBytes)
        if level > 1 { for _ in 2...level { b *= Double(options.levelMultiplier) } }
        return b
    }

    /// Whether some level is over its target. Lock held.
    func needsCompaction() -> Bool {
        let v = versions.current
        if v.levels[0].count >= options.level0CompactionTrigger { return true }
        for level in 1..<(options.maxLevels - 1) where Double(v.levelBytes(level)) >= maxBytes(forLevel: level) {
            return true
        }
        return false
    }

    /// The user-key range covered by `files`.
    private func range(of files: [FileMetaData]) -> ([UInt8], [UInt8]) {
        var lo = Array(files[0].smallestUserKey)
        var hi = Array(files[0].largestUserKey)
        for f in files.dropFirst() {
            let s = Array(f.smallestUserKey)
            let l = Array(f.largestUserKey)
            if compareBytes(s, lo) < 0 { lo = s }
            if compareBytes(l, hi) > 0 { hi = l }
        }
        return (lo, hi)
    }

    private func makeCompaction(_ v: Version, level: Int, outputLevel: Int, inputs: [FileMetaData]) -> Compaction {
        let (lo, hi) = range(of: inputs)
        let next = outputLevel == level ? [] : v.overlapping(level: outputLevel, begin: lo, end: hi)
        return Compaction(level: level, outputLevel: outputLevel, inputs: inputs, nextInputs: next, version: v,
                          smallestSnapshot: snapshots.oldest(otherwise: versions.lastSequence),
                          newestSnapshot: snapshots.newest())
    }

    /// Picks the next compaction: a pending manual one first, else the level
    /// furthest over its target. Lock held.
    func pickCompaction() -> Compaction? {
        let v = versions.current
        if let m = manualCompaction, !m.done {
            if let c = pickManual(m, v) { return c }
            m.done = true
            backgroundDone.broadcast()
        }
        var bestLevel = -1
        var bestScore = 1.0
        let l0 = Double(v.levels[0].count) / Double(options.level0CompactionTrigger)
        if l0 >= bestScore { bestLevel = 0; bestScore = l0 }
        for level in 1..<(options.maxLevels - 1) {
            let s = Double(v.levelBytes(level)) / maxBytes(forLevel: level)
            if s > bestScore { bestLevel = level; bestScore = s }
        }
        guard bestLevel >= 0 else { return nil }
        if bestLevel == 0 {
            return makeCompaction(v, level: 0, outputLevel: 1, inputs: v.levels[0])
        }
        // Round robin through the level, so every key range gets its turn.
        let files = v.levels[bestLevel]
        let pointer = versions.compactPointers[bestLevel]
        let pick = files.first { pointer.isEmpty || compareInternalKeys($0.largest, pointer) > 0 } ?? files[0]
        return makeCompaction(v, level: bestLevel, outputLevel: bestLevel + 1, inputs: [pick])
    }

    private func pickManual(_ m: ManualCompaction, _ v: Version) -> Compaction? {
        let deepest = v.levels.lastIndex { !$0.isEmpty } ?? 0
        let bottom = max(deepest, 1)
        while m.level < bottom {
            var files = v.overlapping(level: m.level, begin: m.begin, end: m.end)
            if files.isEmpty {
                m.level += 1
                continue
            }
            // Level-0 tables overlap each other: moving some of them below an older,
            // overlapping one would let its stale versions shadow newer ones. Take them all.
            if m.level == 0 { files = v.levels[0] }
            return makeCompaction(v, level: m.level, outputLevel: m.level + 1, inputs: files)
        }
        if m.level == bottom {
            // Rewrite the bottom level's other tables in place, so the filter and tombstone rules reach them too.
            let files = v.overlapping(level: bottom, begin: m.begin, end: m.end).filter { !m.produced.contains($0.number) }
            m.level += 1
            if !files.isEmpty { return makeCompaction(v, level: bottom, outputLevel: bottom, inputs: files) }
        }
        return nil
    }

    /// Runs a compaction and installs its result. No lock held.
    func runCompaction(_ c: Compaction) throws -> [FileMetaData] {
        var edit = VersionEdit()
        if let last = c.inputs.last, c.level > 0 { edit.compactPointers.append((c.level, last.largest)) }
        if c.isTrivialMove {
            let f = c.inputs[0]
            edit.deletedFiles.append((c.level, f.number))
            edit.newFiles.append((c.outputLevel, f))
            try manifestLock.withLock { try versions.logAndApply(edit, dbLock: lock) }
            return [f]
        }
        var iterators: [any InternalIterator] = []
        for f in c.allInputs { iterators.append(try tableCache.table(f.number).makeIterator()) }
        let merged = MergingIterator(iterators, reverse: false)
        try merged.seekToFirst()
        let version = c.version
        let outputLevel = c.outputLevel
        var entries = EntryFilter(smallestSnapshot: c.smallestSnapshot, filterFloor: c.newestSnapshot, filter: options.compactionFilter,
                                  isBaseLevel: { version.isBaseLevel(for: $0, below: outputLevel) })
        let writer = TableSetWriter(db: self, splitAt: options.targetFileSize)
        do {
            var steps = 0
            while merged.isValid {
                steps += 1
                if steps % 4096 == 0, lock.withLock({ shuttingDown }) {
                    throw LSMError(.closed, "compaction interrupted: the store is closing")
                }
                let key = merged.key
                let value = merged.value
                try key.withUnsafeBytes { k in
                    let uk = UnsafeRawBufferPointer(rebasing: k[0..<(k.count - 8)])
                    let trailer = loadFixed64(k.baseAddress! + k.count - 8)
                    try value.withUnsafeBytes { v in
                        switch entries.decide(userKey: uk, trailer: trailer, value: v) {
                        case .drop: break
                        case .keep: try writer.add(userKey: uk, trailer: trailer, value: v)
                        case .keepAsDeletion:
                            try writer.add(userKey: uk, trailer: packTrailer(trailerSequence(trailer), EntryKind.deletion.rawValue),
                                           value: UnsafeRawBufferPointer(start: nil, count: 0))
                        }
                    }
                }
                try merged.next()
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        for f in c.inputs { edit.deletedFiles.append((c.level, f.number)) }
        for f in c.nextInputs { edit.deletedFiles.append((c.outputLevel, f.number)) }
        for f in writer.outputs { edit.newFiles.append((c.outputLevel, f)) }
        // Not abandoned when this fails: the manifest may hold the edit (a record written whose
        // sync failed), and then the outputs are the data. A table no manifest names is deleted
        // at the next open.
        try manifestLock.withLock { try versions.logAndApply(edit, dbLock: lock) }
        lock.withLock {
            stats.compactions += 1
            stats.compactionBytesRead += c.inputBytes
            stats.compactionBytesWritten += writer.outputs.reduce(0) { $0 + $1.size }
        }
        return writer.outputs
    }

    /// Writes a frozen memtable to one level-0 table; nil when every entry was dropped.
    func writeLevel0Table(_ table: MemTable, smallestSnapshot: SequenceNumber) throws -> FileMetaData? {
        let it = table.makeIterator()
        it.seekToFirst()
        var entries = EntryFilter(smallestSnapshot: smallestSnapshot, filter: nil, isBaseLevel: nil)
        let writer = TableSetWriter(db: self, splitAt: .max)
        do {
            while it.isValid {
                let trailer = it.currentTrailer
                let key = it.userKeyBytes
                let value = it.valueBytes
                if entries.decide(userKey: key, trailer: trailer, value: value) == .keep {
                    try writer.add(userKey: key, trailer: trailer, value: value)
                }
                it.next()
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        let f = writer.outputs.first
        lock.withLock {
            stats.flushes += 1
            stats.flushBytesWritten += f?.size ?? 0
        }
        return f
    }
}

/// Writes a sorted stream of entries into tables of about `splitAt` bytes,
/// splitting only between user keys so that no key spans two tables.
final class TableSetWriter {
    private unowned let db: LSMTree
    private let splitAt: Int
    private var builder: TableBuilder?
    private var number: UInt64 = 0
    private var lastUserKey: [UInt8] = []
    private(set) var outputs: [FileMetaData] = []

    init(db: LSMTree, splitAt: Int) {
        self.db = db
        self.splitAt = splitAt
    }

    func add(userKey: UnsafeRawBufferPointer, trailer: UInt64, value: UnsafeRawBufferPointer) throws {
        if let b = builder, b.estimatedFileSize >= splitAt,
           lastUserKey.withUnsafeBytes({ compareBytes($0, userKey) }) != 0 {
            try finishTable()
        }
        if builder == nil {
            number = db.lock.withLock { db.versions.newFileNumber() }
            builder = try TableBuilder(path: tableFileName(db.path, number), options: TableBuildOptions(
                blockSize: db.options.blockSize, restartInterval: db.options.blockRestartInterval,
                bloomBitsPerKey: db.options.bloomBitsPerKey, compression: db.options.compression))
        }
        try builder!.add(userKey: userKey, trailer: trailer, value: value)
        lastUserKey.removeAll(keepingCapacity: true)
        lastUserKey.append(contentsOf: userKey)
    }

    private func finishTable() throws {
        guard let b = builder else { return }
        builder = nil
        let size: Int
        do {
            size = try b.finish()
        } catch {
            b.abandon()   // neither the builder nor the outputs hold it now: abandon() would miss it
            throw error
        }
        outputs.append(FileMetaData(number: number, size: UInt64(size), smallest: b.smallestKey,
                                    largest: b.largestKey, properties: b.properties))
    }

    func finish() throws { try finishTable() }

    /// Deletes every table this writer produced (after a failure).
    func abandon() {
        builder?.abandon()
        builder = nil
        for f in outputs { FileIO.unlinkIfPresent(tableFileName(db.path, f.number)) }
        outputs.removeAll()
    }
}
