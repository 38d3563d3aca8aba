import NIOCore

// HTTP/2 framing (RFC 9113 §4 and §6) for the server side of gRPC: reading
// frames out of the byte stream, and writing the few frames a gRPC server
// sends straight into the connection's output buffer. HPACK decoding is
// NIOHPACK's; the header blocks this server sends are literals that never
// touch the dynamic table, so encoding them needs no state (see `HeaderBlock`).

enum FrameType: UInt8 {
    case data = 0, headers, priority, rstStream, settings, pushPromise, ping, goAway, windowUpdate, continuation
}

enum FrameFlag {
    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
    static let priority: UInt8 = 0x20
}

enum HTTP2ErrorCode: UInt32 {
    case noError = 0, protocolError, internalError, flowControlError, settingsTimeout, streamClosed,
         frameSizeError, refusedStream, cancel, compressionError, connectError, enhanceYourCalm
}

/// A connection error (RFC 9113 §5.4.1): the server sends GOAWAY with `code`
/// and `message` as debug data, then closes the connection.
struct HTTP2ConnectionError: Error {
    let code: HTTP2ErrorCode
    let message: String
    init(_ code: HTTP2ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

enum HTTP2 {
    /// What every client connection starts with (RFC 9113 §3.4).
    static let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// The flow-control window of a new connection or stream before any SETTINGS or WINDOW_UPDATE.
    static let defaultWindow = 65_535
    static let maxWindow = Int(Int32.max)
    /// SETTINGS_MAX_FRAME_SIZE: both the default and what this server accepts.
    static let defaultMaxFrameSize = 16_384
}

/// One frame; `payload` is a slice of the bytes read, not a copy.
struct Frame {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: ByteBuffer

    func has(_ flag: UInt8) -> Bool { flags & flag != 0 }
}

/// Cuts the connection's byte stream into frames: the client preface
/// first, then 9-byte headers and their payloads.
struct FrameReader {
    /// Bytes not yet cut into frames; nil once all are, so that the event
    /// loop's pooled receive buffer is free to be reused for the next read.
    private var buffer: ByteBuffer?
    private var prefaceRead = false

    mutating func append(_ bytes: inout ByteBuffer) {
        if buffer == nil {
            buffer = bytes
        } else {
            buffer!.discardReadBytes()
            buffer!.writeBuffer(&bytes)
        }
    }

    /// The next complete frame, or nil until more bytes arrive.
    mutating func next() throws(HTTP2ConnectionError) -> Frame? {
        guard buffer != nil else { return nil }
        if !prefaceRead {
            guard buffer!.readableBytes >= HTTP2.clientPreface.count else { return nil }
            guard buffer!.readBytes(length: HTTP2.clientPreface.count)! == HTTP2.clientPreface else {
                throw HTTP2ConnectionError(.protocolError, "the connection did not start with the HTTP/2 client preface")
            }
            prefaceRead = true
        }
        let start = buffer!.readerIndex
        guard buffer!.readableBytes >= 9, let lengthAndType = buffer!.getInteger(at: start, as: UInt32.self) else {
            if buffer!.readableBytes == 0 { buffer = nil }
            return nil
        }
        let length = Int(lengthAndType >> 8)
        guard length <= HTTP2.defaultMaxFrameSize else {
            throw HTTP2ConnectionError(.frameSizeError, "a frame of \(length) bytes exceeds SETTINGS_MAX_FRAME_SIZE \(HTTP2.defaultMaxFrameSize)")
        }
        guard buffer!.readableBytes >= 9 + length else { return nil }
        let flags = buffer!.getInteger(at: start + 4, as: UInt8.self)!
        let stream = buffer!.getInteger(at: start + 5, as: UInt32.self)! & 0x7FFF_FFFF
        buffer!.moveReaderIndex(forwardBy: 9)
        return Frame(type: UInt8(truncatingIfNeeded: lengthAndType), flags: flags, stream: stream,
                     payload: buffer!.readSlice(length: length)!)
    }
}

extension Frame {
    /// The payload of a DATA or HEADERS frame without its padding (and the pad length byte).
    func unpadded() throws(HTTP2ConnectionError) -> ByteBuffer {
        var body = payload
        guard has(FrameFlag.padded) else { return body }
        guard let padding = body.readInteger(as: UInt8.self), Int(padding) <= body.readableBytes else {
            throw HTTP2ConnectionError(.protocolError, "stream \(stream): the padding is longer than the frame")
        }
        body.moveWriterIndex(to: body.writerIndex - Int(padding))
        return body
    }
}

extension ByteBuffer {
    mutating func writeFrameHeader(length: Int, type: FrameType, flags: UInt8 = 0, stream: UInt32) {
        writeInteger(UInt32(length) << 8 | UInt32(type.rawValue))
        writeInteger(flags)
        writeInteger(stream)
    }

    mutating func writeSettings(_ settings: [(id: UInt16, value: UInt32)]) {
        writeFrameHeader(length: settings.count * 6, type: .settings, stream: 0)
        for s in settings {
            writeInteger(s.id)
            writeInteger(s.value)
        }
    }

    mutating func writeWindowUpdate(stream: UInt32, increment: Int) {
        writeFrameHeader(length: 4, type: .windowUpdate, stream: stream)
        writeInteger(UInt32(increment))
    }

    mutating func writeRSTStream(stream: UInt32, code: HTTP2ErrorCode) {
        writeFrameHeader(length: 4, type: .rstStream, stream: stream)
        writeInteger(code.rawValue)
    }

    mutating func writeGoAway(lastStream: UInt32, code: HTTP2ErrorCode, message: String = "") {
        let debug = Array(message.utf8.prefix(1024))
        writeFrameHeader(length: 8 + debug.count, type: .goAway, stream: 0)
        writeInteger(lastStream)
        writeInteger(code.rawValue)
        writeBytes(debug)
    }

    /// A HEADERS frame and, when the block is longer than `maxFrameSize`, CONTINUATION frames.
    mutating func writeHeaders(stream: UInt32, block: [UInt8], endStream: Bool, maxFrameSize: Int) {
        var rest = block[...]
        var type = FrameType.headers
        repeat {
            let part = rest.prefix(maxFrameSize)
            rest = rest.dropFirst(part.count)
            var flags: UInt8 = rest.isEmpty ? FrameFlag.endHeaders : 0
            if endStream && type == .headers { flags |= FrameFlag.endStream }
            writeFrameHeader(length: part.count, type: type, flags: flags, stream: stream)
            writeBytes(part)
            type = .continuation
        } while !rest.isEmpty
    }
}

/// Header blocks built from HPACK's static table and literals "without
/// indexing" (RFC 7541 §6.2.2), so they read the same whatever the state of
/// the peer's decoder.
enum HeaderBlock {
    /// `:status: 200`, `content-type: application/grpc`.
    static let response: [UInt8] = [0x88] + literal(index: 31, "application/grpc")
    /// `grpc-status: 0`.
    static let ok: [UInt8] = literal("grpc-status", "0")
    /// Dynamic table size update to 0: sent once after the peer changes SETTINGS_HEADER_TABLE_SIZE.
    static let emptyTable: UInt8 = 0x20

    /// The trailers that end a call with `status`; a call that sent no headers yet gets them too (trailers-only).
    static func trailers(_ status: GRPCStatus, withResponseHeaders: Bool) -> [UInt8] {
        var block = withResponseHeaders ? response : []
        block += literal("grpc-status", String(status.code.rawValue))
        if !status.message.isEmpty { block += literal("grpc-message", status.percentEncodedMessage) }
        return block
    }

    /// A header whose name is entry `index` of the static table.
    static func literal(index: Int, _ value: String) -> [UInt8] {
        integer(index, prefixBits: 4, first: 0x00) + string(value)
    }

    /// A header with a literal name.
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00] + string(name) + string(value)
    }

    private static func string(_ s: String) -> [UInt8] {
        let bytes = Array(s.utf8)
        return integer(bytes.count, prefixBits: 7, first: 0x00) + bytes
    }

    /// HPACK's integer encoding (RFC 7541 §5.1).
    static func integer(_ value: Int, prefixBits: Int, first: UInt8) -> [UInt8] {
        let max = (1 << prefixBits) - 1
        guard value >= max else { return [first | UInt8(value)] }
        var out = [first | UInt8(max)]
        var rest = value - max
        while rest >= 128 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }
}
