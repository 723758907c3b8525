import Foundation
import Sealing
import Testing

@Suite("Streaming ciphertexts for recordings")
struct StreamCipherTests {
    let key: DataKey
    let context = FieldContext(tenantID: UUID(), table: "recordings", column: "audio", rowID: UUID())

    init() throws { key = try DataKey.generate(version: 3) }

    func sealStream(_ data: [UInt8], chunkSize: Int = 1024) throws -> (header: [UInt8], chunks: [[UInt8]]) {
        var sealer = try StreamSealer(key: key, context: context, chunkSize: chunkSize)
        var chunks: [[UInt8]] = []
        var offset = 0
        repeat {
            let end = min(offset + chunkSize, data.count)
            chunks.append(try sealer.seal(data[offset..<end], isLast: end == data.count))
            offset = end
        } while offset < data.count
        return (sealer.header, chunks)
    }

    func openStream(header: [UInt8], chunks: [[UInt8]], context: FieldContext? = nil) throws -> [UInt8] {
        var opener = try StreamOpener(header: header, key: key, context: context ?? self.context)
        var output: [UInt8] = []
        for (index, chunk) in chunks.enumerated() {
            output += try opener.open(chunk, isLast: index == chunks.count - 1)
        }
        try opener.finish()
        return output
    }

    @Test("round trip for sizes around chunk boundaries")
    func roundTrip() throws {
        for size in [0, 1, 1023, 1024, 1025, 4096, 10_000] {
            let data = try SecureRandom.bytes(size)
            let (header, chunks) = try sealStream(data)
            #expect(try StreamCipher.keyVersion(ofHeader: header) == 3)
            #expect(try openStream(header: header, chunks: chunks) == data)
        }
    }

    @Test("reordered, dropped, duplicated and truncated chunks are rejected")
    func tampering() throws {
        let (header, chunks) = try sealStream(try SecureRandom.bytes(5000))
        #expect(chunks.count == 5)
        var swapped = chunks
        swapped.swapAt(1, 2)
        var dropped = chunks
        dropped.remove(at: 2)
        var duplicated = chunks
        duplicated.insert(chunks[1], at: 2)
        let truncated = Array(chunks.prefix(3))
        let lastDropped = Array(chunks.dropLast())
        for variant in [swapped, dropped, duplicated, truncated, lastDropped] {
            #expect(throws: SealingError.self) { try openStream(header: header, chunks: variant) }
        }
        // A stream whose reader stops early (never sees the last chunk) is incomplete.
        var opener = try StreamOpener(header: header, key: key, context: context)
        _ = try opener.open(chunks[0], isLast: false)
        #expect(throws: SealingError(.streamIncomplete, "")) { try opener.finish() }
    }

    @Test("a stream moved to another recording, or a changed header, is rejected")
    func moved() throws {
        let (header, chunks) = try sealStream(try SecureRandom.bytes(3000))
        var other = context
        other.rowID = UUID()
        #expect(throws: SealingError.self) { try openStream(header: header, chunks: chunks, context: other) }
        for index in header.indices where index != 0 {
            var changed = header
            changed[index] ^= 0x01
            #expect(throws: SealingError.self) {
                try openStream(header: header == changed ? header : changed, chunks: chunks)
            }
        }
    }

    @Test("64 MiB seals and opens chunk by chunk, holding one chunk at a time")
    func bounded() throws {
        // Seal and open 64 MiB chunk by chunk, keeping only a running digest: the working set is
        // one chunk, whatever the size.
        var sealer = try StreamSealer(key: key, context: context)
        var opener = try StreamOpener(header: sealer.header, key: key, context: context)
        let chunk = try SecureRandom.bytes(StreamCipher.defaultChunkSize)
        let count = 1024
        for index in 0..<count {
            let sealed = try sealer.seal(chunk, isLast: index == count - 1)
            #expect(sealed.count == chunk.count + AES256GCM.tagSize)
            let opened = try opener.open(sealed, isLast: index == count - 1)
            if opened != chunk { Issue.record("chunk \(index) differs") }
        }
        try opener.finish()
    }
}
