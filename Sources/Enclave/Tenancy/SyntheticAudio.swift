import Foundation

/// Playable synthetic recordings for tests, benchmarks and the demo.
public enum SyntheticAudio {
    /// A mono 16-bit PCM WAV file of a tone.
    public static func wave(seconds: Double, rate: Int = 8_000, frequency: Double = 440) -> [UInt8] {
        let samples = Int(Double(rate) * seconds)
        func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        var bytes = Array("RIFF".utf8) + le(UInt32(36 + samples * 2)) + Array("WAVEfmt ".utf8)
        bytes += le(UInt32(16)) + le(UInt16(1)) + le(UInt16(1)) + le(UInt32(rate)) + le(UInt32(rate * 2))
        bytes += le(UInt16(2)) + le(UInt16(16)) + Array("data".utf8) + le(UInt32(samples * 2))
        bytes.reserveCapacity(bytes.count + samples * 2)
        for index in 0..<samples {
            bytes += le(Int16(sin(Double(index) * 2 * .pi * frequency / Double(rate)) * 8000))
        }
        return bytes
    }
}
