// DNS messages (RFC 1035 §4.1) as values, and their reader. The layout:
//
//   +---------------------+
//   | header (12 bytes)   |  id, flags (QR opcode AA TC RD RA Z RCODE), four counts
//   +---------------------+
//   | question            |  QNAME QTYPE QCLASS, QDCOUNT times
//   | answer              |  NAME TYPE CLASS TTL RDLENGTH RDATA, ANCOUNT times
//   | authority           |  NSCOUNT records
//   | additional          |  ARCOUNT records (an EDNS OPT record among them, RFC 6891)
//   +---------------------+
//
// Names are length-prefixed labels ending in a zero byte, or in a compression pointer (two
// bytes, top bits 11) to an earlier name. The reader trusts nothing: every field is checked
// against the bytes left, a pointer must point strictly backwards (so no loop can form), a
// name is at most 255 bytes, and a message at most 65535 bytes (TCP's length prefix).

/// A record type (QTYPE/TYPE).
public struct DNSType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let a = DNSType(rawValue: 1)
    public static let ns = DNSType(rawValue: 2)
    public static let cname = DNSType(rawValue: 5)
    public static let soa = DNSType(rawValue: 6)
    public static let ptr = DNSType(rawValue: 12)
    public static let txt = DNSType(rawValue: 16)
    public static let aaaa = DNSType(rawValue: 28)
    public static let srv = DNSType(rawValue: 33)
    public static let opt = DNSType(rawValue: 41)
    public static let any = DNSType(rawValue: 255)
    public var description: String {
        switch self {
        case .a: "A"
        case .ns: "NS"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .ptr: "PTR"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .opt: "OPT"
        case .any: "ANY"
        default: "TYPE\(rawValue)"
        }
    }
}

/// Response codes (RCODE).
public struct DNSResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x0f }
    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)   // NXDOMAIN
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)
    public var description: String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"].indices.contains(Int(rawValue))
            ? ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"][Int(rawValue)] : "RCODE\(rawValue)"
    }
}

/// The class IN, the only one served.
public let dnsClassIN: UInt16 = 1

/// The 12-byte header.
public struct DNSHeader: Sendable, Equatable {
    public var id: UInt16 = 0
    public var isResponse = false
    public var opcode: UInt8 = 0
    public var authoritative = false
    public var truncated = false
    public var recursionDesired = false
    public var recursionAvailable = false
    public var responseCode: DNSResponseCode = .noError

    public init(id: UInt16 = 0) { self.id = id }

    var flags: UInt16 {
        var value = UInt16(opcode & 0x0f) << 11 | UInt16(responseCode.rawValue)
        if isResponse { value |= 0x8000 }
        if authoritative { value |= 0x0400 }
        if truncated { value |= 0x0200 }
        if recursionDesired { value |= 0x0100 }
        if recursionAvailable { value |= 0x0080 }
        return value
    }

    init(id: UInt16, flags: UInt16) {
        self.id = id
        isResponse = flags & 0x8000 != 0
        opcode = UInt8((flags >> 11) & 0x0f)
        authoritative = flags & 0x0400 != 0
        truncated = flags & 0x0200 != 0
        recursionDesired = flags & 0x0100 != 0
        recursionAvailable = flags & 0x0080 != 0
        responseCode = DNSResponseCode(rawValue: UInt8(flags & 0x0f))
    }
}

public struct DNSQuestion: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSType
    public var dnsClass: UInt16

    public init(name: DNSName, type: DNSType, dnsClass: UInt16 = dnsClassIN) {
        self.name = name
        self.type = type
        self.dnsClass = dnsClass
    }
}

/// Record data of the types the cluster serves (and reads back in tests); others kept raw.
public enum DNSRecordData: Sendable, Equatable {
    case a(IPv4Address)
    case ns(DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case soa(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    case txt([[UInt8]])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case other([UInt8])
}

/// An IPv4 address as four bytes in network order.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: UInt32
    public init(_ value: UInt32) { self.value = value }

    /// From dotted-quad text (four decimal parts 0…255, no leading signs); nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit), let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }
    public var description: String { bytes.map(String.init).joined(separator: ".") }
    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

public struct DNSRecord: Sendable, Equatable {
    public var name: DNSName
    public var type: DNSType
    public var dnsClass: UInt16
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, type: DNSType, dnsClass: UInt16 = dnsClassIN, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.dnsClass = dnsClass
        self.ttl = ttl
        self.data = data
    }
}

public struct DNSMessage: Sendable, Equatable {
    public var header: DNSHeader
    public var questions: [DNSQuestion] = []
    public var answers: [DNSRecord] = []
    public var authority: [DNSRecord] = []
    public var additional: [DNSRecord] = []

    public init(header: DNSHeader) { self.header = header }

    /// The largest message read (TCP's two-byte length prefix).
    public static let maxLength = 65535

    /// The EDNS OPT record's UDP payload size (its CLASS), if the message has one.
    public var ednsPayloadSize: Int? {
        additional.first(where: { $0.type == .opt }).map { Int($0.dnsClass) }
    }
}

// MARK: Reading

extension DNSMessage {
    /// Reads a whole message; throws `DNSWireError` for anything malformed.
    public init(parsing bytes: some Collection<UInt8>) throws(DNSWireError) {
        let bytes = Array(bytes)
        guard bytes.count <= Self.maxLength else {
            throw DNSWireError(.tooLong, "\(bytes.count) bytes, more than \(Self.maxLength)", at: Self.maxLength)
        }
        var reader = DNSReader(bytes)
        let id = try reader.u16(), flags = try reader.u16()
        let counts = [try reader.u16(), try reader.u16(), try reader.u16(), try reader.u16()]
        self.init(header: DNSHeader(id: id, flags: flags))
        for _ in 0..<counts[0] {
            questions.append(DNSQuestion(name: try reader.name(), type: DNSType(rawValue: try reader.u16()), dnsClass: try reader.u16()))
        }
        for _ in 0..<counts[1] { answers.append(try reader.record()) }
        for _ in 0..<counts[2] { authority.append(try reader.record()) }
        for _ in 0..<counts[3] { additional.append(try reader.record()) }
        guard reader.offset == bytes.count else {
            throw DNSWireError(.trailingBytes, "\(bytes.count - reader.offset) bytes after the last record", at: reader.offset)
        }
    }

    /// The header alone (the id and flags, for an error answer to what cannot be read); nil
    /// when fewer than 12 bytes came.
    public static func header(of bytes: [UInt8]) -> DNSHeader? {
        guard bytes.count >= 12 else { return nil }
        return DNSHeader(id: UInt16(bytes[0]) << 8 | UInt16(bytes[1]), flags: UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
    }
}

/// A bounds-checked cursor over a message.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws(DNSWireError) -> UInt8 {
        guard offset < bytes.count else { throw DNSWireError(.truncated, "the message ends inside a field", at: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(DNSWireError) -> UInt16 {
        UInt16(try u8()) << 8 | UInt16(try u8())
    }

    mutating func u32() throws(DNSWireError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func take(_ count: Int) throws(DNSWireError) -> [UInt8] {
        guard count >= 0, count <= bytes.count - offset else {
            throw DNSWireError(.truncated, "a field of \(count) bytes with \(bytes.count - offset) left", at: offset)
        }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// A name at the cursor, following compression pointers: each must point before the
    /// pointer itself, so the walk ends within the message's length.
    mutating func name() throws(DNSWireError) -> DNSName {
        var labels: [[UInt8]] = []
        var length = 1
        var position = offset
        var resumeAt: Int?   // where the cursor goes once the first pointer was followed
        while true {
            guard position < bytes.count else { throw DNSWireError(.truncated, "the message ends inside a name", at: position) }
            let byte = bytes[position]
            switch byte & 0xc0 {
            case 0x00:
                if byte == 0 {
                    offset = resumeAt ?? position + 1
                    return DNSName(checkedLabels: labels)
                }
                let count = Int(byte)
                guard position + 1 + count <= bytes.count else {
                    throw DNSWireError(.truncated, "a label of \(count) bytes past the message's end", at: position)
                }
                length += count + 1
                guard length <= DNSName.maxWireLength else {
                    throw DNSWireError(.badName, "a name longer than \(DNSName.maxWireLength) bytes", at: position)
                }
                labels.append(Array(bytes[position + 1...position + count]))
                position += 1 + count
            case 0xc0:
                guard position + 1 < bytes.count else { throw DNSWireError(.truncated, "the message ends inside a pointer", at: position) }
                let target = Int(byte & 0x3f) << 8 | Int(bytes[position + 1])
                guard target < position else {
                    throw DNSWireError(.pointerLoop, "a compression pointer to \(target), not before itself", at: position)
                }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
            default:
                throw DNSWireError(.badName, "label type 0x\(String(byte & 0xc0, radix: 16)) is reserved", at: position)
            }
        }
    }

    mutating func record() throws(DNSWireError) -> DNSRecord {
        let name = try name()
        let type = DNSType(rawValue: try u16()), dnsClass = try u16(), ttl = try u32()
        let length = Int(try u16())
        let start = offset
        guard length <= bytes.count - start else {
            throw DNSWireError(.truncated, "record data of \(length) bytes with \(bytes.count - start) left", at: start)
        }
        let data: DNSRecordData
        switch type {
        case .a where length == 4: data = .a(IPv4Address(try u32()))
        case .ns: data = .ns(try self.name())
        case .cname: data = .cname(try self.name())
        case .ptr: data = .ptr(try self.name())
        case .soa:
            data = .soa(mname: try self.name(), rname: try self.name(), serial: try u32(), refresh: try u32(), retry: try u32(),
                        expire: try u32(), minimum: try u32())
        case .srv: data = .srv(priority: try u16(), weight: try u16(), port: try u16(), target: try self.name())
        case .txt:
            var strings: [[UInt8]] = []
            while offset < start + length { strings.append(try take(Int(try u8()))) }
            data = .txt(strings)
        default: data = .other(try take(length))
        }
        guard offset == start + length else {
            throw DNSWireError(.truncated, "\(type) record data of \(offset - start) bytes where its length says \(length)", at: start)
        }
        return DNSRecord(name: name, type: type, dnsClass: dnsClass, ttl: ttl, data: data)
    }
}
