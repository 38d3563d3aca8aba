// The simulator's state in SQLite: instances, disks, attachments, snapshots, operations and
// idempotency tokens. WAL journal and synchronous=FULL, every change in one transaction, so a
// SIGKILL at any moment leaves the last committed state. Used only from the simulator actor.
import Foundation
import SQLite

final class CloudDatabase {
    private let connection: SQLiteConnection
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()
    private let decoder = JSONDecoder()
    /// How many times `operation(id:)` ran (tests check that the long poll does not poll).
    private(set) var operationLookups = 0

    init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        try connection.setBusyTimeout(milliseconds: 5000)
        if path != ":memory:" {
            _ = try connection.scalarText("PRAGMA journal_mode=WAL")
        }
        try connection.execute("""
            PRAGMA synchronous=FULL;
            PRAGMA foreign_keys=ON;
            CREATE TABLE IF NOT EXISTS instances(
                id TEXT PRIMARY KEY, name TEXT NOT NULL, zone TEXT NOT NULL, type TEXT NOT NULL,
                state TEXT NOT NULL, addresses TEXT NOT NULL, attach_limit INTEGER NOT NULL,
                created_at INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS instances_by_name ON instances(name);
            CREATE TABLE IF NOT EXISTS disks(
                id TEXT PRIMARY KEY, name TEXT NOT NULL, zone TEXT NOT NULL, size_bytes INTEGER NOT NULL,
                type TEXT NOT NULL, state TEXT NOT NULL, multi_attach INTEGER NOT NULL, tags TEXT NOT NULL,
                source_snapshot TEXT, source_disk TEXT, failure TEXT, created_at INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS disks_by_name ON disks(name);
            CREATE TABLE IF NOT EXISTS attachments(
                disk_id TEXT NOT NULL REFERENCES disks(id) ON DELETE CASCADE,
                instance_id TEXT NOT NULL, state TEXT NOT NULL, device_path TEXT,
                read_only INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(disk_id, instance_id));
            CREATE TABLE IF NOT EXISTS snapshots(
                id TEXT PRIMARY KEY, name TEXT NOT NULL, source_disk TEXT NOT NULL, source_zone TEXT NOT NULL,
                size_bytes INTEGER NOT NULL, state TEXT NOT NULL, tags TEXT NOT NULL, created_at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS operations(
                id TEXT PRIMARY KEY, kind TEXT NOT NULL, target_id TEXT NOT NULL, instance_id TEXT,
                state TEXT NOT NULL, error TEXT, argument INTEGER, created_at INTEGER NOT NULL, done_at INTEGER);
            CREATE TABLE IF NOT EXISTS tokens(
                token TEXT PRIMARY KEY, request TEXT NOT NULL, resource_id TEXT NOT NULL, operation_id TEXT NOT NULL);
            """)
    }

    func transaction<T>(_ body: () throws -> T) throws -> T { try connection.transaction(body) }

    // MARK: Instances

    private static let instanceColumns = "id, name, zone, type, state, addresses, attach_limit, created_at"

    private func instance(_ row: SQLiteStatement) throws -> Instance {
        Instance(id: row.text(0) ?? "", name: row.text(1) ?? "", zone: row.text(2) ?? "", type: row.text(3) ?? "",
                 state: InstanceState(rawValue: row.text(4) ?? "") ?? .terminated,
                 addresses: try decoder.decode([InstanceAddress].self, from: Data((row.text(5) ?? "[]").utf8)),
                 attachLimit: Int(row.integer(6)), createdAt: date(row.integer(7)))
    }

    func instance(id: String) throws -> Instance? {
        try connection.query("SELECT \(Self.instanceColumns) FROM instances WHERE id = ?", [.text(id)], row: instance).first
    }

    /// Instances named `name`, the live ones first, then the newest.
    func instances(named name: String) throws -> [Instance] {
        try connection.query("""
            SELECT \(Self.instanceColumns) FROM instances WHERE name = ?
            ORDER BY state = 'terminated', created_at DESC
            """, [.text(name)], row: instance)
    }

    func instances(after: String?, limit: Int) throws -> [Instance] {
        try connection.query("SELECT \(Self.instanceColumns) FROM instances WHERE id > ? ORDER BY id LIMIT ?",
                             [.text(after ?? ""), .integer(Int64(limit))], row: instance)
    }

    func instanceCount() throws -> Int {
        Int(try connection.query("SELECT count(*) FROM instances", row: { $0.integer(0) }).first ?? 0)
    }

    func insert(_ instance: Instance) throws {
        try connection.run("INSERT INTO instances(\(Self.instanceColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            .text(instance.id), .text(instance.name), .text(instance.zone), .text(instance.type), .text(instance.state.rawValue),
            .text(json(instance.addresses)), .integer(Int64(instance.attachLimit)), .integer(millis(instance.createdAt)),
        ])
    }

    func setInstanceState(_ id: String, _ state: InstanceState) throws {
        try connection.run("UPDATE instances SET state = ? WHERE id = ?", [.text(state.rawValue), .text(id)])
    }

    // MARK: Disks

    private static let diskColumns = "id, name, zone, size_bytes, type, state, multi_attach, tags, source_snapshot, source_disk, failure, created_at"

    private func disk(_ row: SQLiteStatement) throws -> Disk {
        let id = row.text(0) ?? ""
        return Disk(id: id, name: row.text(1) ?? "", zone: row.text(2) ?? "", sizeBytes: row.integer(3), type: row.text(4) ?? "",
                    state: DiskState(rawValue: row.text(5) ?? "") ?? .failed, multiAttach: row.integer(6) != 0,
                    tags: try decoder.decode([String: String].self, from: Data((row.text(7) ?? "{}").utf8)),
                    sourceSnapshotId: row.optionalText(8), sourceDiskId: row.optionalText(9),
                    attachments: try attachments(diskId: id), failureReason: row.optionalText(10), createdAt: date(row.integer(11)))
    }

    func disk(id: String) throws -> Disk? {
        try connection.query("SELECT \(Self.diskColumns) FROM disks WHERE id = ?", [.text(id)], row: disk).first
    }

    func allDisks() throws -> [Disk] {
        try connection.query("SELECT \(Self.diskColumns) FROM disks ORDER BY id", row: disk)
    }

    func disks(_ filter: DiskFilter, after: String?, limit: Int) throws -> [Disk] {
        var sql = "SELECT \(Self.diskColumns) FROM disks WHERE id > ?"
        var values: [SQLiteValue] = [.text(after ?? "")]
        if let name = filter.name { sql += " AND name = ?"; values.append(.text(name)) }
        if let zone = filter.zone { sql += " AND zone = ?"; values.append(.text(zone)) }
        if let instanceId = filter.instanceId {
            sql += " AND id IN (SELECT disk_id FROM attachments WHERE instance_id = ?)"
            values.append(.text(instanceId))
        }
        if let tag = filter.tag {
            let parts = tag.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            sql += " AND EXISTS (SELECT 1 FROM json_each(disks.tags) WHERE key = ? AND value = ?)"
            values += [.text(String(parts[0])), .text(parts.count > 1 ? String(parts[1]) : "")]
        }
        sql += " ORDER BY id LIMIT ?"
        values.append(.integer(Int64(limit)))
        return try connection.query(sql, values, row: disk)
    }

    /// Sum of the sizes of the zone's disks.
    func usedBytes(zone: String) throws -> Int64 {
        try connection.query("SELECT coalesce(sum(size_bytes), 0) FROM disks WHERE zone = ?", [.text(zone)], row: { $0.integer(0) }).first ?? 0
    }

    func insert(_ disk: Disk) throws {
        try connection.run("INSERT INTO disks(\(Self.diskColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            .text(disk.id), .text(disk.name), .text(disk.zone), .integer(disk.sizeBytes), .text(disk.type),
            .text(disk.state.rawValue), .integer(disk.multiAttach ? 1 : 0), .text(json(disk.tags)),
            disk.sourceSnapshotId.map(SQLiteValue.text) ?? .null, disk.sourceDiskId.map(SQLiteValue.text) ?? .null,
            disk.failureReason.map(SQLiteValue.text) ?? .null, .integer(millis(disk.createdAt)),
        ])
    }

    func setDiskState(_ id: String, _ state: DiskState, failure: String? = nil) throws {
        try connection.run("UPDATE disks SET state = ?, failure = ? WHERE id = ?",
                           [.text(state.rawValue), failure.map(SQLiteValue.text) ?? .null, .text(id)])
    }

    func setDiskTags(_ id: String, _ tags: [String: String]) throws {
        try connection.run("UPDATE disks SET tags = ? WHERE id = ?", [.text(json(tags)), .text(id)])
    }

    func setDiskSize(_ id: String, _ size: Int64) throws {
        try connection.run("UPDATE disks SET size_bytes = ? WHERE id = ?", [.integer(size), .text(id)])
    }

    /// Available or in-use, from its attachments, unless it is busy with something else.
    func refreshDiskState(_ id: String) throws {
        try connection.run("""
            UPDATE disks SET state = CASE WHEN EXISTS (SELECT 1 FROM attachments WHERE disk_id = disks.id)
                THEN 'in-use' ELSE 'available' END
            WHERE id = ? AND state IN ('available', 'in-use')
            """, [.text(id)])
    }

    func deleteDisk(_ id: String) throws {
        try connection.run("DELETE FROM tokens WHERE resource_id = ?", [.text(id)])
        try connection.run("DELETE FROM disks WHERE id = ?", [.text(id)])
    }

    // MARK: Attachments

    func attachments(diskId: String) throws -> [Attachment] {
        try connection.query("SELECT disk_id, instance_id, state, device_path, read_only FROM attachments WHERE disk_id = ? ORDER BY instance_id",
                             [.text(diskId)], row: attachment)
    }

    func attachments(instanceId: String) throws -> [Attachment] {
        try connection.query("SELECT disk_id, instance_id, state, device_path, read_only FROM attachments WHERE instance_id = ? ORDER BY disk_id",
                             [.text(instanceId)], row: attachment)
    }

    private func attachment(_ row: SQLiteStatement) -> Attachment {
        Attachment(diskId: row.text(0) ?? "", instanceId: row.text(1) ?? "",
                   state: AttachmentState(rawValue: row.text(2) ?? "") ?? .lost, devicePath: row.optionalText(3),
                   readOnly: row.integer(4) != 0)
    }

    func upsert(_ attachment: Attachment) throws {
        try connection.run("""
            INSERT INTO attachments(disk_id, instance_id, state, device_path, read_only) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT(disk_id, instance_id) DO UPDATE
            SET state = excluded.state, device_path = excluded.device_path, read_only = excluded.read_only
            """, [.text(attachment.diskId), .text(attachment.instanceId), .text(attachment.state.rawValue),
                  attachment.devicePath.map(SQLiteValue.text) ?? .null, .integer(attachment.readOnly ? 1 : 0)])
    }

    func deleteAttachment(diskId: String, instanceId: String) throws {
        try connection.run("DELETE FROM attachments WHERE disk_id = ? AND instance_id = ?", [.text(diskId), .text(instanceId)])
    }

    // MARK: Snapshots

    private static let snapshotColumns = "id, name, source_disk, size_bytes, state, tags, created_at, source_zone"

    private func snapshot(_ row: SQLiteStatement) throws -> Snapshot {
        Snapshot(id: row.text(0) ?? "", name: row.text(1) ?? "", sourceDiskId: row.text(2) ?? "", sizeBytes: row.integer(3),
                 state: SnapshotState(rawValue: row.text(4) ?? "") ?? .failed,
                 tags: try decoder.decode([String: String].self, from: Data((row.text(5) ?? "{}").utf8)),
                 createdAt: date(row.integer(6)))
    }

    func snapshot(id: String) throws -> Snapshot? {
        try connection.query("SELECT \(Self.snapshotColumns) FROM snapshots WHERE id = ?", [.text(id)], row: snapshot).first
    }

    /// The zone of the disk a snapshot was taken from.
    func snapshotSourceZone(id: String) throws -> String? {
        try connection.query("SELECT source_zone FROM snapshots WHERE id = ?", [.text(id)], row: { $0.text(0) }).first ?? nil
    }

    func snapshots(sourceDiskId: String?, after: String?, limit: Int) throws -> [Snapshot] {
        var sql = "SELECT \(Self.snapshotColumns) FROM snapshots WHERE id > ?"
        var values: [SQLiteValue] = [.text(after ?? "")]
        if let sourceDiskId { sql += " AND source_disk = ?"; values.append(.text(sourceDiskId)) }
        sql += " ORDER BY id LIMIT ?"
        values.append(.integer(Int64(limit)))
        return try connection.query(sql, values, row: snapshot)
    }

    func insert(_ snapshot: Snapshot, sourceZone: String) throws {
        try connection.run("INSERT INTO snapshots(\(Self.snapshotColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            .text(snapshot.id), .text(snapshot.name), .text(snapshot.sourceDiskId), .integer(snapshot.sizeBytes),
            .text(snapshot.state.rawValue), .text(json(snapshot.tags)), .integer(millis(snapshot.createdAt)), .text(sourceZone),
        ])
    }

    func setSnapshotState(_ id: String, _ state: SnapshotState) throws {
        try connection.run("UPDATE snapshots SET state = ? WHERE id = ?", [.text(state.rawValue), .text(id)])
    }

    func deleteSnapshot(_ id: String) throws {
        try connection.run("DELETE FROM tokens WHERE resource_id = ?", [.text(id)])
        try connection.run("DELETE FROM snapshots WHERE id = ?", [.text(id)])
    }

    // MARK: Operations

    private static let operationColumns = "id, kind, target_id, instance_id, state, error, created_at, done_at, argument"

    private func operationRow(_ row: SQLiteStatement) throws -> (CloudOperation, Int64?) {
        let error = try row.optionalText(5).map { try decoder.decode(CloudErrorBody.self, from: Data($0.utf8)) }
        guard let kind = OperationKind(rawValue: row.text(1) ?? "") else {
            throw CloudError(.internal, "operation \(row.text(0) ?? "?") in the state database has an unknown kind \(row.text(1) ?? "")")
        }
        let operation = CloudOperation(id: row.text(0) ?? "", kind: kind, targetId: row.text(2) ?? "",
                                  instanceId: row.optionalText(3), state: OperationState(rawValue: row.text(4) ?? "") ?? .failed,
                                  error: error, createdAt: date(row.integer(6)), doneAt: row.optionalInteger(7).map(date))
        return (operation, row.optionalInteger(8))
    }

    /// The operation and its argument (new size of a resize, 1 for a forced detach).
    func operation(id: String) throws -> (CloudOperation, argument: Int64?)? {
        operationLookups += 1
        return try connection.query("SELECT \(Self.operationColumns) FROM operations WHERE id = ?", [.text(id)], row: operationRow).first
    }

    func runningOperations() throws -> [(CloudOperation, argument: Int64?)] {
        try connection.query("SELECT \(Self.operationColumns) FROM operations WHERE state = 'running' ORDER BY created_at",
                             row: operationRow)
    }

    /// The running operation on `targetId` (for `instanceId`), if there is one.
    func runningOperation(targetId: String, instanceId: String? = nil) throws -> CloudOperation? {
        try connection.query("""
            SELECT \(Self.operationColumns) FROM operations
            WHERE state = 'running' AND target_id = ? AND coalesce(instance_id, '') = ? ORDER BY created_at DESC LIMIT 1
            """, [.text(targetId), .text(instanceId ?? "")], row: operationRow).first?.0
    }

    func insert(_ operation: CloudOperation, argument: Int64? = nil) throws {
        try connection.run("INSERT INTO operations(\(Self.operationColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            .text(operation.id), .text(operation.kind.rawValue), .text(operation.targetId),
            operation.instanceId.map(SQLiteValue.text) ?? .null, .text(operation.state.rawValue),
            try operation.error.map { .text(try json($0)) } ?? .null, .integer(millis(operation.createdAt)),
            operation.doneAt.map { .integer(millis($0)) } ?? .null, argument.map(SQLiteValue.integer) ?? .null,
        ])
    }

    func finish(operationId: String, error: CloudErrorBody?, at time: Date) throws {
        try connection.run("UPDATE operations SET state = ?, error = ?, done_at = ? WHERE id = ?", [
            .text(error == nil ? OperationState.succeeded.rawValue : OperationState.failed.rawValue),
            try error.map { .text(try json($0)) } ?? .null, .integer(millis(time)), .text(operationId),
        ])
    }

    /// Forgets finished operations older than `age`.
    func pruneOperations(olderThan cutoff: Date) throws {
        try connection.run("DELETE FROM operations WHERE state != 'running' AND done_at < ?", [.integer(millis(cutoff))])
    }

    // MARK: Idempotency tokens

    func token(_ token: String) throws -> (request: String, resourceId: String, operationId: String)? {
        try connection.query("SELECT request, resource_id, operation_id FROM tokens WHERE token = ?", [.text(token)]) {
            ($0.text(0) ?? "", $0.text(1) ?? "", $0.text(2) ?? "")
        }.first
    }

    func insertToken(_ token: String, request: String, resourceId: String, operationId: String) throws {
        try connection.run("INSERT INTO tokens(token, request, resource_id, operation_id) VALUES (?, ?, ?, ?)",
                           [.text(token), .text(request), .text(resourceId), .text(operationId)])
    }

    // MARK: Encoding

    func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private func millis(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    private func date(_ millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }
}
