// Background work runs on three OS threads per store:
//  - flush: writes the oldest frozen memtable to a level-0 table;
//  - compaction: runs the picked (or requested) compaction;
//  - commit: leads write groups for `async` writers.
// Each waits on its condition under the database lock and never holds the
// lock during I/O.

extension LSMTree {
    func startBackgroundThreads() {
        lock.withLock { runningThreads = 3 }
        startThread(name: "lsm-flush") { [self] in flushLoop() }
        startThread(name: "lsm-compact") { [self] in compactionLoop() }
        startThread(name: "lsm-commit") { [self] in commitLoop() }
    }

    private func threadExited() {
        runningThreads -= 1
        backgroundDone.broadcast()
    }

    private func recordBackgroundError(_ error: any Error) {
        let e = (error as? LSMError) ?? LSMError(.io, "\(error)")
        if e.code != .closed && backgroundError == nil { backgroundError = e }
        backgroundDone.broadcast()
    }

    private func flushLoop() {
        lock.lock()
        while !shuttingDown {
            guard let table = imm.first, backgroundError == nil else {
                flushWanted.wait(lock)
                continue
            }
            lock.unlock()
            do {
                try flush(table)
                lock.lock()
                imm.removeFirst()
                backgroundDone.broadcast()
                compactionWanted.signal()
            } catch {
                lock.lock()
                recordBackgroundError(error)
            }
        }
        threadExited()
        lock.unlock()
    }

    /// Writes `table` (the oldest frozen memtable) to level 0 and deletes its WAL segment.
    private func flush(_ table: MemTable) throws {
        let oldest = snapshots.oldest(otherwise: maxSequenceNumber)
        let file = try writeLevel0Table(table, smallestSnapshot: oldest)
        var edit = VersionEdit()
        if let file { edit.newFiles.append((0, file)) }
        edit.logNumber = lock.withLock { imm.count > 1 ? imm[1].logNumber : mem.logNumber }
        try manifestLock.withLock { try versions.logAndApply(edit, dbLock: lock) }
        FileIO.unlinkIfPresent(logFileName(path, table.logNumber))
    }

    private func compactionLoop() {
        lock.lock()
        while !shuttingDown {
            guard backgroundError == nil, let c = pickCompaction() else {
                compactionWanted.wait(lock)
                continue
            }
            compactionRunning = true
            let manual = manualCompaction
            lock.unlock()
            do {
                let outputs = try runCompaction(c)
                lock.lock()
                if let manual, !manual.done {
                    manual.produced.formUnion(outputs.map(\.number))
                    if c.level != c.outputLevel { manual.level = c.outputLevel }
                }
            } catch {
                lock.lock()
                if let manual, !manual.done {
                    manual.error = (error as? LSMError) ?? LSMError(.io, "\(error)")
                    manual.done = true
                }
                recordBackgroundError(error)
            }
            compactionRunning = false
            backgroundDone.broadcast()
        }
        if let m = manualCompaction, !m.done {
            m.error = LSMError(.closed, "the store at \(path) closed before the requested compaction finished")
            m.done = true
        }
        threadExited()
        lock.unlock()
    }

    private func commitLoop() {
        lock.lock()
        while true {
            if let front = writers.first, front.continuation != nil {
                leadGroup()
                continue
            }
            if shuttingDown { break }
            commitWanted.wait(lock)
        }
        threadExited()
        lock.unlock()
    }

    /// Writes the memtable to level 0 and waits until it is on disk. Queued
    /// writes before the call are included.
    public func flush() throws {
        let marker = PendingWrite(batch: WriteBatch(), sync: false)
        marker.isFlushMarker = true
        lock.lock()
        defer { lock.unlock() }
        try checkWritable()
        writers.append(marker)
        while writers.first !== marker { marker.wakeup.wait(lock) }
        // At the head of the queue no group is in flight: the memtable can be swapped safely.
        var target: MemTable?
        var failure: (any Error)?
        if !mem.isEmpty {
            do {
                try switchMemTable()
                target = imm.last
            } catch {
                failure = error
            }
        }
        writers.removeFirst()
        wakeNextLeader()
        if let failure { throw failure }
        while backgroundError == nil, let target, imm.contains(where: { $0 === target }) {
            backgroundDone.wait(lock)
        }
        if let e = backgroundError { throw e }
    }

    /// Waits until no flush or compaction is pending or running.
    public func waitForCompactions() throws {
        lock.lock()
        defer { lock.unlock() }
        while backgroundError == nil && !shuttingDown && (!imm.isEmpty || compactionRunning || needsCompaction()) {
            compactionWanted.signal()
            backgroundDone.wait(lock, seconds: 1)
        }
        if let e = backgroundError { throw e }
    }

    /// Flushes, then compacts every table overlapping [begin, end] (nil:
    /// unbounded) down to the bottom level, applying the compaction filter and
    /// dropping tombstones and versions no snapshot needs. Waits until done.
    public func compactRange(from begin: [UInt8]? = nil, to end: [UInt8]? = nil) throws {
        try flush()
        let m = ManualCompaction(begin: begin, end: end)
        lock.lock()
        defer { lock.unlock() }
        while let other = manualCompaction, !other.done { backgroundDone.wait(lock) }
        try checkWritable()
        manualCompaction = m
        compactionWanted.signal()
        while !m.done { backgroundDone.wait(lock) }
        manualCompaction = nil
        if let e = m.error { throw e }
    }
}
