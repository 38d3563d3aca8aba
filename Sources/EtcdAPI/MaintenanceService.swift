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
        r.hash = try contentHash(at: rev)
        return r
    }

    @Sendable func hashKV(request: Etcdserverpb_HashKVRequest) async throws -> Etcdserverpb_HashKVResponse {
        let rev = request.revision > 0 ? request.revision : store.revision
        var r = Etcdserverpb_HashKVResponse()
        r.header = headers.header(store.revision)
        r.hash = try contentHash(at: rev)
        r.compactRevision = store.compactedRevision
        r.hashRevision = rev
        return r
    }

    /// CRC-32C over every live key and value (with revisions) at `rev`.
    private func contentHash(at rev: Int64) throws -> UInt32 {
        let all = try store.range(RangeRequest(key: [0], rangeEnd: [0], revision: rev))
        var crc: UInt32 = 0
        for kv in all.kvs {
            var rec = kv.key
            rec.append(contentsOf: kv.value)
            withUnsafeBytes(of: kv.modRevision.littleEndian) { rec.append(contentsOf: $0) }
            crc = Checksum.crc32c(rec, extending: crc)
        }
        return crc
    }

    /// Streams a snapshot of the current key space: a Ballast dump (see
    /// docs/store.md), padded to 512-byte blocks and followed by its SHA-256,
    /// the framing `etcdctl snapshot save` checks.
    @Sendable func snapshot(
        requests: AsyncThrowingMapSequence<RequestStream, Etcdserverpb_SnapshotRequest>,
        send: @Sendable (Etcdserverpb_SnapshotResponse) async throws -> Void
    ) async throws {
        let rev = store.revision
        let all = try store.range(RangeRequest(key: [0], rangeEnd: [0], revision: rev))
        var blob = Array("BALLAST-SNAPSHOT 1 revision \(rev)\n".utf8)
        for kv in all.kvs {
            let p = Mvccpb_KeyValue(kv)
            let bytes: [UInt8] = try p.serializedBytes()
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { blob.append(contentsOf: $0) }
            blob.append(contentsOf: bytes)
        }
        if blob.count % 512 != 0 { blob.append(contentsOf: repeatElement(0, count: 512 - blob.count % 512)) }
        blob.append(contentsOf: SHA256.hash(data: blob))
        let chunk = 32 << 10
        var offset = 0
        while offset < blob.count {
            let end = min(blob.count, offset + chunk)
            var r = Etcdserverpb_SnapshotResponse()
            r.header = headers.header(rev)
            r.blob = Data(blob[offset..<end])
            r.remainingBytes = UInt64(blob.count - end)
            r.version = reportedEtcdVersion
            try await send(r)
            offset = end
        }
    }
}
