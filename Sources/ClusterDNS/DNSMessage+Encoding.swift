// Writing messages: names compressed against earlier names (RFC 1035 §4.1.4) in owner names and
// in the record data of NS, CNAME, PTR and SOA (never in SRV's target, RFC 2782), and
// truncation: a response that does not fit the client's limit goes out with TC set and its
// records dropped (the OPT record kept), and the client asks again over TCP.

extension DNSMessage {
    /// The message on the wire. When it is longer than `limit`, the answer, authority and
    /// additional records (but an OPT record) are dropped and TC is set.
    public func encoded(limit: Int = DNSMessage.maxLength) -> [UInt8] {
        let full = encodedWhole()
        guard full.count > limit else { return full }
        var truncated = self
        truncated.header.truncated = true
        truncated.answers = []
        truncated.authority = []
        truncated.additional = additional.filter { $0.type == .opt }
        return truncated.encodedWhole()
    }

    private func encodedWhole() -> [UInt8] {
        var writer = DNSWriter()
        writer.u16(header.id)
        writer.u16(header.flags)
        for count in [questions.count, answers.count, authority.count, additional.count] {
            writer.u16(UInt16(clamping: count))
        }
        for question in questions.prefix(Int(UInt16.max)) {
            writer.name(question.name)
            writer.u16(question.type.rawValue)
            writer.u16(question.dnsClass)
        }
        for record in (answers.prefix(Int(UInt16.max)) + authority.prefix(Int(UInt16.max)) + additional.prefix(Int(UInt16.max))) {
            writer.record(record)
        }
        return writer.bytes
    }
}

/// Builds a message, remembering where each name suffix was written.
struct DNSWriter {
    var bytes: [UInt8] = []
    /// Lowercased name suffix → its offset (offsets up to 0x3fff can be pointed at).
    private var written: [DNSName: Int] = [:]

    init() { bytes.reserveCapacity(512) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { bytes.append(UInt8(value >> 8)); bytes.append(UInt8(truncatingIfNeeded: value)) }
    mutating func u32(_ value: UInt32) { u16(UInt16(value >> 16)); u16(UInt16(truncatingIfNeeded: value)) }

    mutating func name(_ name: DNSName, compress: Bool = true) {
        let key = name.lowercased.labels
        for index in name.labels.indices {
            let suffix = DNSName(checkedLabels: Array(key[index...]))
            if compress, let target = written[suffix] {
                u16(0xc000 | UInt16(target))
                return
            }
            if bytes.count <= 0x3fff, written[suffix] == nil { written[suffix] = bytes.count }
            u8(UInt8(name.labels[index].count))
            bytes += name.labels[index]
        }
        u8(0)
    }

    mutating func record(_ record: DNSRecord) {
        name(record.name)
        u16(record.type.rawValue)
        u16(record.dnsClass)
        u32(record.ttl)
        let lengthAt = bytes.count
        u16(0)
        switch record.data {
        case .a(let address): u32(address.value)
        case .ns(let target), .cname(let target), .ptr(let target): name(target)
        case .soa(let mname, let rname, let serial, let refresh, let retry, let expire, let minimum):
            name(mname)
            name(rname)
            for value in [serial, refresh, retry, expire, minimum] { u32(value) }
        case .txt(let strings):
            for string in strings {
                let part = string.prefix(255)
                u8(UInt8(part.count))
                bytes += part
            }
        case .srv(let priority, let weight, let port, let target):
            u16(priority)
            u16(weight)
            u16(port)
            name(target, compress: false)
        case .other(let data): bytes += data.prefix(Int(UInt16.max))
        }
        let length = bytes.count - lengthAt - 2
        bytes[lengthAt] = UInt8(length >> 8)
        bytes[lengthAt + 1] = UInt8(truncatingIfNeeded: length)
    }
}
