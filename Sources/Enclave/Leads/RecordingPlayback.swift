import Foundation
import Postgres
import Sealing

/// A recording opened for playing (`LeadService.openRecording`): the caller passed the gate and
/// `recording.played` is committed. `stream` reads the audio a few chunks at a time, each batch
/// in a short transaction of its own that asks the gate again, and hands the decrypted bytes on
/// with no transaction open: however slowly the client reads, it holds no database connection,
/// and a session that ends or an agreement revoked midway stops the stream at the next batch.
/// The user's stream slot is held until the playback is released.
public final class RecordingPlayback: Sendable {
    /// The recording's size in bytes.
    public let bytes: Int64
    public let contentType: String
    /// The bytes asked for, or nil for all of them.
    public let range: ClosedRange<Int64>?
    /// How many bytes `stream` sends.
    public var length: Int64 { bytes == 0 ? 0 : wanted.upperBound - wanted.lowerBound + 1 }

    /// Chunks read per transaction: memory per stream is at most this many chunks.
    static let batch: Int32 = 8

    struct Reader: Sendable {
        let access: PracticeAccess
        let token: SessionToken
        let practice: UUID
        let lead: UUID
        let context: RequestContext
    }

    private let wanted: ClosedRange<Int64>
    private let chunks: Int32
    private let opener: StreamOpener
    private let reader: Reader
    private let slot: RecordingStreams.Slot

    init(
        bytes: Int64, contentType: String, range: ClosedRange<Int64>?, wanted: ClosedRange<Int64>, chunks: Int32,
        opener: StreamOpener, reader: Reader, slot: RecordingStreams.Slot
    ) {
        self.bytes = bytes
        self.contentType = contentType
        self.range = range
        self.wanted = wanted
        self.chunks = chunks
        self.opener = opener
        self.reader = reader
        self.slot = slot
    }

    /// Sends the wanted bytes to `sink`, decrypted, in order. An error from `sink` (the client
    /// went away) ends the stream; the `recording.played` event stays.
    public func stream(_ sink: ([UInt8]) async throws -> Void) async throws {
        guard bytes > 0 else { return }
        let size = Int64(opener.plaintextChunkSize)
        var next = Int32(wanted.lowerBound / size)
        let last = Int32(wanted.upperBound / size)
        while next <= last {
            let from = next
            let rows = try await reader.access.withPractice(
                reader.token, practice: reader.practice, scope: .recordingsListen, context: reader.context
            ) { transaction in
                try await transaction.query(
                    """
                    select chunk_index, ciphertext from enclave.recordings
                    where tenant_id = $1 and lead_id = $2 and chunk_index between $3 and $4 order by chunk_index
                    """,
                    [reader.practice, reader.lead, from, min(from + Self.batch - 1, last)]
                ).map { (try $0.decode(Int32.self, "chunk_index"), try $0.decode([UInt8].self, "ciphertext")) }
            }
            if rows.isEmpty { throw SealingError(.streamIncomplete, "a recording chunk is missing") }
            for (index, ciphertext) in rows {
                guard index == next else { throw SealingError(.streamIncomplete, "a recording chunk is missing") }
                let plain = try opener.openChunk(ciphertext, index: UInt32(index), isLast: index == chunks - 1)
                let start = Int64(index) * size
                let lower = Int(max(wanted.lowerBound - start, 0))
                let upper = Int(min(wanted.upperBound - start + 1, Int64(plain.count)))
                next += 1
                if lower < upper { try await sink(Array(plain[lower..<upper])) }
            }
        }
    }
}
