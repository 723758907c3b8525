import Foundation
import Sealing

extension CheckpointLog {
    /// Re-links a log that an older release forked (two writers each appended a record after the
    /// same one) into one line, without dropping a signed record: every record must authenticate
    /// under the key with the `prev` it names; each is kept, in file order, with its time, heads
    /// and accounting, and signed again after the one before it. The original is kept beside the
    /// log as `<path>.forked-<time>`. Stop every chainer first.
    ///
    /// - Returns: the records kept and how many of them needed a new `prev`.
    /// - Throws: `ConfigurationError` when a record does not authenticate (altered, not forked).
    public static func repair(path: String, key: MasterKeyFile, now: Date = Date()) throws -> (
        records: Int, relinked: Int
    ) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("the checkpoint log \(path) cannot be read")
        }
        let decoder = JSONDecoder()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var output = Data()
        var prev = [UInt8](repeating: 0, count: 32)
        var records = 0
        var relinked = 0
        // A last line without its newline is a write a crash cut short: dropped, as read() does.
        let whole = data.lastIndex(of: UInt8(ascii: "\n")).map { data[...$0] } ?? Data()
        for (index, line) in whole.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).enumerated() {
            guard var record = try? decoder.decode(Record.self, from: line), record.v == 2 || record.v == 3,
                let statedPrev = [UInt8](hex: record.prev)
            else { throw ConfigurationError("the checkpoint log \(path) line \(index + 1) is not a checkpoint record") }
            let heads = record.heads.map { Checkpoint.Head(chain: $0.chain, seq: $0.seq, hash: $0.hash) }
            let settled = record.settled.flatMap {
                $0.count == 4
                    ? Checkpoint.Accounting(from: $0[0], through: $0[1], missing: $0[2], unaccounted: $0[3]) : nil
            }
            let genuine = try key.authenticationCode(
                version: 1, message: message(prev: statedPrev, at: record.at, heads: heads, settled: settled))
            guard HMAC.constantTimeEqual(genuine, [UInt8](hex: record.mac) ?? []) else {
                throw ConfigurationError(
                    "the checkpoint log \(path) record \(index + 1) does not authenticate: altered, not forked; nothing repaired"
                )
            }
            if statedPrev != prev {
                relinked += 1
                let mac = try key.authenticationCode(
                    version: 1, message: message(prev: prev, at: record.at, heads: heads, settled: settled))
                record.prev = prev.hex
                record.mac = mac.hex
            }
            prev = [UInt8](hex: record.mac) ?? []
            output.append(try encoder.encode(record))
            output.append(UInt8(ascii: "\n"))
            records += 1
        }
        guard relinked > 0 else { return (records, 0) }
        let aside = path + ".forked-" + String(Int64(now.timeIntervalSince1970))
        let staged = path + ".repairing"
        guard FileManager.default.createFile(atPath: staged, contents: output, attributes: [.posixPermissions: 0o600])
        else { throw ConfigurationError("cannot write \(staged)") }
        let descriptor = open(staged, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            _ = fsync(descriptor)
            close(descriptor)
        }
        guard link(path, aside) == 0, rename(staged, path) == 0 else {
            throw ConfigurationError("the checkpoint log \(path) cannot be replaced (errno \(errno))")
        }
        return (records, relinked)
    }
}
