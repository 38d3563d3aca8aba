// Answers one query from the cluster's records, authoritatively, for the cluster domain and
// the reverse names of its addresses only. Nothing is forwarded: a name outside the domain is
// REFUSED, as is a reverse name of an address the cluster does not know — no question a pod
// asks ever leaves this machine.
//
//   not a standard query (opcode ≠ 0)           NOTIMP
//   not exactly one question, or class ≠ IN     FORMERR / REFUSED
//   a name in the domain with records of the    NOERROR, AA, the records (SRV targets' A
//   type asked (ANY: all of them)               records in the additional section)
//   a CNAME (ExternalName) for any other type   NOERROR, AA, the CNAME (its target is outside
//                                               the cluster: not followed)
//   a name that exists, none of that type       NOERROR, AA, no answer, SOA in authority (NODATA;
//   (AAAA of any name: IPv4 only)               e.g. AAAA)
//   a name in the domain that does not exist    NXDOMAIN, AA, SOA in authority
//   <d>.<c>.<b>.<a>.in-addr.arpa of a known     NOERROR, AA, PTR
//   address
//   anything else                               REFUSED

/// Computes responses; pure, for tests and for the server.
public struct DNSResolver: Sendable {
    public let records: ClusterRecords

    public init(records: ClusterRecords) { self.records = records }

    /// The response to `query` (without size limits: the server truncates).
    public func respond(to query: DNSMessage) -> DNSMessage {
        var response = DNSMessage(header: DNSHeader(id: query.header.id))
        response.header.isResponse = true
        response.header.opcode = query.header.opcode
        response.header.recursionDesired = query.header.recursionDesired
        response.questions = query.questions
        if query.ednsPayloadSize != nil {
            response.additional.append(DNSRecord(name: .root, type: .opt, dnsClass: UInt16(DNSServerLimits.ednsPayloadSize), ttl: 0, data: .other([])))
        }
        guard query.header.opcode == 0 else {
            response.header.responseCode = .notImplemented
            return response
        }
        guard query.questions.count == 1, let question = query.questions.first else {
            response.header.responseCode = .formatError
            return response
        }
        guard question.dnsClass == dnsClassIN, question.type != .opt else {
            response.header.responseCode = .refused
            return response
        }
        let name = question.name
        let inZone = name.isSubdomain(of: records.domain)
        let reverse = DNSName.reverseZone.map { name.isSubdomain(of: $0) } ?? false
        guard inZone || (reverse && !records.records(of: name).isEmpty) else {
            response.header.responseCode = .refused
            return response
        }
        response.header.authoritative = true
        let owned = records.records(of: name)
        var answers = owned.filter { question.type == .any || $0.type == question.type }
        if answers.isEmpty, question.type != .cname, let alias = owned.first(where: { $0.type == .cname }) {
            answers = [alias]
        }
        if !answers.isEmpty {
            response.answers = answers.map { Self.echo($0, as: name) }
            for answer in answers {
                guard case .srv(_, _, _, let target) = answer.data else { continue }
                response.additional.insert(contentsOf: records.records(of: target).filter { $0.type == .a }, at: 0)
            }
            return response
        }
        response.authority = [records.soa]
        response.header.responseCode = records.exists(name) ? .noError : .nameError
        return response
    }

    /// The record with the owner name written as the question wrote it.
    private static func echo(_ record: DNSRecord, as name: DNSName) -> DNSRecord {
        var record = record
        record.name = name
        return record
    }
}

extension DNSName {
    /// `in-addr.arpa`.
    static let reverseZone = DNSName("in-addr.arpa")
}
