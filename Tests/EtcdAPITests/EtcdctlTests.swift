import Foundation
import Testing
import TestSupport

/// The real etcdctl (Debian's etcd-client, v3.4) against `ballast store serve`,
/// asserting on what etcdctl prints.
@Suite(.serialized, .enabled("etcdctl is not installed: make test installs Debian's etcd-client") { await haveEtcdctl() })
struct EtcdctlTests {
    @Test func putGetDeleteAndRanges() async throws {
        let s = try await StoreServer.start()
        #expect(try await s.etcdctl(["put", "foo", "bar"]).stdout == "OK\n")
        #expect(try await s.etcdctl(["put", "fob", "baz"]).stdout == "OK\n")
        #expect(try await s.etcdctl(["put", "zoo", "z"]).stdout == "OK\n")
        #expect(try await s.etcdctl(["get", "foo"]).stdout == "foo\nbar\n")
        #expect(try await s.etcdctl(["get", "--prefix", "fo"]).stdout == "fob\nbaz\nfoo\nbar\n")
        #expect(try await s.etcdctl(["get", "--prefix", "fo", "--keys-only"]).stdout == "fob\n\nfoo\n\n")
        #expect(try await s.etcdctl(["get", "--prefix", "", "--limit", "1"]).stdout == "fob\nbaz\n")
        #expect(try await s.etcdctl(["get", "--from-key", "foo"]).stdout == "foo\nbar\nzoo\nz\n")
        #expect(try await s.etcdctl(["get", "--prefix", "", "-w", "json"]).stdout.contains("\"count\":3"))
        #expect(try await s.etcdctl(["put", "foo", "bar2"]).stdout == "OK\n")  // revision 5
        #expect(try await s.etcdctl(["get", "foo", "--rev", "2"]).stdout == "foo\nbar\n")
        #expect(try await s.etcdctl(["get", "foo", "--rev", "5"]).stdout == "foo\nbar2\n")
        #expect(try await s.etcdctl(["get", "foo", "-w", "json"]).stdout.contains("\"revision\":5"))
        #expect(try await s.etcdctl(["del", "--prefix", "fo"]).stdout == "2\n")
        #expect(try await s.etcdctl(["get", "foo"]).stdout == "")
        let future = try await s.etcdctl(["get", "foo", "--rev", "100"])
        #expect(future.status != 0 && future.stderr.contains("etcdserver: mvcc: required revision is a future revision"))
    }

    @Test func separateMetricsListener() async throws {
        let metricsPort = freePort()
        let s = try await StoreServer.start(extraArgs: ["--listen-metrics-urls", "http://127.0.0.1:\(metricsPort)"], healthPort: metricsPort)
        #expect(try await s.etcdctl(["put", "a", "b"]).stdout == "OK\n")
        let metrics = try await run("curl", ["-s", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        #expect(metrics.contains("etcd_debugging_mvcc_current_revision 2"))
        // The client port keeps serving HTTP/1.1 next to gRPC, as etcd's does.
        #expect(try await run("curl", ["-s", "\(s.endpoint)/health"]).stdout == "{\"health\":\"true\",\"reason\":\"\"}")
        #expect(try await run("curl", ["-s", "\(s.endpoint)/metrics"]).stdout.contains("grpc_server_handled_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\"} 1"))
    }

    @Test func oversizedRequestIsRefusedWithEtcdsMessage() async throws {
        let s = try await StoreServer.start()
        let big = String(repeating: "x", count: 1_600_000)  // over the 1.5 MiB request limit
        let r = try await s.etcdctl(["put", "big"], input: big)
        #expect(r.status != 0 && r.stderr.contains("etcdserver: request is too large"), "got: \(r.stderr)")
        #expect(try await s.etcdctl(["get", "big"]).stdout == "")
    }

    @Test func interactiveTxn() async throws {
        let s = try await StoreServer.start()
        try await s.etcdctl(["put", "k", "v1"])
        let input = "mod(\"k\") > \"0\"\n\nput k v2\nget k\n\nput k failed\n\n"
        let r = try await s.etcdctl(["txn", "-i"], input: input)
        // etcdctl prints its prompts, then the outcome and each response.
        #expect(r.stdout.hasSuffix("SUCCESS\n\nOK\n\nk\nv2\n"), "got: \(r.stdout) \(r.stderr)")
        let failing = try await s.etcdctl(["txn", "-i"], input: "val(\"k\") = \"nope\"\n\nput k x\n\nget k\n\n")
        #expect(failing.stdout.hasSuffix("FAILURE\n\nk\nv2\n"), "got: \(failing.stdout) \(failing.stderr)")
    }

    @Test func watchLiveAndFromRevision() async throws {
        let s = try await StoreServer.start()
        try await s.etcdctl(["put", "w", "1"])  // rev 2
        let watcher = try TestProcess(["etcdctl", "--endpoints", s.endpoint, "watch", "w", "--prev-kv", "--rev", "2"],
                                      environment: ["ETCDCTL_API": "3"], logPath: s.dataDir + ".watch")
        defer {
            watcher.kill()
            try? FileManager.default.removeItem(atPath: s.dataDir + ".watch")
        }
        // History first (rev 2), then the live changes.
        _ = await waitUntil(timeout: .seconds(10)) { watcher.log.hasPrefix("PUT\nw\n1\n") }
        try await s.etcdctl(["put", "w", "2"])
        try await s.etcdctl(["del", "w"])
        let expected = "PUT\nw\n1\nPUT\nw\n1\nw\n2\nDELETE\nw\n2\nw\n\n"
        _ = await waitUntil(timeout: .seconds(10)) { watcher.log == expected }
        await watcher.terminate()
        let text = watcher.log
        // History (rev 2), then the live put with its previous value, then the delete.
        #expect(text == "PUT\nw\n1\nPUT\nw\n1\nw\n2\nDELETE\nw\n2\nw\n\n", "got: \(text)")
    }

    @Test func leases() async throws {
        let s = try await StoreServer.start()
        let grant = try await s.etcdctl(["lease", "grant", "60"]).stdout
        let id = try #require(grant.split(separator: " ").dropFirst().first.map(String.init), "no lease id in: \(grant)")
        #expect(grant == "lease \(id) granted with TTL(60s)\n")
        #expect(try await s.etcdctl(["put", "lk", "v", "--lease", id]).stdout == "OK\n")
        let ttl = try await s.etcdctl(["lease", "timetolive", id, "--keys"]).stdout
        #expect(ttl.hasPrefix("lease \(id) granted with TTL(60s), remaining(") && ttl.hasSuffix("attached keys([lk])\n"), "got: \(ttl)")
        #expect(try await s.etcdctl(["lease", "list"]).stdout == "found 1 leases\n\(id)\n")
        #expect(try await s.etcdctl(["lease", "keep-alive", "--once", id]).stdout == "lease \(id) keepalived with TTL(60)\n")
        #expect(try await s.etcdctl(["lease", "revoke", id]).stdout == "lease \(id) revoked\n")
        #expect(try await s.etcdctl(["get", "lk"]).stdout == "")
        let missing = try await s.etcdctl(["lease", "revoke", id])
        #expect(missing.stderr.contains("etcdserver: requested lease not found"))
        #expect(try await s.etcdctl(["lease", "timetolive", id]).stdout == "lease \(id) already expired\n")
    }

    @Test func maintenance() async throws {
        let s = try await StoreServer.start()
        for i in 0..<5 { try await s.etcdctl(["put", "m", "\(i)"]) }  // revs 2...6
        #expect(try await s.etcdctl(["compaction", "4"]).stdout == "compacted revision 4\n")
        let old = try await s.etcdctl(["get", "m", "--rev", "3"])
        #expect(old.stderr.contains("etcdserver: mvcc: required revision has been compacted"))
        #expect(try await s.etcdctl(["defrag"]).stdout == "Finished defragmenting etcd member[\(s.endpoint)]\n")
        let status = try await s.etcdctl(["endpoint", "status"]).stdout
        #expect(status.hasPrefix("\(s.endpoint), ") && status.contains(", 3.5.21, ") && status.contains(", true, false, "), "got: \(status)")
        let health = try await s.etcdctl(["endpoint", "health"])  // etcdctl 3.4 prints the verdict on stderr
        #expect((health.stdout + health.stderr).contains("\(s.endpoint) is healthy"))
        let members = try await s.etcdctl(["member", "list"]).stdout
        #expect(members.contains(", started, ballast, ") && members.contains(s.endpoint), "got: \(members)")
        #expect(try await s.etcdctl(["alarm", "list"]).stdout == "")
        let file = s.dataDir + "-snapshot.db"
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(try await s.etcdctl(["snapshot", "save", file]).stdout.contains("Snapshot saved at \(file)"))
        #expect((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? 0) ?? 0 > 512)
        let hash = try await s.etcdctl(["endpoint", "hashkv"]).stdout
        #expect(hash.hasPrefix("\(s.endpoint), "))
        let metrics = try await run("curl", ["-s", "\(s.endpoint)/metrics"]).stdout
        #expect(metrics.contains("process_resident_memory_bytes ") && metrics.contains("etcd_debugging_mvcc_current_revision 6"))
    }

    @Test func surviveSIGKILLAndRestart() async throws {
        let s = try await StoreServer.start()
        for i in 0..<20 { try await s.etcdctl(["put", "k\(i)", "v\(i)"]) }
        await s.stop(signal: SIGKILL)
        try await s.start()
        #expect(try await s.etcdctl(["get", "--prefix", "k", "-w", "json"]).stdout.contains("\"count\":20"))
        #expect(try await s.etcdctl(["put", "after", "x", "-w", "json"]).stdout.contains("\"revision\":22"))
    }
}
