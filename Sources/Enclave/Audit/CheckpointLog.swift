import Foundation
import Sealing
import Synchronization

/// An append-only file of checkpoint records outside PostgreSQL, written by the chainer after
/// each batch it links (only the chains that moved) and by `enclave audit checkpoint` (every
/// chain). One JSON object per line:
///
///     {"at":…,"heads":[["<chain>",<seq>,"<hash hex>"],…],"mac":"…","prev":"…","v":3,
///      "settled":[<from>,<through>,<missing>,<unaccounted>]}
///
/// `mac` is the HMAC-SHA-256 under the audit key of the record's canonical text, which includes
/// `prev`, the previous record's `mac` (64 zeros for the first): a record altered, removed from
/// the middle or reordered breaks every later one. `settled` (version 3, the chainer's records
/// only) accounts for the platform sequence numbers the pass settled. Heads only move forward:
/// a head behind the one the log holds for its chain is not recorded, and one at the same
/// position with another hash is refused. A last line without its newline is a write
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
        var through: Int64 = 0
        var missing: Int64 = 0
        var unaccounted: [Checkpoint.Accounting] = []
        /// Every head recorded, kept only when reading the whole log for verify.
        var history: [UUID: [Int64: [UInt8]]]?
    }

    public init(path: String, key: MasterKeyFile) {
        self.path = path
        self.key = key
    }

    struct Record: Codable {
        var v: Int
        var at: Int64
        var prev: String
        var heads: [Entry]
        var mac: String
        var settled: [Int64]?
    }

    struct Entry: Codable {
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
        folded.history = [:]
        try fold(data, into: &folded)
        guard let at = folded.at else { return nil }
        return Checkpoint(
            createdAt: at, heads: folded.heads.values.sorted { $0.chain.uuidString < $1.chain.uuidString },
            history: folded.history, through: folded.through, missing: folded.missing,
            unaccounted: folded.unaccounted)
    }

    /// The log's latest heads, how far it has settled the platform sequence, and when it was last
    /// written, read under the file lock (the chainer's view before it links).
    public func current() throws -> (heads: [UUID: Checkpoint.Head], through: Int64, at: Date?) {
        try locked { folded, _ in (folded.heads, folded.through, folded.at) }
    }

    /// Runs `body` with the log opened for appending, locked, and caught up.
    private func locked<T>(_ body: (inout Folded, Int32) throws -> T) throws -> T {
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
            return try body(&folded, descriptor)
        }
    }

    /// Appends a record of the `heads` that move their chains forward from what the log holds
    /// (with the pass's `settled` accounting, when the chainer gives one), and forces it to disk.
    /// Returns how many heads it recorded (0 and no record when nothing moved).
    ///
    /// One writer at a time, across processes: the append holds an exclusive `flock` on the file
    /// and first reads whatever other writers (another chainer, `audit chain --once`, `audit
    /// checkpoint`) appended since this process last looked, so its record follows theirs and
    /// the log never forks. It takes no database lock while it holds the file's (a chainer may
    /// take the file's while it holds the database's: always in that order).
    ///
    /// - Throws: `ConfigurationError` for a head at a position the log holds with another hash.
    @discardableResult
    public func append(_ heads: [Checkpoint.Head], settled: Checkpoint.Accounting? = nil, at date: Date = Date())
        throws -> Int
    {
        try locked { folded, descriptor in
            var changed: [Checkpoint.Head] = []
            for head in heads {
                if let known = folded.heads[head.chain], head.seq <= known.seq {
                    if head.seq == known.seq && head.hash != known.hash {
                        throw ConfigurationError(
                            "chain \(head.chain.uuidString.lowercased()) seq \(head.seq) differs from the head the checkpoint log holds: not recorded"
                        )
                    }
                    continue
                }
                changed.append(head)
            }
            changed.sort { $0.chain.uuidString < $1.chain.uuidString }
            let settled = settled.flatMap { $0.through > folded.through ? $0 : nil }
            guard !changed.isEmpty || settled != nil else { return 0 }
            let at = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
            let mac = try key.authenticationCode(
                version: 1, message: Self.message(prev: folded.mac, at: at, heads: changed, settled: settled))
            let record = Record(
                v: settled == nil ? 2 : 3, at: at, prev: folded.mac.hex, heads: changed.map(Entry.init), mac: mac.hex,
                settled: settled.map { [$0.from, $0.through, $0.missing, $0.unaccounted] })
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
            folded.records += 1
            apply(changed, settled, at: at, to: &folded)
            return changed.count
        }
    }

    /// Folds one record's content into `folded`.
    private func apply(
        _ heads: [Checkpoint.Head], _ settled: Checkpoint.Accounting?, at: Int64, to folded: inout Folded
    ) {
        for head in heads {
            if (folded.heads[head.chain]?.seq ?? 0) < head.seq { folded.heads[head.chain] = head }
            folded.history?[head.chain, default: [:]][head.seq] = head.hash
        }
        if let settled {
            folded.through = max(folded.through, settled.through)
            folded.missing += settled.missing
            if settled.unaccounted > 0 { folded.unaccounted.append(settled) }
        }
        folded.at = Date(timeIntervalSince1970: Double(at) / 1_000_000)
    }

    /// What this process has folded of the log so far.
    private let state = Mutex(Folded())

    static func message(prev: [UInt8], at: Int64, heads: [Checkpoint.Head], settled: Checkpoint.Accounting?)
        -> [UInt8]
    {
        var text = "enclave.audit.checkpoint.v2\n\(prev.hex)\n\(at)\n"
        if let settled {
            text =
                "enclave.audit.checkpoint.v3\n\(prev.hex)\n\(at)\n"
                + "\(settled.from):\(settled.through):\(settled.missing):\(settled.unaccounted)\n"
        }
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
            guard let record = try? decoder.decode(Record.self, from: line), record.v == 2 || record.v == 3,
                record.prev == folded.mac.hex, (record.v == 3) == (record.settled?.count == 4)
            else {
                throw ConfigurationError(
                    "the checkpoint log \(path) is damaged at record \(number): not a record that follows the one before it"
                )
            }
            let recordHeads = record.heads.map { Checkpoint.Head(chain: $0.chain, seq: $0.seq, hash: $0.hash) }
            let settled = record.settled.map {
                Checkpoint.Accounting(from: $0[0], through: $0[1], missing: $0[2], unaccounted: $0[3])
            }
            let expected = try key.authenticationCode(
                version: 1, message: Self.message(prev: folded.mac, at: record.at, heads: recordHeads, settled: settled)
            )
            guard HMAC.constantTimeEqual(expected, [UInt8](hex: record.mac) ?? []) else {
                throw ConfigurationError(
                    "the checkpoint log \(path) record \(number) does not authenticate: altered, or another key")
            }
            if let history = folded.history {
                for head in recordHeads {
                    if let other = history[head.chain]?[head.seq], other != head.hash {
                        throw ConfigurationError(
                            "the checkpoint log \(path) record \(number) gives chain \(head.chain.uuidString.lowercased()) seq \(head.seq) another hash than an earlier record"
                        )
                    }
                }
            }
            folded.mac = expected
            folded.records += 1
            apply(recordHeads, settled, at: record.at, to: &folded)
        }
    }
}
