import Crypto
import Foundation
import GRPCWire
import LSMTree
import MVCCStore

/// The etcd version Ballast reports: at least 3.5.13, so that Kubernetes'
/// API server enables watch progress requests (RequestWatchProgress).
public let reportedEtcdVersion = "3.5.21"

/// etcdserverpb.Maintenance: status, alarms, defragment (a full engine
/// compaction that never blocks reads or writes), hashes and snapshots.
struct MaintenanceService {
    let store: MVCCStore
    let headers: HeaderFactory

    func register(in router: inout GRPCRouter) {
        router.unary("/etcdserverpb.Maintenance/Status", status)
        router.unary("/etcdserverpb.Maintenance/Alarm", alarm)
        router.unary("/etcdserverpb.Maintenance/Defragment", defragment)
        router.unary("/etcdserverpb.Maintenance/Hash", hash)
        router.unary("/etcdserverpb.Maintenance/HashKV", hashKV)
        router.streaming("/etcdserverpb.Maintenance/Snapshot", snapshot)
    }

    @Sendable func status(request: Etcdserverpb_StatusRequest) async throws -> Etcdserverpb_StatusResponse {
        var r = Etcdserverpb_StatusResponse()
        let rev = store.revision
        r.header = headers.header(rev)
        r.version = reportedEtcdVersion
        let stats = store.engineStatistics
        r.dbSize = Int64(stats.diskBytes)
        r.dbSizeInUse = Int64(stats.diskBytes)
        r.leader = headers.memberID
        r.raftIndex = UInt64(rev)
        r.raftAppliedIndex = UInt64(rev)
        r.raftTerm = 1
        r.errors = store.activeAlarms.map { "memberID:\(headers.memberID) alarm:\($0 == .noSpace ? "NOSPACE" : "CORRUPT") " }
        if let reason = store.currentHealth.reason, store.activeAlarms.isEmpty {
            r.errors.append(reason)  // a storage failure: `etcdctl endpoint status` shows it, EtcdClient.health() reports it
        }
        return r
    }

    @Sendable func alarm(request: Etcdserverpb_AlarmRequest) async throws -> Etcdserverpb_AlarmResponse {
        if request.action == .deactivate {
            switch request.alarm {
            case .nospace: try await store.disarm(.noSpace)
            case .corrupt: try await store.disarm(.corrupt)
            default: break
            }
        }
        var r = Etcdserverpb_AlarmResponse()
        r.header = headers.header(store.revision)
        r.alarms = store.activeAlarms.map { a in
            var m = Etcdserverpb_AlarmMember()
            m.memberID = headers.memberID
            m.alarm = a == .noSpace ? .nospace : .corrupt
            return m
        }
        return r
    }

    @Sendable func defragment(request: Etcdserverpb_DefragmentRequest) async throws -> Etcdserverpb_DefragmentResponse {
        try await store.compactStorage()
        var r = Etcdserverpb_DefragmentResponse()
        r.header = headers.header(store.revision)
        return r
    }

    @Sendable func hash(request: Etcdserverpb_HashRequest) async throws -> Etcdserverpb_HashResponse {
        var r = Etcdserverpb_HashResponse()
        let rev = store.revision
        r.header = headers.header(rev)
        r.hash = try await contentHash(at: rev)
        return r
    }

    @Sendable func hashKV(request: Etcdserverpb_HashKVRequest) async throws -> Etcdserverpb_HashKVResponse {
        let rev = request.revision > 0 ? request.revision : store.revision
        var r = Etcdserverpb_HashKVResponse()
        r.header = headers.header(store.revision)
        r.hash = try await contentHash(at: rev)
        r.compactRevision = store.compactedRevision
        r.hashRevision = rev
        return r
    }

    /// Bytes of keys and values read per batch by hashes and snapshots.
    static let batchBytes = 1 << 20

    /// CRC-32C over every live key and value (with revisions) at `rev`,
    /// read in batches on the store's reader threads.
    private func contentHash(at rev: Int64) async throws -> UInt32 {
        let cursor = try store.cursor(at: rev)
        var crc: UInt32 = 0
        while !cursor.isFinished {
            crc = try await store.offload { [crc] in
                var crc = crc
                for kv in try cursor.next(maxBytes: Self.batchBytes) {
                    var rec = kv.key
                    rec.append(contentsOf: kv.value)
                    withUnsafeBytes(of: kv.modRevision.littleEndian) { rec.append(contentsOf: $0) }
                    crc = Checksum.crc32c(rec, extending: crc)
                }
                return crc
            }
        }
        return crc
    }

    /// Streams a snapshot of the key space at one revision: a Ballast dump
    /// (see docs/store.md), padded to 512-byte blocks and followed by its
    /// SHA-256, the framing `etcdctl snapshot save` checks. Read in batches
    /// on the store's reader threads and sent as it is read: the server
    /// holds one batch, whatever the size of the store. A first pass counts
    /// the bytes, so that every response says how many remain.
    @Sendable func snapshot(
        requests: AsyncThrowingMapSequence<RequestStream, Etcdserverpb_SnapshotRequest>,
        send: @Sendable (Etcdserverpb_SnapshotResponse) async throws -> Void
    ) async throws {
        let rev = store.revision
        let header = Array("BALLAST-SNAPSHOT 1 revision \(rev)\n".utf8)
        let sizing = try store.cursor(at: rev)
        var size = header.count
        while !sizing.isFinished {
            size += try await store.offload {
                try sizing.next(maxBytes: Self.batchBytes).reduce(0) { n, kv in n + 4 + (try Mvccpb_KeyValue(kv).serializedBytes() as [UInt8]).count }
            }
        }
        let padded = (size + 511) / 512 * 512
        let total = padded + SHA256.byteCount
        let cursor = try store.cursor(at: rev)
        var hasher = SHA256()
        var sent = 0
        var pending = header
        func emit(_ bytes: [UInt8]) async throws {
            hasher.update(data: bytes)
            sent += bytes.count
            var r = Etcdserverpb_SnapshotResponse()
            r.header = headers.header(rev)
            r.blob = Data(bytes)
            r.remainingBytes = UInt64(max(0, total - sent))
            r.version = reportedEtcdVersion
            try await send(r)
        }
        let chunk = 32 << 10
        while !cursor.isFinished {
            let records = try await store.offload { () -> [UInt8] in
                var out: [UInt8] = []
                for kv in try cursor.next(maxBytes: Self.batchBytes) {
                    let bytes: [UInt8] = try Mvccpb_KeyValue(kv).serializedBytes()
                    withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out.append(contentsOf: $0) }
                    out.append(contentsOf: bytes)
                }
                return out
            }
            pending.append(contentsOf: records)
            var offset = 0
            while pending.count - offset >= chunk {
                try await emit(Array(pending[offset..<(offset + chunk)]))
                offset += chunk
            }
            pending.removeFirst(offset)
        }
        let padding = padded - sent - pending.count
        guard (0..<512).contains(padding) else {
            throw GRPCStatus(.internalError, "etcdserver: the snapshot changed between its two passes (\(size) bytes counted); retry")
        }
        pending.append(contentsOf: repeatElement(0, count: padding))
        var offset = 0
        while offset < pending.count {
            let n = min(chunk, pending.count - offset)
            try await emit(Array(pending[offset..<(offset + n)]))
            offset += n
        }
        let digest = Array(hasher.finalize())
        sent += digest.count
        var last = Etcdserverpb_SnapshotResponse()
        last.header = headers.header(rev)
        last.blob = Data(digest)
        last.remainingBytes = 0
        last.version = reportedEtcdVersion
        try await send(last)
    }
}
