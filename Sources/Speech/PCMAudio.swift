/// Audio as 16-bit samples, one array per channel, decoded from a WAV file in memory.
///
/// Telephony recordings are WAV with linear PCM (Twilio's default), µ-law or A-law samples, one
/// channel or two (a dual-channel call: the caller on the first, the practice on the second).
/// Compressed formats (MP3) are not decoded here: the worker records that it cannot read them.
public struct PCMAudio: Sendable, Equatable {
    /// The samples of each channel.
    public var channels: [[Int16]]
    public var sampleRate: Int

    public init(channels: [[Int16]], sampleRate: Int) {
        self.channels = channels
        self.sampleRate = sampleRate
    }

    /// Seconds of audio.
    public var duration: Double {
        sampleRate > 0 ? Double(channels.first?.count ?? 0) / Double(sampleRate) : 0
    }

    /// The largest recording decoded, 128 MiB: over two hours of 8 kHz 16-bit telephone audio, over
    /// four of µ-law. Decoded and taken to 16 kHz it needs about four times that in memory.
    public static let maximumBytes = 128 << 20

    /// Decodes a RIFF/WAVE file.
    ///
    /// - Throws: `SpeechError.unsupportedAudio` naming what is not supported.
    public init(wav bytes: [UInt8]) throws {
        func fail(_ why: String) -> SpeechError {
            SpeechError(.unsupportedAudio, "the recording is not usable: \(why)")
        }
        guard bytes.count <= Self.maximumBytes else { throw fail("it is larger than 128 MiB") }
        guard bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WAVE".utf8)
        else { throw fail("it is not a WAV file") }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        var format: (tag: Int, channels: Int, rate: Int, bits: Int)?
        var offset = 12
        while offset + 8 <= bytes.count {
            let id = String(decoding: bytes[offset..<offset + 4], as: UTF8.self)
            let size = u32(offset + 4)
            let body = offset + 8
            if id == "fmt " {
                guard size >= 16, body + size <= bytes.count else { throw fail("its format chunk is cut short") }
                var tag = u16(body)
                // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
                if tag == 0xFFFE && size >= 40 { tag = u16(body + 24) }
                format = (tag, u16(body + 2), u32(body + 4), u16(body + 14))
            } else if id == "data" {
                guard let format else { throw fail("its data comes before its format") }
                let end = min(body + size, bytes.count)
                self = try Self.decode(bytes[body..<end], format: format, fail: fail)
                return
            }
            offset = body + size + (size & 1)
        }
        throw fail("it has no audio data")
    }

    private static func decode(
        _ data: ArraySlice<UInt8>, format: (tag: Int, channels: Int, rate: Int, bits: Int),
        fail: (String) -> SpeechError
    ) throws -> PCMAudio {
        guard (1...2).contains(format.channels) else { throw fail("it has \(format.channels) channels") }
        guard (4000...48000).contains(format.rate) else { throw fail("its sample rate is \(format.rate) Hz") }
        let sample: (ArraySlice<UInt8>, Int) -> Int16
        let width: Int
        switch (format.tag, format.bits) {
        case (1, 16):
            width = 2
            sample = { d, i in Int16(bitPattern: UInt16(d[i]) | UInt16(d[i + 1]) << 8) }
        case (1, 8):
            width = 1
            sample = { d, i in Int16(Int(d[i]) - 128) << 8 }
        case (7, 8):
            width = 1
            sample = { d, i in muLaw(d[i]) }
        case (6, 8):
            width = 1
            sample = { d, i in aLaw(d[i]) }
        default:
            throw fail(
                "its samples are in format \(format.tag) with \(format.bits) bits (PCM, µ-law and A-law are read)")
        }
        let frame = width * format.channels
        let frames = data.count / frame
        var channels = Array(repeating: [Int16](), count: format.channels)
        for c in channels.indices { channels[c].reserveCapacity(frames) }
        var at = data.startIndex
        for _ in 0..<frames {
            for c in 0..<format.channels {
                channels[c].append(sample(data, at))
                at += width
            }
        }
        return PCMAudio(channels: channels, sampleRate: format.rate)
    }

    /// G.711 µ-law to linear.
    static func muLaw(_ byte: UInt8) -> Int16 {
        let u = ~byte
        let exponent = Int((u >> 4) & 0x07)
        let magnitude = ((Int(u & 0x0F) << 3) + 0x84) << exponent
        return Int16(u & 0x80 != 0 ? 0x84 - magnitude : magnitude - 0x84)
    }

    /// G.711 A-law to linear.
    static func aLaw(_ byte: UInt8) -> Int16 {
        let a = byte ^ 0x55
        let exponent = Int((a >> 4) & 0x07)
        var magnitude = Int(a & 0x0F) << 4 + 8
        if exponent > 0 { magnitude = (magnitude + 0x100) << (exponent - 1) }
        return Int16(a & 0x80 != 0 ? magnitude : -magnitude)
    }

    /// One channel at `rate` Hz, by linear interpolation (telephone audio is 8 kHz; the acoustic
    /// model wants 16 kHz).
    public func channel(_ index: Int, at rate: Int) -> [Int16] {
        let input = channels[index]
        guard rate != sampleRate, !input.isEmpty else { return input }
        let count = Int((Double(input.count) * Double(rate) / Double(sampleRate)).rounded(.down))
        let step = Double(sampleRate) / Double(rate)
        var output = [Int16]()
        output.reserveCapacity(count)
        for i in 0..<count {
            let position = Double(i) * step
            let j = Int(position)
            let next = min(j + 1, input.count - 1)
            let fraction = position - Double(j)
            output.append(Int16((Double(input[j]) * (1 - fraction) + Double(input[next]) * fraction).rounded()))
        }
        return output
    }
}
