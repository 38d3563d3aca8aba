// The VersionSet owns the MANIFEST: a log (WAL framing) of VersionEdits whose
// first record is a snapshot of the whole version. CURRENT names the live
// MANIFEST and is replaced atomically (write CURRENT.tmp, fsync, rename,
// fsync the directory), so a crash leaves either the old or the new manifest
// in force. Each open starts a new manifest; a manifest that grows past
// `manifestRollBytes` is replaced the same way.

let lsmFormatVersion: UInt32 = 1

final class VersionSet: @unchecked Sendable {
    let directory: String
    let maxLevels: Int
    /// Guarded by the database lock.
    private(set) var current: Version
    var nextFileNumber: UInt64 = 2
    var lastSequence: SequenceNumber = 0
    /// WAL segments numbered below this are flushed and obsolete.
    private(set) var logNumber: UInt64 = 0
    private(set) var compactPointers: [[UInt8]]
    private var manifest: LogWriter?
    private(set) var manifestNumber: UInt64 = 0
    private let manifestRollBytes = 8 << 20

    init(directory: String, maxLevels: Int) {
        self.directory = directory
        self.maxLevels = maxLevels
        current = Version(levels: Array(repeating: [], count: maxLevels))
        compactPointers = Array(repeating: [], count: maxLevels)
    }

    /// Makes `number` (a file found on disk) used: no later allocation returns it.
    func markFileNumberUsed(_ number: UInt64) {
        nextFileNumber = max(nextFileNumber, number + 1)
    }

    /// Allocates a file number (under the database lock).
    func newFileNumber() -> UInt64 {
        defer { nextFileNumber += 1 }
        return nextFileNumber
    }

    /// Reads CURRENT and the manifest it names. Modifies nothing.
    func recover() throws {
        let currentPath = directory + "/CURRENT"
        let name = String(decoding: try FileIO.readWholeFile(currentPath), as: UTF8.self)
        guard name.hasSuffix("\n"), name.hasPrefix("MANIFEST-"),
              let number = UInt64(name.dropFirst("MANIFEST-".count).dropLast())
        else {
            throw LSMError(.notAStore, "\(currentPath) does not name a manifest: \(directory) is not a Ballast store (or its CURRENT file is damaged); point Ballast at a store directory or an empty one")
        }
        let path = manifestFileName(directory, number)
        guard FileIO.exists(path) else {
            throw LSMError.corruption(path, "CURRENT names this manifest but it is missing")
        }
        let log = try LogReader.read(path: path, number: number)
        guard let first = log.records.first else {
            throw LSMError.corruption(path, "the manifest holds no records")
        }
        let firstEdit = try VersionEdit.decode(first, name: path)
        guard let format = firstEdit.formatVersion else {
            throw LSMError.corruption(path, "the manifest does not start with a format version")
        }
        guard format <= lsmFormatVersion else {
            throw LSMError(.newerFormat, "\(directory) was written by a newer Ballast (store format \(format); this build reads up to \(lsmFormatVersion)): upgrade Ballast to open it; nothing was changed")
        }
        var version = Version(levels: Array(repeating: [], count: maxLevels))
        for record in log.records {
            let edit = try VersionEdit.decode(record, name: path)
            for (level, _) in edit.newFiles where level >= maxLevels {
                throw LSMError(.invalidArgument, "\(path) has tables in level \(level) but maxLevels is \(maxLevels): open with maxLevels >= \(level + 1)")
            }
            version = try version.applying(edit, name: path)
            apply(counters: edit)
        }
        current = version
        manifestNumber = number
        nextFileNumber = max(nextFileNumber, number + 1)
    }

    private func apply(counters edit: VersionEdit) {
        if let v = edit.logNumber { logNumber = v }
        if let v = edit.nextFileNumber { nextFileNumber = max(nextFileNumber, v) }
        if let v = edit.lastSequence { lastSequence = max(lastSequence, v) }
        for (level, key) in edit.compactPointers where level < maxLevels { compactPointers[level] = key }
        for (_, f) in edit.newFiles { nextFileNumber = max(nextFileNumber, f.number + 1) }
    }

    /// A snapshot edit describing the whole state of `version`.
    private func snapshotEdit(_ version: Version) -> VersionEdit {
        var e = VersionEdit()
        e.formatVersion = lsmFormatVersion
        e.logNumber = logNumber
        e.nextFileNumber = nextFileNumber
        e.lastSequence = lastSequence
        for (level, key) in compactPointers.enumerated() where !key.isEmpty { e.compactPointers.append((level, key)) }
        for (level, files) in version.levels.enumerated() {
            for f in files { e.newFiles.append((level, f)) }
        }
        return e
    }

    /// Writes `edit` to the manifest (a new one when needed), syncs it, then
    /// installs the resulting version. The caller serialises calls (the
    /// manifest lock) and must not hold `dbLock`, which guards installation.
    func logAndApply(_ edit: VersionEdit, dbLock: Lock) throws {
        var edit = edit
        let base: Version = dbLock.withLock {
            edit.nextFileNumber = nextFileNumber
            if edit.lastSequence == nil { edit.lastSequence = lastSequence }
            return current
        }
        let name = manifestFileName(directory, manifestNumber)
        let next = try base.applying(edit, name: name)
        // New tables were fsynced by their writer, but their directory entries are durable only
        // once the directory is: before the MANIFEST names them (and before a flush unlinks the
        // WAL whose data they hold). One sync covers every table of the edit; a table moved to
        // another level is already named by the manifest and needs none.
        let existing = Set(base.levels.joined().map(\.number))
        if edit.newFiles.contains(where: { !existing.contains($0.1.number) }) {
            try FileIO.syncDirectory(directory)
        }
        if manifest == nil || manifest!.size > manifestRollBytes {
            try writeNewManifest(next, pendingCounters: edit, dbLock: dbLock)
        } else {
            try manifest!.addRecord(edit.encode())
            try manifest!.sync()
        }
        dbLock.withLock {
            let kept = Set(edit.newFiles.map { $0.1.number })
            for (level, number) in edit.deletedFiles where !kept.contains(number) {
                base.levels[level].first { $0.number == number }?.onObsolete = obsoleteHandler
            }
            apply(counters: edit)
            current = next
        }
    }

    /// Called (through FileMetaData) when a removed table is no longer read.
    var obsoleteHandler: (@Sendable (UInt64) -> Void)?

    private func writeNewManifest(_ version: Version, pendingCounters edit: VersionEdit, dbLock: Lock) throws {
        let (number, snapshot): (UInt64, VersionEdit) = dbLock.withLock {
            let n = newFileNumber()
            var s = snapshotEdit(version)
            if let v = edit.logNumber { s.logNumber = v }
            s.nextFileNumber = nextFileNumber
            if let v = edit.lastSequence { s.lastSequence = max(lastSequence, v) }
            for (level, key) in edit.compactPointers { s.compactPointers.append((level, key)) }
            return (n, s)
        }
        let path = manifestFileName(directory, number)
        var writer: LogWriter?
        var named = false
        do {
            let opened = try LogWriter(directory: directory, path: path, number: number)
            writer = opened
            try opened.addRecord(snapshot.encode())
            try opened.file.sync(dataOnly: false)
            try FileIO.writeAtomically(Array("MANIFEST-\(pad6(number))\n".utf8), to: directory + "/CURRENT", directory: directory) {
                named = true
            }
        } catch {
            if named, let writer {
                // CURRENT names the new manifest already; only the directory's sync failed, so
                // after a crash it may name either: both stay, and later edits go to the new one.
                manifest = writer
                manifestNumber = number
            } else {
                FileIO.unlinkIfPresent(path)
            }
            throw error
        }
        guard let writer else { return }
        let old = manifestNumber
        manifest = writer
        manifestNumber = number
        if old != 0 && old != number { FileIO.unlinkIfPresent(manifestFileName(directory, old)) }
    }

    /// Closes the manifest file. Called by the store's close once no writer or background
    /// thread can call `logAndApply` any more.
    func close() {
        manifest?.close()
        manifest = nil
    }

    /// Starts a manifest for a new, empty store.
    func create(dbLock: Lock) throws {
        try writeNewManifest(current, pendingCounters: VersionEdit(), dbLock: dbLock)
    }
}
