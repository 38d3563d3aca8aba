// The SQLite peer of the store benchmark, through the C API of libsqlite3.
//
// Schema and settings: WAL journal, `CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`,
// `synchronous=FULL` for --sync always and `OFF` for none, `INSERT OR REPLACE` through a prepared
// statement, one transaction (`BEGIN IMMEDIATE` … `COMMIT`) per batch, one connection per writer
// thread with a 60 s busy timeout. Everything else is SQLite's default (page size, cache size,
// WAL auto-checkpoint every 1000 pages).

import CSQLite
import SQLite

/// SQLite as a benchmark engine: a database `bench.db` in the engine's directory.
final class SQLiteBenchEngine: BenchEngine {
    let name = "sqlite"
    let settleDescription = "WAL checkpoint"
    let path: String
    private let synchronous: String
    /// Setup, settle, reads and scan; writers have their own connections.
    private let main: SQLiteConnection

    init(directory: String, sync: BenchSyncMode) throws {
        path = directory + "/bench.db"
        synchronous = sync == .always ? "FULL" : "OFF"
        main = try SQLiteConnection(path: path)
        try main.setBusyTimeout(milliseconds: 60_000)
        let mode = try main.scalarText("PRAGMA journal_mode=WAL")
        guard mode?.lowercased() == "wal" else {
            throw SQLiteError(code: 0, message: "journal_mode is \(mode ?? "unknown"), not wal",
                              operation: "PRAGMA journal_mode=WAL")
        }
        try main.execute("PRAGMA synchronous=\(synchronous)")
        try main.execute("CREATE TABLE IF NOT EXISTS kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
    }

    func makeWriter() throws -> any BenchWriter {
        let connection = try SQLiteConnection(path: path)
        try connection.setBusyTimeout(milliseconds: 60_000)
        try connection.execute("PRAGMA synchronous=\(synchronous)")   // a per-connection setting
        return try SQLiteBenchWriter(connection: connection)
    }

    /// Checkpoints the whole WAL into the database and truncates it, so that the disk figures
    /// are the database file's. Writers are closed by then, so nothing can keep it busy.
    func settle() throws {
        let statement = try main.prepare("PRAGMA wal_checkpoint(TRUNCATE)")
        defer { statement.finalize() }
        guard try statement.step() else { return }
        if statement.integer(0) != 0 {
            throw SQLiteError(code: SQLITE_BUSY, message: "the checkpoint could not complete",
                              operation: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    func makeReader() throws -> any BenchReader {
        try SQLiteBenchReader(connection: main)
    }

    /// SQLite keeps no such figures: the harness measures disk bytes and /proc/self/io.
    func ownStatistics() -> EngineStatistics { EngineStatistics() }

    func close() throws {
        try main.close()
    }
}

/// One writer thread's connection and statements.
final class SQLiteBenchWriter: BenchWriter, @unchecked Sendable {
    // @unchecked: used by exactly one thread at a time (created on the main thread, then
    // handed to its writer thread).
    private let connection: SQLiteConnection
    private let begin: SQLiteStatement
    private let insert: SQLiteStatement
    private let commit: SQLiteStatement
    private let rollback: SQLiteStatement

    init(connection: SQLiteConnection) throws {
        self.connection = connection
        begin = try connection.prepare("BEGIN IMMEDIATE")
        insert = try connection.prepare("INSERT OR REPLACE INTO kv(k, v) VALUES (?, ?)")
        commit = try connection.prepare("COMMIT")
        rollback = try connection.prepare("ROLLBACK")
    }

    func write(_ batch: BenchBatch) throws {
        try begin.run()
        do {
            for i in 0..<batch.count {
                try insert.bindBlob(1, batch.key(i))
                try insert.bindBlob(2, batch.value(i))
                try insert.run()
            }
            try commit.run()
        } catch {
            try? rollback.run()
            throw error
        }
    }

    func close() throws {
        for statement in [begin, insert, commit, rollback] { statement.finalize() }
        try connection.close()
    }
}

/// Point reads and the scan, on the engine's main connection.
final class SQLiteBenchReader: BenchReader, @unchecked Sendable {
    // @unchecked: used by one thread at a time (the read/scan thread).
    private let connection: SQLiteConnection
    private let select: SQLiteStatement

    init(connection: SQLiteConnection) throws {
        self.connection = connection
        select = try connection.prepare("SELECT v FROM kv WHERE k = ?")
    }

    func get(_ key: UnsafeRawBufferPointer) throws -> Int? {
        try select.bindBlob(1, key)
        defer { select.reset() }
        return try select.step() ? select.blobLength(0) : nil
    }

    func makeScan() throws -> any BenchScan {
        SQLiteBenchScan(try connection.prepare("SELECT k, v FROM kv ORDER BY k"))
    }

    func close() throws {
        select.finalize()
    }
}

final class SQLiteBenchScan: BenchScan {
    private let statement: SQLiteStatement
    private var finished = false

    init(_ statement: SQLiteStatement) { self.statement = statement }

    func next() throws -> Int? {
        guard !finished else { return nil }
        if try statement.step() {
            return statement.blobLength(0) + statement.blobLength(1)
        }
        finished = true
        statement.finalize()
        return nil
    }
}
