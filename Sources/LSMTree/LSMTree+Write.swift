#if canImport(Glibc)
import Glibc
#endif

// The write path: group commit.
//
// Writers queue up under the database lock. The writer at the head of the
// queue is the leader: it takes the queued batches (up to maxWriteGroupBytes),
// gives them consecutive sequence numbers, writes them as ONE WAL record with
// one write(2) and — if any of them asked for it — one fdatasync, inserts them
// into the memtable, publishes the new last sequence, and wakes the others.
// Blocking callers lead on their own thread (no hand-off for a lone writer);
// `async` callers are led by a commit thread so they never block the
// cooperative pool.

final class PendingWrite {
    let batch: WriteBatch
    let sync: Bool
    var done = false
    var error: LSMError?
    /// A `flush()` call waiting for its turn to swap the memtable.
    var isFlushMarker = false
    /// For blocking writers; created only if the writer has to wait.
    lazy var wakeup = Condition()
    let continuation: CheckedContinuation<Void, any Error>?

    init(batch: WriteBatch, sync: Bool, continuation: CheckedContinuation<Void, any Error>? = nil) {
        self.batch = batch
        self.sync = sync
        self.continuation = continuation
    }
}

extension LSMTree {
    /// Applies `batch` atomically. Returns once it is durable per
    /// `sync` (default: `LSMOptions.syncMode`).
    public func write(_ batch: WriteBatch, sync: Bool? = nil) throws {
        guard !batch.isEmpty else { return }
        let w = PendingWrite(batch: batch, sync: sync ?? (options.syncMode == .always))
        lock.lock()
        do {
            try checkWritable()
        } catch {
            lock.unlock()
            throw error
        }
        writers.append(w)
        while !w.done && writers.first !== w { w.wakeup.wait(lock) }
        if !w.done { leadGroup() }
        lock.unlock()
        if let e = w.error { throw e }
    }

    /// Applies `batch` atomically, suspending (not blocking) until durable.
    public func write(_ batch: WriteBatch, sync: Bool? = nil) async throws {
        guard !batch.isEmpty else { return }
        let wantSync = sync ?? (options.syncMode == .always)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            lock.lock()
            do {
                try checkWritable()
            } catch {
                lock.unlock()
                c.resume(throwing: error)
                return
            }
            writers.append(PendingWrite(batch: batch, sync: wantSync, continuation: c))
            if writers.count == 1 { commitWanted.signal() }
            lock.unlock()
        }
    }

    public func put(_ key: [UInt8], _ value: [UInt8], sync: Bool? = nil) throws {
        var b = WriteBatch()
        b.put(key, value)
        try write(b, sync: sync)
    }

    public func delete(_ key: [UInt8], sync: Bool? = nil) throws {
        var b = WriteBatch()
        b.delete(key)
        try write(b, sync: sync)
    }

    /// Leads one write group. Called with the lock held by the writer at the
    /// head of the queue (or the commit thread on its behalf); returns with
    /// the lock held and the group completed.
    func leadGroup() {
        let leader = writers[0]
        do {
            try makeRoomForWrite()
        } catch {
            let e = (error as? LSMError) ?? LSMError(.io, "\(error)")
            writers.removeFirst()
            complete(leader, error: e)
            wakeNextLeader()
            return
        }
        var group: [PendingWrite] = []
        var bytes = 0
        var count = 0
        for w in writers {
            if w.isFlushMarker { break }
            if w.sync && !leader.sync { break }  // a sync write never rides in a group that skips fdatasync
            if !group.isEmpty && bytes + w.batch.byteSize > options.maxWriteGroupBytes { break }
            group.append(w)
            bytes += w.batch.byteSize
            count += w.batch.count
        }
        let firstSeq = versions.lastSequence + 1
        let table = mem
        let log = wal
        // The leader owns the group buffer until it hands it back below: no allocation per group.
        var record = groupBuffer
        groupBuffer = []
        lock.unlock()

        record.removeAll(keepingCapacity: true)
        record.append(contentsOf: repeatElement(0, count: logRecordHeaderSize))
        record.reserveCapacity(logRecordHeaderSize + bytes)
        record.appendFixed64(firstSeq)
        record.appendFixed32(UInt32(count))
        var userBytes = 0
        for w in group {
            w.batch.rep.withUnsafeBytes { record.append(contentsOf: $0[WriteBatch.headerSize...]) }
            userBytes += w.batch.userBytes
        }
        LogWriter.frame(&record, number: log.number)
        var failure: LSMError?
        var syncNanoseconds: UInt64 = 0
        do {
            try log.write(framed: record)
            if leader.sync {
                let began = monotonicNanos()
                try log.sync()
                syncNanoseconds = monotonicNanos() &- began
            }
            try record.withUnsafeBytes { raw in
                var seq = firstSeq
                try WriteBatch.forEach(UnsafeRawBufferPointer(rebasing: raw[logRecordHeaderSize...])) { kind, key, value in
                    table.add(seq, kind, key, value)
                    seq += 1
                }
            }
        } catch {
            failure = (error as? LSMError) ?? LSMError(.io, "\(error)")
        }

        lock.lock()
        if let failure {
            // The WAL may hold a partial record: refuse further writes until reopened.
            backgroundError = backgroundError ?? failure
        } else {
            versions.lastSequence = firstSeq + UInt64(count) - 1
            stats.writes += UInt64(group.count)
            stats.writeGroups += 1
            if leader.sync {
                stats.walSyncs += 1
                stats.walSyncNanoseconds &+= syncNanoseconds
                stats.walSyncMaxNanoseconds = max(stats.walSyncMaxNanoseconds, syncNanoseconds)
            }
            stats.walBytesWritten += UInt64(record.count)
            stats.userBytesWritten += UInt64(userBytes)
            walBytes = log.size
        }
        groupBuffer = record
        writers.removeFirst(group.count)
        for w in group { complete(w, error: failure) }
        wakeNextLeader()
    }

    private func complete(_ w: PendingWrite, error: LSMError?) {
        w.done = true
        w.error = error
        if let c = w.continuation {
            if let error { c.resume(throwing: error) } else { c.resume() }
        } else {
            w.wakeup.signal()
        }
    }

    func wakeNextLeader() {
        if let next = writers.first {
            if next.continuation != nil { commitWanted.signal() } else { next.wakeup.signal() }
        } else if closed {
            backgroundDone.broadcast()
        }
    }

    /// Makes sure the memtable has room, freezing it and switching WAL
    /// segments when full; slows down or stalls writers while level 0 or the
    /// flush queue is too deep. Called with the lock held by the leader.
    func makeRoomForWrite() throws {
        var allowDelay = true
        while true {
            try checkBackgroundError()
            let level0 = versions.current.levels[0].count
            if allowDelay && level0 >= options.level0SlowdownTrigger {
                // Spread the pressure: delay this group by 1 ms (less when the background work
                // finishes a step) instead of stalling later for seconds. A timed wait on the
                // condition releases the lock meanwhile, as the sleep did.
                _ = backgroundDone.wait(lock, seconds: 0.001)
                allowDelay = false
                stats.slowdownCount += 1
            } else if mem.memoryUsage < options.writeBufferSize {
                return
            } else if imm.count >= options.maxImmutableMemtables || level0 >= options.level0StopTrigger {
                let start = monotonicNanos()
                stats.stallCount += 1
                flushWanted.signal()
                compactionWanted.signal()
                backgroundDone.wait(lock, seconds: 1)
                stats.stallMicros += (monotonicNanos() - start) / 1000
            } else {
                try switchMemTable()
            }
        }
    }

    private func checkBackgroundError() throws {
        if let e = backgroundError {
            throw LSMError(.readOnly, "the store at \(path) is read-only after a background error; fix the cause and reopen it", cause: e)
        }
    }

    /// Freezes the memtable and starts a new WAL segment. Lock held.
    func switchMemTable() throws {
        let number = versions.newFileNumber()
        // File creation under the lock: rare (once per memtable) and writers must wait for it anyway.
        let next = try LogWriter(directory: path, path: logFileName(path, number), number: number,
                                 preallocationStep: LSMTree.walPreallocationStep(options), exclusive: true)
        try? wal.file.trimPreallocation()
        wal = next
        walBytes = 0
        imm.append(mem)
        mem = MemTable(logNumber: number, capacityHint: options.writeBufferSize)
        flushWanted.signal()
    }
}
