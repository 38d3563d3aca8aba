// A Version is an immutable list of the live tables per level. The current
// version changes only by applying a VersionEdit logged in the MANIFEST;
// readers and iterators hold the version they started with, so the tables
// they read stay on disk until the last holder lets go (see FileMetaData).

/// One table file and what the engine knows about it without opening it.
final class FileMetaData: @unchecked Sendable {
    let number: UInt64
    let size: UInt64
    /// Smallest and largest internal keys in the table.
    let smallest: [UInt8]
    let largest: [UInt8]
    let properties: TableProperties
    /// Set (under the database lock) once an edit removes the file from the
    /// current version; runs when no version refers to the file any longer.
    var onObsolete: (@Sendable (UInt64) -> Void)?

    init(number: UInt64, size: UInt64, smallest: [UInt8], largest: [UInt8], properties: TableProperties) {
        self.number = number
        self.size = size
        self.smallest = smallest
        self.largest = largest
        self.properties = properties
    }

    deinit { onObsolete?(number) }

    var smallestUserKey: ArraySlice<UInt8> { smallest.userKeyPart }
    var largestUserKey: ArraySlice<UInt8> { largest.userKeyPart }

    /// Whether the user key lies within the table's key range.
    func contains(userKey: UnsafeRawBufferPointer) -> Bool {
        smallest.withUnsafeBytes { s in
            largest.withUnsafeBytes { l in
                compareBytes(UnsafeRawBufferPointer(rebasing: s[0..<(s.count - 8)]), userKey) <= 0
                    && compareBytes(UnsafeRawBufferPointer(rebasing: l[0..<(l.count - 8)]), userKey) >= 0
            }
        }
    }
}

final class Version: @unchecked Sendable {
    /// Level 0 is ordered newest first (its tables may overlap); levels 1...
    /// are sorted by key and never overlap in user keys.
    let levels: [[FileMetaData]]

    init(levels: [[FileMetaData]]) {
        self.levels = levels
    }

    func levelBytes(_ level: Int) -> UInt64 { levels[level].reduce(0) { $0 + $1.size } }

    var totalBytes: UInt64 { levels.indices.reduce(0) { $0 + levelBytes($1) } }

    /// Tables of `level` whose user-key range intersects [begin, end] (nil: unbounded).
    func overlapping(level: Int, begin: [UInt8]?, end: [UInt8]?) -> [FileMetaData] {
        levels[level].filter { f in
            if let end, compareBytes(Array(f.smallestUserKey), end) > 0 { return false }
            if let begin, compareBytes(Array(f.largestUserKey), begin) < 0 { return false }
            return true
        }
    }

    /// Index of the first table in a sorted level whose largest key is >= target.
    func findFile(level: Int, target: [UInt8]) -> Int {
        let files = levels[level]
        var lo = 0
        var hi = files.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareInternalKeys(files[mid].largest, target) < 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The newest version of `userKey` visible at `seq` in the tables.
    func get(_ userKey: [UInt8], seq: SequenceNumber, tableCache: TableCache) throws -> LookupResult {
        let target = makeInternalKey(userKey, seq, EntryKind.seek)
        return try userKey.withUnsafeBytes { uk -> LookupResult in
            for f in levels[0] where f.contains(userKey: uk) {
                let t = try tableCache.table(f.number)
                guard t.mayContain(uk) else { continue }
                let r = try t.get(target, userKey: uk)
                if case .notFound = r { continue }
                return r
            }
            for level in 1..<levels.count where !levels[level].isEmpty {
                let i = findFile(level: level, target: target)
                guard i < levels[level].count else { continue }
                let f = levels[level][i]
                guard f.contains(userKey: uk) else { continue }
                let t = try tableCache.table(f.number)
                guard t.mayContain(uk) else { continue }
                let r = try t.get(target, userKey: uk)
                if case .notFound = r { continue }
                return r
            }
            return .notFound
        }
    }

    /// Whether no level deeper than `level` may hold `userKey` (so a tombstone
    /// for it at `level` hides nothing and can be dropped).
    func isBaseLevel(for userKey: UnsafeRawBufferPointer, below level: Int) -> Bool {
        guard level + 1 < levels.count else { return true }
        for l in (level + 1)..<levels.count {
            let files = levels[l]
            var lo = 0
            var hi = files.count
            while lo < hi {
                let mid = (lo + hi) / 2
                let c = files[mid].largest.withUnsafeBytes {
                    compareBytes(UnsafeRawBufferPointer(rebasing: $0[0..<($0.count - 8)]), userKey)
                }
                if c < 0 { lo = mid + 1 } else { hi = mid }
            }
            if lo < files.count && files[lo].contains(userKey: userKey) { return false }
        }
        return true
    }

    /// Applies an edit, checking that it removes only tables this version has
    /// and keeps levels 1... sorted and non-overlapping.
    func applying(_ edit: VersionEdit, name: String) throws -> Version {
        var levels = self.levels
        for (level, number) in edit.deletedFiles {
            guard level < levels.count, let i = levels[level].firstIndex(where: { $0.number == number }) else {
                throw LSMError.corruption(name, "an edit deletes table \(number) from level \(level), which does not hold it")
            }
            levels[level].remove(at: i)
        }
        for (level, f) in edit.newFiles {
            guard level < levels.count else {
                throw LSMError.corruption(name, "an edit adds table \(f.number) to level \(level), beyond the last level")
            }
            levels[level].append(f)
        }
        levels[0].sort { $0.number > $1.number }
        for l in 1..<levels.count {
            levels[l].sort { compareInternalKeys($0.smallest, $1.smallest) < 0 }
            for i in levels[l].indices.dropFirst() where compareUserKeysOfInternal(levels[l][i - 1].largest, levels[l][i].smallest) >= 0 {
                throw LSMError.corruption(name, "tables \(levels[l][i - 1].number) and \(levels[l][i].number) overlap in level \(l)")
            }
        }
        return Version(levels: levels)
    }
}

/// A change to the set of live tables and to the store's counters, logged as
/// one MANIFEST record:
///
///   a sequence of | tag varint | fields |:
///   1 format version u32-varint · 2 log number · 3 next file number ·
///   4 last sequence · 5 compact pointer (level, key) · 6 deleted table
///   (level, number) · 7 new table (level, number, size, smallest, largest,
///   properties)
struct VersionEdit {
    var formatVersion: UInt32?
    var logNumber: UInt64?
    var nextFileNumber: UInt64?
    var lastSequence: UInt64?
    var compactPointers: [(Int, [UInt8])] = []
    var deletedFiles: [(Int, UInt64)] = []
    var newFiles: [(Int, FileMetaData)] = []

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        if let v = formatVersion { out.appendVarint(1); out.appendVarint(UInt64(v)) }
        if let v = logNumber { out.appendVarint(2); out.appendVarint(v) }
        if let v = nextFileNumber { out.appendVarint(3); out.appendVarint(v) }
        if let v = lastSequence { out.appendVarint(4); out.appendVarint(v) }
        for (level, key) in compactPointers {
            out.appendVarint(5); out.appendVarint(UInt64(level)); out.appendLengthPrefixed(key)
        }
        for (level, number) in deletedFiles {
            out.appendVarint(6); out.appendVarint(UInt64(level)); out.appendVarint(number)
        }
        for (level, f) in newFiles {
            out.appendVarint(7); out.appendVarint(UInt64(level)); out.appendVarint(f.number); out.appendVarint(f.size)
            out.appendLengthPrefixed(f.smallest); out.appendLengthPrefixed(f.largest)
            out.appendLengthPrefixed(f.properties.encode())
        }
        return out
    }

    static func decode(_ bytes: [UInt8], name: String) throws -> VersionEdit {
        var e = VersionEdit()
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            func bad(_ what: String) -> LSMError { LSMError.corruption(name, "bad version edit: \(what)") }
            while !r.isAtEnd {
                guard let tag = r.varint() else { throw bad("truncated tag") }
                switch tag {
                case 1:
                    guard let v = r.varint(), v <= UInt64(UInt32.max) else { throw bad("format version") }
                    e.formatVersion = UInt32(v)
                    // A newer format may reshape any field: stop here and let the caller refuse it.
                    if v > UInt64(lsmFormatVersion) { return }
                case 2: guard let v = r.varint() else { throw bad("log number") }; e.logNumber = v
                case 3: guard let v = r.varint() else { throw bad("next file number") }; e.nextFileNumber = v
                case 4: guard let v = r.varint() else { throw bad("last sequence") }; e.lastSequence = v
                case 5:
                    guard let l = r.varint32(), let k = r.lengthPrefixed() else { throw bad("compact pointer") }
                    e.compactPointers.append((l, k))
                case 6:
                    guard let l = r.varint32(), let n = r.varint() else { throw bad("deleted table") }
                    e.deletedFiles.append((l, n))
                case 7:
                    guard let l = r.varint32(), let n = r.varint(), let size = r.varint(),
                          let s = r.lengthPrefixed(), let g = r.lengthPrefixed(), s.count >= 8, g.count >= 8,
                          let p = r.lengthPrefixed(), let props = TableProperties.decode(p)
                    else { throw bad("new table") }
                    e.newFiles.append((l, FileMetaData(number: n, size: size, smallest: s, largest: g, properties: props)))
                default:
                    // A newer format may add tags: say so rather than "corrupt".
                    if let v = e.formatVersion, v > lsmFormatVersion {
                        throw LSMError(.newerFormat, "\(name) uses store format \(v); this build reads up to \(lsmFormatVersion): upgrade Ballast to open it; nothing was changed")
                    }
                    throw bad("unknown tag \(tag)")
                }
            }
        }
        return e
    }
}
