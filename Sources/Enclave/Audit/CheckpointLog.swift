import Foundation
import Sealing
import Synchronization

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
    /// What this process has read of the log: the bytes up to the end of the last whole record,
    /// that record's mac, and the heads folded from every record.
    private struct Folded {
        var offset = 0
        var mac = [UInt8](repeating: 0, count: 32)
        var heads: [UUID: Checkpoint.Head] = [:]
        var at: Date?
        var records = 0
    }

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
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) {
                throw ConfigurationError("the checkpoint log \(path) cannot be read")
            }
            return nil
        }
        var folded = Folded()
        try fold(data, into: &folded)
        guard let at = folded.at else { return nil }
        return Checkpoint(
            createdAt: at, heads: folded.heads.values.sorted { $0.chain.uuidString < $1.chain.uuidString })
    }

    /// Appends a record of `heads` that differ from what the log already holds, and forces it to
    /// disk. Returns how many heads it recorded (0: nothing written).
    ///
    /// One writer at a time, across processes: the append holds an exclusive `flock` on the file
    /// and first reads whatever other writers (another chainer, `audit chain --once`, `audit
    /// checkpoint`) appended since this process last looked, so its record follows theirs and
    /// the log never forks. It takes no database lock while it holds the file's.
    @discardableResult
    public func append(_ heads: [Checkpoint.Head], at date: Date = Date()) throws -> Int {
        try state.withLock { folded in
            let descriptor = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw ConfigurationError("the checkpoint log \(path) cannot be opened for appending (errno \(errno))")
            }
            defer { close(descriptor) }
            guard flock(descriptor, LOCK_EX) == 0 else {
                throw ConfigurationError("the checkpoint log \(path) cannot be locked (errno \(errno))")
            }
            defer { _ = flock(descriptor, LOCK_UN) }
            try catchUp(descriptor, &folded)
            let changed = heads.filter { folded.heads[$0.chain] != $0 }.sorted {
                $0.chain.uuidString < $1.chain.uuidString
            }
            guard !changed.isEmpty else { return 0 }
            let at = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
            let mac = try key.authenticationCode(
                version: 1, message: Self.message(prev: folded.mac, at: at, heads: changed))
            let record = Record(v: 2, at: at, prev: folded.mac.hex, heads: changed.map(Entry.init), mac: mac.hex)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var line = try encoder.encode(record)
            line.append(UInt8(ascii: "\n"))
            let written = line.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            guard written == line.count, fsync(descriptor) == 0 else {
                throw ConfigurationError("the checkpoint log \(path) cannot be written (errno \(errno))")
            }
            folded.offset += line.count
            folded.mac = mac
            for head in changed { folded.heads[head.chain] = head }
            folded.at = Date(timeIntervalSince1970: Double(at) / 1_000_000)
            folded.records += 1
            return changed.count
        }
    }

    /// What this process has folded of the log so far.
    private let state = Mutex(Folded())

    private static func message(prev: [UInt8], at: Int64, heads: [Checkpoint.Head]) -> [UInt8] {
        var text = "enclave.audit.checkpoint.v2\n\(prev.hex)\n\(at)\n"
        for head in heads { text += "\(head.chain.uuidString.lowercased()):\(head.seq):\(head.hash.hex)\n" }
        return Array(text.utf8)
    }

    /// Under the file lock: folds the records other writers appended since `folded.offset`, and
    /// cuts off a last line a crash left without its newline.
    private func catchUp(_ descriptor: Int32, _ folded: inout Folded) throws {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw ConfigurationError("the checkpoint log \(path) cannot be read (errno \(errno))")
        }
        let size = Int(status.st_size)
        if size < folded.offset {
            throw ConfigurationError("the checkpoint log \(path) is shorter than when this process last read it")
        }
        guard size > folded.offset else { return }
        var data = [UInt8](repeating: 0, count: size - folded.offset)
        let read = data.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(folded.offset)) }
        guard read == data.count else {
            throw ConfigurationError("the checkpoint log \(path) cannot be read (errno \(errno))")
        }
        try fold(Data(data), into: &folded)
        if folded.offset < size, ftruncate(descriptor, off_t(folded.offset)) != 0 {
            throw ConfigurationError("the checkpoint log \(path) cannot be repaired (errno \(errno))")
        }
    }

    /// Checks and folds the whole records of `data` (the log from `folded.offset` on) into
    /// `folded`; a last line without its newline is left out (a write cut short by a crash).
    private func fold(_ data: Data, into folded: inout Folded) throws {
        let decoder = JSONDecoder()
        var start = data.startIndex
        while let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = data[start..<end]
            let number = folded.records + 1
            defer { start = end + 1 }
            folded.offset += line.count + 1
            if line.isEmpty { continue }
            guard let record = try? decoder.decode(Record.self, from: line), record.v == 2,
                record.prev == folded.mac.hex
            else {
                throw ConfigurationError(
                    "the checkpoint log \(path) is damaged at record \(number): not a record that follows the one before it"
                )
            }
            let recordHeads = record.heads.map { Checkpoint.Head(chain: $0.chain, seq: $0.seq, hash: $0.hash) }
            let expected = try key.authenticationCode(
                version: 1, message: Self.message(prev: folded.mac, at: record.at, heads: recordHeads))
            guard HMAC.constantTimeEqual(expected, [UInt8](hex: record.mac) ?? []) else {
                throw ConfigurationError(
                    "the checkpoint log \(path) record \(number) does not authenticate: altered, or another key")
            }
            for head in recordHeads { folded.heads[head.chain] = head }
            folded.mac = expected
            folded.at = Date(timeIntervalSince1970: Double(record.at) / 1_000_000)
            folded.records += 1
        }
    }
}
