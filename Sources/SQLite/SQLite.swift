// A thin, throwing wrapper over the SQLite C API (libsqlite3 through the CSQLite system library),
// shared by the store benchmark's SQLite peer and the simulated cloud's state. Every failing call
// throws SQLiteError with SQLite's own message.
import CSQLite
import Foundation

/// An SQLite call failed. `message` is SQLite's (`sqlite3_errmsg` or `sqlite3_errstr`).
public struct SQLiteError: Error, CustomStringConvertible, LocalizedError {
    /// The (extended) SQLite result code.
    public let code: Int32
    public let message: String
    /// What was being done: the SQL text or the C function.
    public let operation: String

    public init(code: Int32, message: String, operation: String) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var description: String { "sqlite: \(operation): \(message) (code \(code))" }
    public var errorDescription: String? { description }
}

/// SQLITE_TRANSIENT (`(sqlite3_destructor_type)-1`) is a macro Swift does not import: it tells
/// SQLite to copy a bound buffer before the bind call returns.
var sqliteTransient: sqlite3_destructor_type {
    unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

/// One connection. Opened with SQLITE_OPEN_NOMUTEX: a connection is used by one thread at a time.
public final class SQLiteConnection {
    public private(set) var handle: OpaquePointer?
    public let path: String

    /// Opens (creating if needed) the database at `path`; ":memory:" is a private in-memory database.
    public init(path: String) throws {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, message: message, operation: "open \(path)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        if let handle { sqlite3_close_v2(handle) }
    }

    /// SQLite's message for the last failure on this connection.
    public var lastErrorMessage: String {
        guard let handle else { return "connection is closed" }
        return String(cString: sqlite3_errmsg(handle))
    }

    public func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
        guard rc == SQLITE_OK else {
            throw SQLiteError(code: rc, message: lastErrorMessage, operation: operation())
        }
    }

    /// Runs one or more statements that return no rows the caller needs.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? lastErrorMessage
            sqlite3_free(errorMessage)
            throw SQLiteError(code: rc, message: message, operation: sql)
        }
    }

    /// Runs a statement that returns one row and gives its first column as text.
    public func scalarText(_ sql: String) throws -> String? {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        guard try statement.step() else { return nil }
        return statement.text(0)
    }

    /// Waits up to `milliseconds` for a lock held by another connection before failing with SQLITE_BUSY.
    public func setBusyTimeout(milliseconds: Int32) throws {
        try check(sqlite3_busy_timeout(handle, milliseconds), "sqlite3_busy_timeout")
    }

    public func prepare(_ sql: String) throws -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw SQLiteError(code: rc, message: lastErrorMessage, operation: "prepare \(sql)")
        }
        return SQLiteStatement(statement, connection: self, sql: sql)
    }

    /// Closes the connection; every statement must have been finalized.
    public func close() throws {
        guard let db = handle else { return }
        let rc = sqlite3_close(db)
        guard rc == SQLITE_OK else {
            throw SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(db)), operation: "close \(path)")
        }
        handle = nil
    }
}

/// A prepared statement. Rebind and `step` as often as needed; `reset` between executions.
public final class SQLiteStatement {
    private var statement: OpaquePointer?
    private let connection: SQLiteConnection
    public let sql: String

    fileprivate init(_ statement: OpaquePointer, connection: SQLiteConnection, sql: String) {
        self.statement = statement
        self.connection = connection
        self.sql = sql
    }

    deinit { finalize() }

    /// Binds a blob (copied by SQLite: SQLITE_TRANSIENT) to parameter `index` (1-based).
    /// An empty buffer binds an empty blob, not NULL.
    @inline(__always)
    public func bindBlob(_ index: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        let rc: Int32
        if bytes.isEmpty {
            rc = sqlite3_bind_zeroblob(statement, index, 0)
        } else {
            rc = sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), sqliteTransient)
        }
        if rc != SQLITE_OK { try connection.check(rc, "bind parameter \(index) of \(sql)") }
    }

    /// Steps once: true when a row is ready, false when the statement is done.
    /// On failure the statement is reset and the error thrown.
    @inline(__always)
    public func step() throws -> Bool {
        let rc = sqlite3_step(statement)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        let message = connection.lastErrorMessage
        sqlite3_reset(statement)
        throw SQLiteError(code: rc, message: message, operation: sql)
    }

    /// Runs a statement that returns no rows to completion, then resets it.
    @inline(__always)
    public func run() throws {
        while try step() {}
        sqlite3_reset(statement)
    }

    @inline(__always)
    public func reset() {
        sqlite3_reset(statement)
    }

    /// Bytes of column `index` (0-based) of the current row. The blob is fetched first, as the
    /// SQLite documentation asks, so the engine has really produced the value.
    @inline(__always)
    public func blobLength(_ index: Int32) -> Int {
        _ = sqlite3_column_blob(statement, index)
        return Int(sqlite3_column_bytes(statement, index))
    }

    public func text(_ index: Int32) -> String? {
        guard let text = sqlite3_column_text(statement, index) else { return nil }
        return String(cString: text)
    }

    public func integer(_ index: Int32) -> Int64 {
        sqlite3_column_int64(statement, index)
    }

    public func finalize() {
        if let statement {
            sqlite3_finalize(statement)
            self.statement = nil
        }
    }
}

// MARK: - Typed binding and reading

/// A value bound to a statement parameter.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}

extension SQLiteStatement {
    /// Binds `values` to parameters 1…n, after clearing the previous bindings.
    public func bind(_ values: [SQLiteValue]) throws {
        sqlite3_clear_bindings(statement)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let number): rc = sqlite3_bind_int64(statement, index, number)
            case .text(let string): rc = sqlite3_bind_text(statement, index, string, -1, sqliteTransient)
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { raw in
                    raw.isEmpty ? sqlite3_bind_zeroblob(statement, index, 0)
                        : sqlite3_bind_blob(statement, index, raw.baseAddress, Int32(raw.count), sqliteTransient)
                }
            }
            if rc != SQLITE_OK { try connection.check(rc, "bind parameter \(index) of \(sql)") }
        }
    }

    /// True when column `index` of the current row is NULL.
    public func isNull(_ index: Int32) -> Bool {
        sqlite3_column_type(statement, index) == SQLITE_NULL
    }

    /// Column `index` as text, or nil when it is NULL.
    public func optionalText(_ index: Int32) -> String? {
        isNull(index) ? nil : text(index)
    }

    /// Column `index` as an integer, or nil when it is NULL.
    public func optionalInteger(_ index: Int32) -> Int64? {
        isNull(index) ? nil : integer(index)
    }
}

extension SQLiteConnection {
    /// Runs `sql` with `values` bound and returns nothing.
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        try statement.bind(values)
        try statement.run()
    }

    /// Runs a query and maps every row with `row`.
    public func query<T>(_ sql: String, _ values: [SQLiteValue] = [], row: (SQLiteStatement) throws -> T) throws -> [T] {
        let statement = try prepare(sql)
        defer { statement.finalize() }
        try statement.bind(values)
        var rows: [T] = []
        while try statement.step() { rows.append(try row(statement)) }
        return rows
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in an IMMEDIATE transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}
