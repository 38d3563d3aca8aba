// Fuzz targets of the engine, the store and its wire: WAL records, SSTable blocks and
// footers, the MANIFEST, HTTP/2 frames and HPACK blocks, gRPC message framing, etcd requests.
import Foundation
import Synchronization
import NIOCore
import NIOEmbedded
import NIOHPACK
import SwiftProtobuf
@testable import EtcdAPI
@testable import GRPCWire
@testable import LSMTree
@testable import MVCCStore

extension FuzzTargets {
    static let store: [FuzzTarget] = [
        FuzzTarget("h2-connection", maxLength: 16 << 10, run: StoreFuzz.connection),
        FuzzTarget("hpack", maxLength: 8 << 10, run: StoreFuzz.hpack),
        FuzzTarget("grpc-framing", maxLength: 16 << 10, run: StoreFuzz.grpcFraming),
        FuzzTarget("etcd-requests", maxLength: 8 << 10, run: StoreFuzz.etcdRequest),
        FuzzTarget("wal-records", maxLength: 16 << 10, run: StoreFuzz.walRecords),
        FuzzTarget("sstable", maxLength: 16 << 10, run: StoreFuzz.sstable),
        FuzzTarget("sstable-block", maxLength: 8 << 10, run: StoreFuzz.block),
        FuzzTarget("manifest", maxLength: 8 << 10, run: StoreFuzz.manifest),
    ]
}

enum StoreFuzz {
    // MARK: The wire

    /// A router with the shapes of the store's methods that answer at once (no task, no thread).
    static let router: GRPCRouter = {
        var r = GRPCRouter()
        r.maxRequestMessageBytes = 64 << 10
        r.register("/f.S/Echo", .unary { request, responder in responder.succeed(request) })
        r.register("/f.S/Fail", .unary { _, responder in responder.fail(GRPCStatus(.invalidArgument, "no")) })
        return r
    }()

    /// Bytes after the client preface, fed to a connection handler on an embedded channel in
    /// two reads (split where the first byte says): frames, HPACK, flow control, resets, settings.
    static func connection(_ input: [UInt8]) {
        let split = input.isEmpty ? 0 : Int(input[0]) * input.count / 256
        feed([Array(HTTP2.clientPreface) + Array(input.dropFirst().prefix(split)), Array(input.dropFirst().dropFirst(split))])
    }

    /// An HPACK block decoded as the server does (its header list limit included).
    static func hpack(_ input: [UInt8]) {
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        decoder.maxHeaderListSize = GRPCConnectionHandler.maxHeaderListSize
        var buffer = ByteBuffer(bytes: input)
        _ = try? decoder.decodeHeaders(from: &buffer)
        // Twice on one decoder: the dynamic table carries state between blocks.
        var again = ByteBuffer(bytes: input.reversed())
        _ = try? decoder.decodeHeaders(from: &again)
    }

    /// The body of one unary call, cut into DATA frames where the input's first bytes say:
    /// gRPC's 5-byte message framing, lengths beyond the limit, messages split across frames.
    static func grpcFraming(_ input: [UInt8]) {
        guard input.count >= 2 else { return }
        let cuts = Int(input[0] % 8)
        var body = Array(input.dropFirst())
        var b = ByteBuffer()
        b.writeSettings([])
        b.writeHeaders(stream: 1, block: requestBlock("/f.S/Echo"), endStream: false, maxFrameSize: 16_384)
        var pieces: [[UInt8]] = []
        for i in 0..<cuts where !body.isEmpty {
            let n = min(body.count, 1 + Int(body[0]) * (i + 1) % 97)
            pieces.append(Array(body.prefix(n)))
            body.removeFirst(n)
        }
        pieces.append(body)
        for (i, piece) in pieces.enumerated() {
            b.writeFrameHeader(length: piece.count, type: .data, flags: i == pieces.count - 1 ? FrameFlag.endStream : 0, stream: 1)
            b.writeBytes(piece)
        }
        feed([HTTP2.clientPreface + Array(b.readableBytesView)])
    }

    static func requestBlock(_ path: String) -> [UInt8] {
        [0x83, 0x86] + HeaderBlock.literal(index: 4, path) + HeaderBlock.literal(index: 1, "localhost")
            + HeaderBlock.literal(index: 31, "application/grpc")
    }

    private static func feed(_ reads: [[UInt8]]) {
        let channel = EmbeddedChannel()
        let inbox = CompletionInbox(eventLoop: channel.eventLoop)
        var limits = GRPCWireLimits()
        limits.maxConcurrentStreams = 64
        limits.maxConnectionBufferedBytes = 1 << 20
        do {
            try channel.pipeline.syncOperations.addHandler(GRPCConnectionHandler(router: router, inbox: inbox, limits: limits))
            for read in reads where !read.isEmpty {
                try channel.writeInbound(ByteBuffer(bytes: read))
                channel.embeddedEventLoop.run()  // answers queued in the inbox
            }
            var written = 0
            while let out = try channel.readOutbound(as: ByteBuffer.self) { written += out.readableBytes }
            fuzzCheck(written < 64 << 20, "one connection wrote \(written) bytes for \(reads.map(\.count).reduce(0, +))")
        } catch {
            // The channel closing on a connection error is an answer, not a failure.
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    // MARK: etcd requests

    /// One store for the process, on disk in a temporary directory (the fuzzer runs millions of
    /// inputs), removed when the process exits; directories of processes that died without
    /// exiting (a crash the fuzzer found) are removed by the next one.
    static let store: MVCCStore = {
        let prefix = "ballast-fuzz-store-"
        let temporary = FileManager.default.temporaryDirectory.path
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: temporary)) ?? [] where entry.hasPrefix(prefix) {
            if let pid = pid_t(entry.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(atPath: temporary + "/" + entry)
            }
        }
        let dir = temporary + "/" + prefix + "\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        atexit {
            try? FileManager.default.removeItem(atPath: FileManager.default.temporaryDirectory.path + "/ballast-fuzz-store-\(getpid())")
        }
        var options = MVCCOptions()
        options.engine.syncMode = .none
        options.engine.writeBufferSize = 256 << 10
        options.groupCommitLinger = .zero
        options.leaseCheckInterval = .seconds(3600)
        // Writes are applied on the fuzzer's own thread (`answer`): nothing waits for another.
        options.writerThread = false
        return try! MVCCStore.open(path: dir, options: options)
    }()

    /// An etcd request protobuf (the first byte picks the message) decoded as the server
    /// decodes it, checked as the server checks it, and run against a real store.
    static func etcdRequest(_ input: [UInt8]) {
        guard let kind = input.first else { return }
        let bytes = Array(input.dropFirst())
        let limits = ServerLimits()
        do {
            switch kind % 6 {
            case 0:
                let r = try Etcdserverpb_RangeRequest(serializedBytes: bytes)
                guard !r.key.isEmpty else { return }
                let response = try store.range(r.model)
                fuzzCheck(r.limit <= 0 || response.kvs.count <= Int(clamping: r.limit), "a range returned more than its limit")
            case 1:
                let p = try Etcdserverpb_PutRequest(serializedBytes: bytes)
                try limits.check(p.key.count + p.value.count)
                _ = try runTxn(TxnRequest(success: [.put(p.model)]))
            case 2:
                let d = try Etcdserverpb_DeleteRangeRequest(serializedBytes: bytes)
                _ = try runTxn(TxnRequest(success: [.deleteRange(d.model)]))
            case 3:
                let t = try Etcdserverpb_TxnRequest(serializedBytes: bytes)
                try limits.check(KVService.payloadBytes(t))
                _ = try runTxn(t.model)
            case 4:
                let w = try Etcdserverpb_WatchRequest(serializedBytes: bytes)
                if case .createRequest(let c)? = w.requestUnion, c.startRevision >= 0 {
                    var req = WatchRequest(key: c.key.isEmpty ? [0] : [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd),
                                           startRevision: c.startRevision, prevKV: c.prevKv)
                    req.noPut = c.filters.contains(.noput)
                    try store.watch(req).cancel()
                }
            default:
                let l = try Etcdserverpb_LeaseGrantRequest(serializedBytes: bytes)
                // Through the writer's queue with a callback: no task, so nothing waits on the cooperative pool.
                if case .leaseGranted(let id, _, _) = try answer({ store.queue.submit(.leaseGrant(id: l.id, ttl: l.ttl), done: $0) }) {
                    _ = store.leaseTimeToLive(id)
                    _ = store.leaseKeepAlive(id)
                    _ = try answer { store.queue.submit(.leaseRevoke(id), done: $0) }
                }
            }
        } catch {
            // Undecodable or refused: the server answers with a status.
        }
    }

    private static func runTxn(_ request: TxnRequest) throws -> TxnResponse {
        try answer { store.txn(request, done: $0) }
    }

    /// Queues a request and runs it at once on this thread (the store has no writer thread of
    /// its own here): a fuzz target is synchronous, and its answer is there when this returns.
    private static func answer<T: Sendable>(_ start: (@escaping @Sendable (Result<T, any Error>) -> Void) -> Void) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        start { r in result.withLock { $0 = r } }
        store.runQueuedWrites()
        let answered = result.withLock { $0 }
        fuzzCheck(answered != nil, "a queued write was run and not answered")
        return try answered!.get()
    }

    // MARK: The engine's files

    /// A WAL segment's bytes: framing, checksums, torn tails, then each record's batch.
    static func walRecords(_ input: [UInt8]) {
        // The segment's number as its first header says (records of other numbers end a log).
        let number = input.count >= 13 ? input[9..<13].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : 7
        let result = input.withUnsafeBytes { try? LogReader.parse($0, path: "fuzz.log", number: number) }
        guard let result else { return }
        fuzzCheck(result.validEnd <= input.count, "the valid end is past the input")
        for record in result.records {
            record.withUnsafeBytes { raw in
                guard raw.count >= WriteBatch.headerSize else { return }
                _ = try? WriteBatch.forEach(raw) { _, _, _ in }
            }
        }
    }

    /// A whole table file: footer, index, filter and properties at open, then every entry
    /// forward and backward, and point lookups of the keys found.
    static func sstable(_ input: [UInt8]) {
        let path = scratch("sst")
        guard FileManager.default.createFile(atPath: path, contents: Data(input)) else { return }
        defer { unlink(path) }
        guard let table = try? TableReader(path: path, fileNumber: 1, blockCache: nil) else { return }
        let it = table.makeIterator()
        var keys: [[UInt8]] = []
        do {
            try it.seekToFirst()
            while it.isValid, keys.count < 10_000 {
                keys.append(it.key)
                try it.next()
            }
            try it.seekToLast()
            var steps = 0
            while it.isValid, steps < 10_000 {
                try it.prev()
                steps += 1
            }
        } catch {}
        for key in keys.prefix(16) where key.count >= 8 {
            key.withUnsafeBytes { k in _ = try? table.get(key, userKey: UnsafeRawBufferPointer(rebasing: k[0..<(k.count - 8)])) }
        }
    }

    /// One data or index block: restarts, prefix compression, seeks.
    static func block(_ input: [UInt8]) {
        guard let block = try? Block(input, name: "fuzz") else { return }
        let it = block.makeIterator()
        var steps = 0
        do {
            try it.seekToFirst()
            while it.isValid, steps < 10_000 {
                try it.next()
                steps += 1
            }
            try it.seek(Array(input.prefix(12)))
            try it.seekForPrev(Array(input.suffix(12)))
            try it.seekToLast()
            while it.isValid, steps < 20_000 {
                try it.prev()
                steps += 1
            }
        } catch {}
    }

    /// A MANIFEST holding the input as one record after a valid first edit, recovered as an
    /// open recovers it: decoding the version edits and applying them to a version.
    static func manifest(_ input: [UInt8]) {
        let dir = scratch("manifest")
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil else { return }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var first = VersionEdit()
        first.formatVersion = lsmFormatVersion
        var log: [UInt8] = []
        for payload in [first.encode(), input] {
            var record = [UInt8](repeating: 0, count: logRecordHeaderSize) + payload
            LogWriter.frame(&record, number: 1)
            log += record
        }
        FileManager.default.createFile(atPath: dir + "/MANIFEST-000001", contents: Data(log))
        FileManager.default.createFile(atPath: dir + "/CURRENT", contents: Data("MANIFEST-000001\n".utf8))
        let versions = VersionSet(directory: dir, maxLevels: 7)
        _ = try? versions.recover()
    }

    /// A path of this process's own under the temporary directory.
    private static func scratch(_ what: String) -> String {
        FileManager.default.temporaryDirectory.path + "/ballast-fuzz-\(what)-\(getpid())-\(UInt64.random(in: 0 ... .max))"
    }
}
