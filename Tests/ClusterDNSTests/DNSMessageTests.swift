import Testing
@testable import ClusterDNS

@Suite struct DNSMessageTests {
    @Test func roundTripsEveryRecordType() throws {
        var message = DNSMessage(header: DNSHeader(id: 42))
        message.header.isResponse = true
        message.header.authoritative = true
        message.header.responseCode = .nameError
        let name = DNSName("web.default.svc.cluster.local")!
        message.questions = [DNSQuestion(name: name, type: .any)]
        message.answers = [
            DNSRecord(name: name, type: .a, ttl: 30, data: .a(IPv4Address("198.19.0.20")!)),
            DNSRecord(name: name, type: .cname, ttl: 30, data: .cname(DNSName("example.org")!)),
            DNSRecord(name: DNSName("_http._tcp.web.default.svc.cluster.local")!, type: .srv, ttl: 30,
                      data: .srv(priority: 0, weight: 100, port: 80, target: name)),
            DNSRecord(name: DNSName("20.0.19.198.in-addr.arpa")!, type: .ptr, ttl: 30, data: .ptr(name)),
            DNSRecord(name: DNSName("dns-version.cluster.local")!, type: .txt, ttl: 30, data: .txt([Array("1.1.0".utf8)])),
        ]
        message.authority = [DNSRecord(name: DNSName("cluster.local")!, type: .soa, ttl: 30,
                                       data: .soa(mname: DNSName("ns.dns.cluster.local")!, rname: DNSName("hostmaster.cluster.local")!,
                                                  serial: 9, refresh: 1, retry: 2, expire: 3, minimum: 30))]
        message.additional = [DNSRecord(name: .root, type: .opt, dnsClass: 1232, ttl: 0, data: .other([]))]
        let bytes = message.encoded()
        #expect(try DNSMessage(parsing: bytes) == message)
        // Compression: the name is written in full in the question (at byte 12) and in the SRV
        // target (never compressed, RFC 2782); everywhere else it is a pointer.
        let label: [UInt8] = [3] + Array("web".utf8) + [7] + Array("default".utf8)
        let fullCopies = (0..<(bytes.count - label.count)).filter { Array(bytes[$0..<$0 + label.count]) == label }
        #expect(fullCopies.count == 2)
        #expect(fullCopies.first == 12)
        #expect((0..<(bytes.count - 1)).contains { bytes[$0] == 0xc0 && bytes[$0 + 1] == 12 })
    }

    @Test func namesCompareWithoutCase() {
        #expect(DNSName("Web.Default.SVC.cluster.local")!.isSubdomain(of: DNSName("CLUSTER.local")!))
        #expect(DNSName("Web.Default.SVC.cluster.local")!.lowercased == DNSName("web.default.svc.cluster.local")!)
        #expect(!DNSName("local")!.isSubdomain(of: DNSName("cluster.local")!))
        #expect(DNSName("a..b") == nil)
        #expect(DNSName(String(repeating: "a", count: 64)) == nil)
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")) == nil)   // 257 bytes
        #expect(DNSName(Array(repeating: String(repeating: "a", count: 62), count: 4).joined(separator: ".")) != nil)   // 253 bytes
    }

    static let header: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]

    @Test(arguments: [
        // A pointer to itself, and one pointing forwards.
        (header + [0xc0, 12, 0, 1, 0, 1], DNSWireError.Code.pointerLoop),
        (header + [0xc0, 14, 1, 0x61, 0, 0, 1, 0, 1], DNSWireError.Code.pointerLoop),
        // A label running past the end; a reserved label type; a question without its type.
        (header + [5, 0x61, 0x62], DNSWireError.Code.truncated),
        (header + [0x41, 0, 0, 1, 0, 1], DNSWireError.Code.badName),
        (header + [1, 0x61, 0, 0], DNSWireError.Code.truncated),
        // Bytes left over; a count larger than the records that follow.
        (header + [0, 0, 1, 0, 1, 9], DNSWireError.Code.trailingBytes),
        ([0x12, 0x34, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], DNSWireError.Code.truncated),
    ])
    func refusesMalformedMessages(bytes: [UInt8], code: DNSWireError.Code) {
        #expect(throws: DNSWireError.self) { try DNSMessage(parsing: bytes) }
        do {
            _ = try DNSMessage(parsing: bytes)
        } catch {
            #expect(error.code == code, "\(error)")
        }
    }

    @Test func aNameLongerThan255BytesThroughPointersIsRefused() {
        // The question "a.", then answers whose owners are a 63-byte label and a pointer to the
        // previous owner: the fourth owner would be 4 × 64 + 3 bytes long.
        var bytes: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x05, 0, 0, 0, 0] + [1, 0x61, 0, 0, 1, 0, 1]
        var previous = 12
        for _ in 0..<5 {
            let here = bytes.count
            bytes += [63] + Array(repeating: 0x62, count: 63) + [0xc0 | UInt8(previous >> 8), UInt8(previous & 0xff)]
            bytes += [0, 1, 0, 1, 0, 0, 0, 30, 0, 0]
            previous = here
        }
        do {
            _ = try DNSMessage(parsing: bytes)
            Issue.record("a 259-byte name was read")
        } catch {
            #expect(error.code == .badName, "\(error)")
        }
        // Three of them are fine (3 × 64 + 3 bytes).
        var three = bytes
        three[7] = 3
        let cut = 12 + 7 + 3 * (64 + 2 + 10)
        #expect((try? DNSMessage(parsing: Array(three.prefix(cut))))?.answers.count == 3)
    }

    @Test func aLongAnswerIsTruncatedToTheLimit() {
        var message = Fixtures.query("db.data.svc.cluster.local", .a)
        message.header.isResponse = true
        message.answers = (0..<100).map { DNSRecord(name: DNSName("db.data.svc.cluster.local")!, type: .a, ttl: 30, data: .a(IPv4Address(UInt32($0)))) }
        let full = message.encoded()
        #expect(full.count > 512)
        let short = message.encoded(limit: 512)
        #expect(short.count <= 512)
        let parsed = try? DNSMessage(parsing: short)
        #expect(parsed?.header.truncated == true)
        #expect(parsed?.answers.isEmpty == true)
        #expect(parsed?.questions == message.questions)
    }
}
