import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// Bytes of a recording, generated on the fly so that neither side of the test holds it: byte
/// `i` is `pattern[i % pattern.count]`, a fixed pseudo-random table whose length (a prime) is not
/// a multiple of the chunk size, so any piece can be checked where it lands.
struct GeneratedAudio: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let size: Int
    let pieceSize = 64 * 1024

    static let pattern: [UInt8] = (0..<1_000_003).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }

    /// The `count` bytes at `offset`.
    static func bytes(at offset: Int, count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var position = offset % pattern.count
        var remaining = count
        while remaining > 0 {
            let take = Swift.min(remaining, pattern.count - position)
            out += pattern[position..<(position + take)]
            remaining -= take
            position = 0
        }
        return out
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let size: Int
        let pieceSize: Int
        var offset = 0
        mutating func next() async -> [UInt8]? {
            guard offset < size else { return nil }
            let count = Swift.min(pieceSize, size - offset)
            defer { offset += count }
            return GeneratedAudio.bytes(at: offset, count: count)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(size: size, pieceSize: pieceSize) }
}

/// Peak resident memory of this process so far, in MiB (VmHWM).
func peakResidentMiB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return -1 }
    return kilobytes / 1024
}

/// Stores and streams back a recording of `megabytes` MB through the real ingest and read
/// paths, checking every byte, and prints times and the process's peak resident memory.
func recordingBenchmark(megabytes: Int) async throws {
    let size = megabytes * 1_000_000
    try await withBenchDatabase { database, keyFile in
        let bench = try await BenchServices(database, keyFile: keyFile, connections: 2)
        let (maint, keys, services, directory) = (bench.maint, bench.keys, bench.services, bench.directory)
        let practice = try await PracticeRegistry(keys: keys).create(name: "Recording Bench")
        let owner = try await directory.createUser(
            email: "owner@bench.test", displayName: "Owner", password: "bench password 123")
        try await directory.grant(user: owner, role: .practiceOwner, practice: practice)
        let login = try await services.identity.signInFresh(
            email: "owner@bench.test", password: "bench password 123")
        let (source, secret) = try await services.sources.create(
            login.token, practice: practice, kind: "call", label: "Bench line")
        let ingest = services.ingest
        let body = Array(#"{"caller_number": "+15550001111", "started_at": "2026-11-29T10:00:00Z"}"#.utf8)
        let now = Int64(Date().timeIntervalSince1970)
        let lead = try await ingest.ingestCall(
            IngestRequest(
                sourceID: source.id, signature: try IngestSignature.sign(body, secret: secret, timestamp: now),
                body: body))

        // The signature covers the whole body: compute it streaming, as a provider would.
        let mac = try HMACStream(key: Array(secret.utf8))
        try mac.update(Array("\(now).".utf8))
        for try await piece in GeneratedAudio(size: size) { try mac.update(piece) }
        let signature = "t=\(now),v1=" + (try mac.finalize()).map { String(format: "%02x", $0) }.joined()
        let baseline = peakResidentMiB()
        let storeStart = Date()
        _ = try await ingest.attachRecording(
            sourceID: source.id, signature: signature, leadID: lead.leadID, contentType: "audio/wav",
            body: GeneratedAudio(size: size))
        let stored = Date().timeIntervalSince(storeStart)

        let streamStart = Date()
        var offset = 0
        var mismatch = false
        try await services.leads.streamRecording(
            login.token, practice: practice, lead: lead.leadID
        ) { piece in
            let expected = GeneratedAudio.bytes(at: offset, count: piece.count)
            let same =
                piece.count == expected.count
                && piece.withUnsafeBytes { a in
                    expected.withUnsafeBytes { b in
                        guard let left = a.baseAddress, let right = b.baseAddress else { return a.count == 0 }
                        return memcmp(left, right, a.count) == 0
                    }
                }
            if !same { mismatch = true }
            offset += piece.count
        }
        let streamed = Date().timeIntervalSince(streamStart)
        await services.close()
        await maint.close()
        guard !mismatch, offset == size else {
            throw ConfigurationError("the recording did not stream back byte-identical (\(offset) of \(size) bytes)")
        }
        let peak = peakResidentMiB()
        print(
            String(
                format:
                    "recording %d MB: stored in %.1f s (%.0f MB/s), streamed back in %.1f s (%.0f MB/s), byte-identical",
                megabytes, stored, Double(megabytes) / stored, streamed, Double(megabytes) / streamed))
        print(String(format: "peak_rss_mib=%.1f baseline_rss_mib=%.1f", peak, baseline))
    }
}
