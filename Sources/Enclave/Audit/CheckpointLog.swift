import Foundation
import Sealing

/// Chain heads as a checkpoint log last saw them: for each chain, the position and hash of its
/// last link. `AuditVerifier` checks that every chain still reaches that link unchanged, which
/// catches a tail cut off (and the head fixed up) after the checkpoint.
public struct Checkpoint: Sendable {
    /// One chain's last link.
    public struct Head: Sendable, Equatable {
        public let chain: UUID
        public let seq: Int64
        public let hash: [UInt8]

        public init(chain: UUID, seq: Int64, hash: [UInt8]) {
            self.chain = chain
            self.seq = seq
            self.hash = hash
        }
    }

    /// When the newest record that contributed was written.
    public let createdAt: Date
    public let heads: [Head]

    public init(createdAt: Date = Date(), heads: [Head]) {
        self.createdAt = createdAt
        self.heads = heads
    }
}

/// An append-only file of checkpoint records outside PostgreSQL, written by the chainer after
/// each batch it links (only the chains that moved) and by `enclave audit checkpoint` (every
/// chain). One JSON object per line:
///
///     {"at":…,"heads":[["<chain>",<seq>,"<hash hex>"],…],"mac":"…","prev":"…","v":2}
///
/// `mac` is the HMAC-SHA-256 under the audit key of the record's canonical text, which includes
/// `prev`, the previous record's `mac` (64 zeros for the first): a record altered, removed from
/// the middle or reordered breaks every later one. A last line without its newline is a write
/// cut short by a crash; it is ignored when read and cut off before the next append.
public final class CheckpointLog: Sendable {
    public let path: String
    private let key: MasterKeyFile
    /// The last record's mac and the heads folded from every record, once read.
    private let state = Locked<(mac: [UInt8], heads: [UUID: Checkpoint.Head])?>(nil)
    /// Whether this process has already made sure the file ends with a whole line.
    private let tailChecked = Locked(false)

    public init(path: String, key: MasterKeyFile) {
        self.path = path
        self.key = key
    }

    private struct Record: Codable {
        var v: Int
        var at: Int64
        var prev: String
        var heads: [Entry]
        var mac: String
    }

    private struct Entry: Codable {
        let chain: UUID
        let seq: Int64
        let hash: [UInt8]

        init(_ head: Checkpoint.Head) {
            (chain, seq, hash) = (head.chain, head.seq, head.hash)
        }

        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            guard let chain = UUID(uuidString: try container.decode(String.self)) else {
                throw ConfigurationError("a checkpoint record names a chain that is not a UUID")
            }
            self.chain = chain
            seq = try container.decode(Int64.self)
            hash = [UInt8](hex: try container.decode(String.self)) ?? []
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(chain.uuidString.lowercased())
            try container.encode(seq)
            try container.encode(hash.hex)
        }
    }

    /// Every record read and checked, folded into each chain's latest head; nil when the log
    /// does not exist or holds no record yet.
    ///
    /// - Throws: `ConfigurationError` when a record does not authenticate under the key or does
    ///   not follow the record before it.
    public func read() throws -> Checkpoint? {
        let (mac, heads, at) = try load()
        state.withLock { $0 = (mac, heads) }
        guard let at else { return nil }
        return Checkpoint(createdAt: at, heads: heads.values.sorted { $0.chain.uuidString < $1.chain.uuidString })
    }

    /// Appends a record of `heads` that differ from what the log already holds, and forces it to
    /// disk. Returns how many heads it recorded (0: nothing written).
    @discardableResult
    public func append(_ heads: [Checkpoint.Head], at date: Date = Date()) throws -> Int {
        if state.value == nil { _ = try read() }
        let (previous, known) = state.value ?? ([UInt8](repeating: 0, count: 32), [:])
        let changed = heads.filter { known[$0.chain] != $0 }.sorted { $0.chain.uuidString < $1.chain.uuidString }
        guard !changed.isEmpty else { return 0 }
        let at = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let mac = try key.authenticationCode(version: 1, message: Self.message(prev: previous, at: at, heads: changed))
        let record = Record(v: 2, at: at, prev: previous.hex, heads: changed.map(Entry.init), mac: mac.hex)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line = try encoder.encode(record)
        line.append(UInt8(ascii: "\n"))
        try write(line)
        state.withLock { value in
            var heads = value?.heads ?? [:]
            for head in changed { heads[head.chain] = head }
            value = (mac, heads)
        }
        return changed.count
    }

    private static func message(prev: [UInt8], at: Int64, heads: [Checkpoint.Head]) -> [UInt8] {
        var text = "enclave.audit.checkpoint.v2\n\(prev.hex)\n\(at)\n"
        for head in heads { text += "\(head.chain.uuidString.lowercased()):\(head.seq):\(head.hash.hex)\n" }
        return Array(text.utf8)
    }

    private func load() throws -> (mac: [UInt8], heads: [UUID: Checkpoint.Head], at: Date?) {
        var mac = [UInt8](repeating: 0, count: 32)
        var heads: [UUID: Checkpoint.Head] = [:]
        var at: Date?
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) {
                throw ConfigurationError("the checkpoint log \(path) cannot be read")
            }
            return (mac, heads, nil)
        }
        let decoder = JSONDecoder()
        // Only complete lines: a last line without its newline was cut short by a crash.
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .dropLast().enumerated() where !line.isEmpty
        {
            guard let record = try? decoder.decode(Record.self, from: line), record.v == 2,
                record.prev == mac.hex
            else {
                throw ConfigurationError(
                    "the checkpoint log \(path) is damaged at record \(index + 1): not a record that follows the one before it"
                )
            }
            let recordHeads = record.heads.map { Checkpoint.Head(chain: $0.chain, seq: $0.seq, hash: $0.hash) }
            let expected = try key.authenticationCode(
                version: 1, message: Self.message(prev: mac, at: record.at, heads: recordHeads))
            guard HMAC.constantTimeEqual(expected, [UInt8](hex: record.mac) ?? []) else {
                throw ConfigurationError(
                    "the checkpoint log \(path) record \(index + 1) does not authenticate: altered, or another key")
            }
            for head in recordHeads { heads[head.chain] = head }
            mac = expected
            at = Date(timeIntervalSince1970: Double(record.at) / 1_000_000)
        }
        return (mac, heads, at)
    }

    /// Appends `line` with O_APPEND after cutting off a torn last line, then fsyncs.
    private func write(_ line: Data) throws {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError("the checkpoint log \(path) cannot be opened for appending (errno \(errno))")
        }
        defer { close(descriptor) }
        if !tailChecked.value, let data = FileManager.default.contents(atPath: path), let last = data.last,
            last != UInt8(ascii: "\n")
        {
            let keep = (data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 }) ?? 0
            guard ftruncate(descriptor, off_t(keep)) == 0 else {
                throw ConfigurationError("the checkpoint log \(path) cannot be repaired (errno \(errno))")
            }
        }
        let written = line.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        guard written == line.count, fsync(descriptor) == 0 else {
            throw ConfigurationError("the checkpoint log \(path) cannot be written (errno \(errno))")
        }
        tailChecked.withLock { $0 = true }
    }
}
