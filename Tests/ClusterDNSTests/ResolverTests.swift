import ClusterAPI
import Testing
@testable import ClusterDNS

@Suite struct ResolverTests {
    let resolver = DNSResolver(records: Fixtures.records)

    func ask(_ name: String, _ type: DNSType) -> DNSMessage {
        let response = resolver.respond(to: Fixtures.query(name, type))
        // What goes on the wire reads back the same.
        #expect((try? DNSMessage(parsing: response.encoded())) == response)
        return response
    }

    @Test func aClusterIPServiceHasItsAddress() {
        let response = ask("web.default.svc.cluster.local", .a)
        #expect(response.header.responseCode == .noError)
        #expect(response.header.authoritative && response.header.isResponse && response.header.recursionDesired)
        #expect(response.header.id == 0x1234)
        #expect(response.addresses == ["198.19.0.20"])
        #expect(response.answers.allSatisfy { $0.ttl == 30 })
        // Any case, echoed as asked.
        let upper = ask("WEB.Default.svc.Cluster.Local", .a)
        #expect(upper.addresses == ["198.19.0.20"])
        #expect(upper.answers.first?.name.description == "WEB.Default.svc.Cluster.Local.")
    }

    @Test func aHeadlessServiceHasEachReadyEndpoint() {
        #expect(ask("db.data.svc.cluster.local", .a).addresses == ["198.18.1.5", "198.18.2.6", "198.18.1.9"])
        #expect(ask("db-0.db.data.svc.cluster.local", .a).addresses == ["198.18.1.5"])
        #expect(ask("db-1.db.data.svc.cluster.local", .a).addresses == ["198.18.2.6"])
        // Not ready: absent.
        #expect(ask("db-2.db.data.svc.cluster.local", .a).header.responseCode == .nameError)
        // Without a hostname: its address with dashes.
        #expect(ask("198-18-1-9.db.data.svc.cluster.local", .a).addresses == ["198.18.1.9"])
        // The selector's endpoints of a ClusterIP Service get no names of their own.
        #expect(ask("198-18-1-100.web.default.svc.cluster.local", .a).header.responseCode == .nameError)
        // A headless Service without endpoints exists, with nothing in it.
        let empty = ask("empty.default.svc.cluster.local", .a)
        #expect(empty.header.responseCode == .noError && empty.answers.isEmpty && empty.authority.first?.type == .soa)
    }

    @Test func namedPortsHaveSRVRecords() {
        let web = ask("_http._tcp.web.default.svc.cluster.local", .srv)
        #expect(web.answers.map(\.data) == [.srv(priority: 0, weight: 100, port: 80, target: DNSName("web.default.svc.cluster.local")!)])
        #expect(web.additional.map(\.data) == [.a(IPv4Address("198.19.0.20")!)])
        #expect(ask("_dns._udp.web.default.svc.cluster.local", .srv).answers.count == 1)
        #expect(ask("_dns._tcp.web.default.svc.cluster.local", .srv).header.responseCode == .nameError)
        // `_tcp.web…` has a descendant: it exists.
        #expect(ask("_tcp.web.default.svc.cluster.local", .srv).header.responseCode == .noError)
        let db = ask("_pg._tcp.db.data.svc.cluster.local", .srv)
        #expect(db.answers.count == 3)
        let targets = db.answers.compactMap { if case .srv(_, _, 5432, let target) = $0.data { target.description } else { nil } }
        #expect(targets == ["db-0.db.data.svc.cluster.local.", "db-1.db.data.svc.cluster.local.", "198-18-1-9.db.data.svc.cluster.local."])
        #expect(db.additional.count == 3)
    }

    @Test func addressesHavePTRRecords() {
        #expect(ask("20.0.19.198.in-addr.arpa", .ptr).answers.map(\.data) == [.ptr(DNSName("web.default.svc.cluster.local")!)])
        #expect(ask("6.2.18.198.in-addr.arpa", .ptr).answers.map(\.data) == [.ptr(DNSName("db-1.db.data.svc.cluster.local")!)])
        // An address the cluster does not know: not ours to answer.
        #expect(ask("1.1.1.1.in-addr.arpa", .ptr).header.responseCode == .refused)
    }

    @Test func absentNamesAndOtherTypes() {
        let absent = ask("nope.default.svc.cluster.local", .a)
        #expect(absent.header.responseCode == .nameError && absent.header.authoritative)
        #expect(absent.authority.map(\.type) == [.soa])
        // AAAA: the name exists, IPv4 only: NODATA.
        let aaaa = ask("web.default.svc.cluster.local", .aaaa)
        #expect(aaaa.header.responseCode == .noError && aaaa.answers.isEmpty && aaaa.authority.map(\.type) == [.soa])
        // Empty non-terminals.
        #expect(ask("default.svc.cluster.local", .a).header.responseCode == .noError)
        #expect(ask("svc.cluster.local", .a).header.responseCode == .noError)
        #expect(ask("other.svc.cluster.local", .a).header.responseCode == .nameError)
        // The apex, the schema version.
        #expect(ask("cluster.local", .soa).answers.map(\.type) == [.soa])
        #expect(ask("cluster.local", .ns).answers.map(\.type) == [.ns])
        #expect(ask("dns-version.cluster.local", .txt).answers.map(\.data) == [.txt([Array("1.1.0".utf8)])])
    }

    @Test func podNamesAnswerTheirAddressInThePodRange() {
        let records = Fixtures.records
        let pods = DNSResolver(records: ClusterRecords(domain: Fixtures.domain, ttl: 30, serial: 7, podRange: IPv4CIDR("198.18.0.0/16"),
                                                       services: [], slices: []))
        func ask(_ name: String, _ type: DNSType) -> DNSMessage { pods.respond(to: Fixtures.query(name, type)) }
        // Any namespace, any address of the range, without a pod to check against (kube-dns,
        // CoreDNS `pods insecure`); the name echoed as asked.
        let answer = ask("198-18-3-7.Data.pod.cluster.local", .a)
        #expect(answer.header.responseCode == .noError && answer.header.authoritative && answer.addresses == ["198.18.3.7"])
        #expect(answer.answers.first?.name.description == "198-18-3-7.Data.pod.cluster.local." && answer.answers.first?.ttl == 30)
        #expect((try? DNSMessage(parsing: answer.encoded())) == answer)
        #expect(ask("198-18-0-0.x.pod.cluster.local", .any).addresses == ["198.18.0.0"])
        // The name exists, IPv4 only: AAAA is NODATA; so are the namespace and `pod` above it.
        for (name, type) in [("198-18-3-7.data.pod.cluster.local", DNSType.aaaa), ("data.pod.cluster.local", .a), ("pod.cluster.local", .a)] {
            let response = ask(name, type)
            #expect(response.header.responseCode == .noError && response.answers.isEmpty && response.authority.map(\.type) == [.soa], "\(name)")
        }
        // Outside the range, not an address, leading zeros, wrong depth: no such name.
        for name in ["10-0-0-1.data.pod.cluster.local", "198-19-0-1.data.pod.cluster.local", "198-18-3.data.pod.cluster.local",
                     "198-18-3-256.data.pod.cluster.local", "198-18-03-7.data.pod.cluster.local", "198-18-3-7-1.data.pod.cluster.local",
                     "web.data.pod.cluster.local", "x.198-18-3-7.data.pod.cluster.local", "198.18.3.7.data.pod.cluster.local"] {
            #expect(ask(name, .a).header.responseCode == .nameError, "\(name)")
        }
        // Without a pod range (`ballast dns` without --cluster-cidr): no pod records at all.
        let without = DNSResolver(records: records)
        #expect(without.respond(to: Fixtures.query("198-18-3-7.data.pod.cluster.local", .a)).header.responseCode == .nameError)
        #expect(without.respond(to: Fixtures.query("pod.cluster.local", .a)).header.responseCode == .nameError)
        // The Service names are untouched by the range.
        #expect(ask("web.default.svc.cluster.local", .a).header.responseCode == .nameError)
    }

    @Test func externalNameIsACNAME() {
        let response = ask("ext.default.svc.cluster.local", .a)
        #expect(response.answers.map(\.data) == [.cname(DNSName("example.org")!)])
    }

    @Test func namesOutsideTheDomainAreRefused() {
        for name in ["example.org", "local", "cluster.local.example.org"] {
            let response = ask(name, .a)
            #expect(response.header.responseCode == .refused && response.answers.isEmpty && !response.header.authoritative)
        }
    }

    @Test func badQueries() {
        var two = Fixtures.query("web.default.svc.cluster.local", .a)
        two.questions.append(two.questions[0])
        #expect(resolver.respond(to: two).header.responseCode == .formatError)
        var status = Fixtures.query("web.default.svc.cluster.local", .a)
        status.header.opcode = 2
        #expect(resolver.respond(to: status).header.responseCode == .notImplemented)
        var chaos = Fixtures.query("web.default.svc.cluster.local", .a)
        chaos.questions[0].dnsClass = 3
        #expect(resolver.respond(to: chaos).header.responseCode == .refused)
    }

    @Test func ednsIsEchoed() {
        let response = resolver.respond(to: Fixtures.query("web.default.svc.cluster.local", .a, edns: 4096))
        #expect(response.additional.map(\.type) == [.opt])
        #expect(response.ednsPayloadSize == DNSServerLimits.ednsPayloadSize)
    }
}
