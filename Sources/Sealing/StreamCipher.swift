/// The chunked format for large values such as call recordings.
///
/// Header (16 bytes): `0x02 | dek_version (u32 BE) | nonce prefix (7, random) | chunk size (u32 BE)`.
/// Chunk `i` is sealed with nonce `prefix | i (u32 BE) | last (0 or 1)` and associated data of
/// the value's `FieldContext` and the header (the STREAM construction). Reordering or dropping
/// a chunk breaks its nonce; truncating after any chunk but the last fails because only the last
/// was sealed with the last flag. Memory stays one chunk, whatever the value's size.
public enum StreamCipher {
    /// The format byte.
    public static let format: UInt8 = 0x02
    /// Bytes in a header.
    public static let headerSize = 16
    /// Default plaintext bytes per chunk.
    public static let defaultChunkSize = 64 * 1024
    static let prefixSize = 7

    /// The data key version named by a stream header.
    public static func keyVersion(ofHeader header: some Collection<UInt8>) throws -> UInt32 {
        try parse(Array(header)).version
    }

    static func parse(_ header: [UInt8]) throws -> (version: UInt32, prefix: [UInt8], chunkSize: Int) {
        guard header.count == headerSize, header[0] == format else {
            throw SealingError(.malformed, "not an Enclave stream header")
        }
        let chunkSize = Int(UInt32(bigEndianBytes: header[12...]))
        guard chunkSize > 0, chunkSize <= 16 * 1024 * 1024 else {
            throw SealingError(.malformed, "stream header has an unusable chunk size")
        }
        return (UInt32(bigEndianBytes: header[1...]), Array(header[5..<12]), chunkSize)
    }

    static func nonce(prefix: [UInt8], counter: UInt32, last: Bool) -> [UInt8] {
        prefix + counter.bigEndianBytes + [last ? 1 : 0]
    }
}

/// Seals a large value chunk by chunk.
public struct StreamSealer: Sendable {
    /// The header to store before the chunks.
    public let header: [UInt8]
    /// The most plaintext bytes one chunk may hold.
    public let chunkSize: Int
    private let key: DataKey
    private let prefix: [UInt8]
    private let associatedData: [UInt8]
    private var counter: UInt32 = 0
    private var finished = false

    public init(key: DataKey, context: FieldContext, chunkSize: Int = StreamCipher.defaultChunkSize) throws {
        guard chunkSize > 0, chunkSize <= 16 * 1024 * 1024 else {
            throw SealingError(.malformed, "chunk size must be between 1 byte and 16 MiB")
        }
        self.key = key
        self.chunkSize = chunkSize
        prefix = try SecureRandom.bytes(StreamCipher.prefixSize)
        header = [StreamCipher.format] + key.version.bigEndianBytes + prefix + UInt32(chunkSize).bigEndianBytes
        associatedData = try context.associatedData(header: header)
    }

    /// Seals the next chunk; `isLast` must be true for the final one (which may be empty).
    public mutating func seal(_ chunk: some Collection<UInt8>, isLast: Bool) throws -> [UInt8] {
        guard !finished else { throw SealingError(.streamIncomplete, "the stream already has its last chunk") }
        guard chunk.count <= chunkSize else { throw SealingError(.malformed, "chunk is larger than the chunk size") }
        guard counter < UInt32.max else { throw SealingError(.malformed, "stream has too many chunks") }
        let nonce = StreamCipher.nonce(prefix: prefix, counter: counter, last: isLast)
        let output = try withContiguousBytes(chunk) { plain in
            try [UInt8](unsafeUninitializedCapacity: plain.count + AES256GCM.tagSize) { buffer, initialized in
                try nonce.withUnsafeBytes { nonce in
                    try associatedData.withUnsafeBytes { ad in
                        try key.cipher.seal(
                            nonce: nonce, associatedData: ad, plaintext: plain,
                            into: UnsafeMutableRawBufferPointer(buffer))
                    }
                }
                initialized = plain.count + AES256GCM.tagSize
            }
        }
        counter += 1
        finished = isLast
        return output
    }
}

/// Opens a value sealed by `StreamSealer`, chunk by chunk, in order.
public struct StreamOpener: Sendable {
    private let key: DataKey
    private let prefix: [UInt8]
    private let associatedData: [UInt8]
    private let chunkSize: Int
    private var counter: UInt32 = 0
    private var finished = false

    /// Prepares to open the stream with `header`; `key` must be the version the header names.
    public init(header: some Collection<UInt8>, key: DataKey, context: FieldContext) throws {
        let header = Array(header)
        let parsed = try StreamCipher.parse(header)
        guard parsed.version == key.version else {
            throw SealingError(.wrongKeyVersion, "stream needs data key version \(parsed.version), not \(key.version)")
        }
        self.key = key
        prefix = parsed.prefix
        chunkSize = parsed.chunkSize
        associatedData = try context.associatedData(header: header)
    }

    /// Opens the next chunk; `isLast` says whether the caller holds no further chunks.
    public mutating func open(_ sealedChunk: some Collection<UInt8>, isLast: Bool) throws -> [UInt8] {
        guard !finished else { throw SealingError(.streamIncomplete, "data follows the stream's last chunk") }
        guard sealedChunk.count <= chunkSize + AES256GCM.tagSize else {
            throw SealingError(.malformed, "chunk is larger than the stream's chunk size")
        }
        let plaintext = try Self.open(
            sealedChunk, key: key, nonce: StreamCipher.nonce(prefix: prefix, counter: counter, last: isLast),
            associatedData: associatedData)
        counter += 1
        finished = isLast
        return plaintext
    }

    /// Opens chunk `index` on its own (for range reads): `isLast` must say whether it is the
    /// stream's final chunk, which the caller knows from the stored chunk count.
    public func openChunk(_ sealedChunk: some Collection<UInt8>, index: UInt32, isLast: Bool) throws -> [UInt8] {
        guard sealedChunk.count <= chunkSize + AES256GCM.tagSize else {
            throw SealingError(.malformed, "chunk is larger than the stream's chunk size")
        }
        return try Self.open(
            sealedChunk, key: key, nonce: StreamCipher.nonce(prefix: prefix, counter: index, last: isLast),
            associatedData: associatedData)
    }

    private static func open(
        _ sealedChunk: some Collection<UInt8>, key: DataKey, nonce: [UInt8], associatedData: [UInt8]
    ) throws -> [UInt8] {
        try withContiguousBytes(sealedChunk) { sealed in
            let count = max(sealed.count - AES256GCM.tagSize, 0)
            return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                try nonce.withUnsafeBytes { nonce in
                    try associatedData.withUnsafeBytes { ad in
                        try key.cipher.open(
                            nonce: nonce, associatedData: ad, ciphertextAndTag: sealed,
                            into: UnsafeMutableRawBufferPointer(buffer))
                    }
                }
                initialized = count
            }
        }
    }

    /// The plaintext bytes per chunk of this stream.
    public var plaintextChunkSize: Int { chunkSize }

    /// Throws unless the last chunk was opened: a stream cut short is an error, not a short value.
    public func finish() throws {
        guard finished else { throw SealingError(.streamIncomplete, "the stream ended before its last chunk") }
    }
}
