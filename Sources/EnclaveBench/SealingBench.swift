import Foundation
import Sealing

// Sealing throughput next to `openssl speed -evp aes-256-gcm` on the same machine, in one run.
// Build with -c release (scripts/bench does). Figures are medians of several rounds.

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

/// Bytes per second of `body`, which processes `bytesPerCall` per call, as the median of `rounds`.
func measure(rounds: Int = 7, seconds: Double = 0.4, bytesPerCall: Int, _ body: () throws -> Void) rethrows -> Double {
    var rates: [Double] = []
    for _ in 0..<rounds {
        var calls = 0
        let start = Date()
        var elapsed = 0.0
        repeat {
            for _ in 0..<16 { try body() }
            calls += 16
            elapsed = Date().timeIntervalSince(start)
        } while elapsed < seconds
        rates.append(Double(calls * bytesPerCall) / elapsed)
    }
    return median(rates)
}

/// `openssl speed`'s figure for one block size, in bytes per second.
func opensslSpeed(bytes: Int) -> Double? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl", "speed", "-evp", "aes-256-gcm", "-bytes", "\(bytes)", "-seconds", "2"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    guard let last = lines.last(where: { $0.lowercased().hasPrefix("aes-256-gcm") }),
        let figure = last.split(separator: " ").last, figure.hasSuffix("k"), let thousands = Double(figure.dropLast())
    else { return nil }
    return thousands * 1000
}

/// A line `scripts/bench all` collects into its table.
func result(_ name: String, _ value: Double) { print("RESULT \(name) " + String(format: "%.4f", value)) }

func format(_ rate: Double) -> String { String(format: "%9.1f MB/s", rate / 1_000_000) }

func sealingBenchmark() throws {
    let key = try DataKey.generate(version: 1)
    let context = FieldContext(tenantID: UUID(), table: "leads", column: "caller_name", rowID: UUID())

    let field = try SecureRandom.bytes(32)
    let sealedField = try FieldCipher.seal(field, with: key, for: context)
    let fieldSeal = try measure(bytesPerCall: 32) { _ = try FieldCipher.seal(field, with: key, for: context) }
    let fieldOpen = try measure(bytesPerCall: 32) { _ = try FieldCipher.open(sealedField, with: key, for: context) }

    let recording = try SecureRandom.bytes(1 << 20)
    let chunk = StreamCipher.defaultChunkSize
    func sealRecording() throws -> (header: [UInt8], chunks: [[UInt8]]) {
        var sealer = try StreamSealer(key: key, context: context)
        var chunks: [[UInt8]] = []
        var offset = 0
        while offset < recording.count {
            let end = min(offset + chunk, recording.count)
            chunks.append(try sealer.seal(recording[offset..<end], isLast: end == recording.count))
            offset = end
        }
        return (sealer.header, chunks)
    }
    let sealedRecording = try sealRecording()
    let recordingSeal = try measure(rounds: 5, seconds: 1, bytesPerCall: recording.count) { _ = try sealRecording() }
    let recordingOpen = try measure(rounds: 5, seconds: 1, bytesPerCall: recording.count) {
        var opener = try StreamOpener(header: sealedRecording.header, key: key, context: context)
        for (index, sealed) in sealedRecording.chunks.enumerated() {
            _ = try opener.open(sealed, isLast: index == sealedRecording.chunks.count - 1)
        }
        try opener.finish()
    }

    let reference32 = opensslSpeed(bytes: 32)
    let reference64k = opensslSpeed(bytes: chunk)

    func ratio(_ value: Double, _ reference: Double?) -> String {
        guard let reference, reference > 0 else { return "   (openssl speed unavailable)" }
        return String(format: "%6.2f× of openssl", value / reference)
    }

    print("Sealing throughput (median of rounds), against `openssl speed -evp aes-256-gcm` in this run")
    print("openssl speed, 32-byte blocks:     \(reference32.map(format) ?? "unavailable")")
    print("openssl speed, 64 KiB blocks:      \(reference64k.map(format) ?? "unavailable")")
    print(
        "field seal,   32 bytes:            \(format(fieldSeal))  \(String(format: "%10.0f", fieldSeal / 32)) ops/s  \(ratio(fieldSeal, reference32))"
    )
    print(
        "field open,   32 bytes:            \(format(fieldOpen))  \(String(format: "%10.0f", fieldOpen / 32)) ops/s  \(ratio(fieldOpen, reference32))"
    )
    print("recording seal, 1 MiB (64 KiB chunks): \(format(recordingSeal))  \(ratio(recordingSeal, reference64k))")
    print("recording open, 1 MiB (64 KiB chunks): \(format(recordingOpen))  \(ratio(recordingOpen, reference64k))")
    if let reference32, let reference64k {
        result("field_seal_ratio", fieldSeal / reference32)
        result("field_open_ratio", fieldOpen / reference32)
        result("recording_seal_ratio", recordingSeal / reference64k)
        result("recording_open_ratio", recordingOpen / reference64k)
    }
}
