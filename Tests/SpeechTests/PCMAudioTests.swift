import Foundation
import Testing

@testable import Speech

/// A WAV file's bytes: `format` 1 (PCM), 6 (A-law) or 7 (µ-law).
func wav(format: Int, channels: Int, rate: Int, bits: Int, data: [UInt8]) -> [UInt8] {
    func le(_ value: Int, _ bytes: Int) -> [UInt8] { (0..<bytes).map { UInt8((value >> (8 * $0)) & 0xFF) } }
    let fmt =
        le(format, 2) + le(channels, 2) + le(rate, 4) + le(rate * channels * bits / 8, 4)
        + le(channels * bits / 8, 2) + le(bits, 2)
    return Array("RIFF".utf8) + le(4 + 8 + fmt.count + 8 + data.count, 4) + Array("WAVE".utf8)
        + Array("fmt ".utf8) + le(fmt.count, 4) + fmt + Array("LIST".utf8) + le(4, 4) + Array("INFO".utf8)
        + Array("data".utf8) + le(data.count, 4) + data
}

@Suite("Telephone audio decoded from WAV")
struct PCMAudioTests {
    @Test("16-bit PCM in two channels comes apart into the caller's and the practice's")
    func stereo() throws {
        let samples: [Int16] = [1, -1, 300, -300, 32767, -32768]
        let data = samples.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
        let audio = try PCMAudio(wav: wav(format: 1, channels: 2, rate: 8000, bits: 16, data: data))
        #expect(audio.sampleRate == 8000)
        #expect(audio.channels == [[1, 300, 32767], [-1, -300, -32768]])
        #expect(audio.duration == 3.0 / 8000)
    }

    @Test("µ-law and A-law decode to the G.711 values")
    func companded() throws {
        // µ-law 0xFF and 0x7F are the two zeros; 0x80 and 0x00 the extremes.
        let mu = try PCMAudio(wav: wav(format: 7, channels: 1, rate: 8000, bits: 8, data: [0xFF, 0x7F, 0x80, 0x00]))
        #expect(mu.channels[0] == [0, 0, 32124, -32124])
        let a = try PCMAudio(wav: wav(format: 6, channels: 1, rate: 8000, bits: 8, data: [0xD5, 0x55, 0xAA, 0x2A]))
        #expect(a.channels[0] == [8, -8, 32256, -32256])
    }

    @Test("8 kHz becomes 16 kHz by interpolation, twice as many samples")
    func resampled() throws {
        let audio = PCMAudio(channels: [[0, 100, 200, 300]], sampleRate: 8000)
        #expect(audio.channel(0, at: 16000) == [0, 50, 100, 150, 200, 250, 300, 300])
        #expect(audio.channel(0, at: 8000) == [0, 100, 200, 300])
    }

    @Test("what is not a readable WAV is refused by name, not guessed at")
    func refused() throws {
        func refusal(_ bytes: [UInt8]) -> String? {
            do {
                _ = try PCMAudio(wav: bytes)
                return nil
            } catch {
                guard let error = error as? SpeechError, error.code == .unsupportedAudio else { return "another error" }
                return error.description
            }
        }
        #expect(refusal(Array("ID3 an mp3".utf8))?.contains("not a WAV file") == true)
        #expect(
            refusal(wav(format: 85, channels: 1, rate: 8000, bits: 0, data: [1, 2]))?.contains("format 85") == true)
        #expect(refusal(wav(format: 1, channels: 6, rate: 8000, bits: 16, data: []))?.contains("6 channels") == true)
        #expect(
            refusal(Array(wav(format: 1, channels: 1, rate: 8000, bits: 16, data: []).prefix(30)))?.contains(
                "cut short") == true)
    }
}
