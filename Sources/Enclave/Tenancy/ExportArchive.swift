import Foundation
import Sealing

/// A practice's data, decrypted from Enclave and re-encrypted for the practice under a
/// passphrase it supplies.
///
/// Layout: `"ENCLAVE-EXPORT1" | practice id (16) | salt (16) | ln, r, p (3 bytes) | stream header (16)`
/// then sealed chunks, each `u32 BE length | chunk`. The key is scrypt(passphrase, salt); the
/// content is Enclave's chunked stream format, so reordering, dropping or truncating is detected.
/// Inside, records are `type (1) | u32 BE length | bytes`: 1 a lead (JSON), 2 a recording's
/// start (JSON: lead, content type, size), 3 recording bytes, 4 the end.
public enum ExportArchive {
    static let magic = Array("ENCLAVE-EXPORT1".utf8)
    static let chunkSize = 64 * 1024

    /// Writes records into an archive file as they come; memory stays about one chunk.
    public final class Writer {
        private let handle: FileHandle
        private var sealer: StreamSealer
        private var pending: [UInt8] = []
        public private(set) var leads = 0
        public private(set) var recordings = 0

        /// Creates `path` (mode 0600; it must not exist).
        public init(path: String, practice: UUID, passphrase: String, cost: PasswordHasher.Cost = .owasp) throws {
            guard passphrase.count >= 12 else {
                throw ConfigurationError("the export passphrase has at least 12 characters")
            }
            guard !FileManager.default.fileExists(atPath: path) else {
                throw ConfigurationError("--export \(path) already exists; not overwriting it")
            }
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw ConfigurationError("--export \(path): cannot be created") }
            let salt = try SecureRandom.bytes(16)
            let key = try PasswordHasher.scrypt(password: Array(passphrase.utf8), salt: salt, cost: cost, length: 32)
            sealer = try StreamSealer(
                key: DataKey(version: 1, material: SecretBytes(copying: key)), context: ExportArchive.context(practice),
                chunkSize: ExportArchive.chunkSize)
            self.handle = handle
            var header = ExportArchive.magic + practice.bytes + salt
            header += [UInt8(cost.logN), UInt8(cost.r), UInt8(cost.p)] + sealer.header
            try handle.write(contentsOf: header)
        }

        /// Adds a lead.
        public func add(lead json: [UInt8]) throws {
            try record(1, json)
            leads += 1
        }

        /// Starts a recording; its bytes follow through `addRecordingPieces`.
        public func startRecording(lead: UUID, contentType: String, bytes: Int64) throws {
            let start = try JSONSerialization.data(
                withJSONObject: ["lead": lead.uuidString.lowercased(), "content_type": contentType, "bytes": bytes])
            try record(2, Array(start))
            recordings += 1
        }

        /// Adds bytes to the recording most recently started.
        public func addRecordingPieces(_ pieces: [[UInt8]]) throws {
            for piece in pieces { try record(3, piece) }
        }

        /// Seals the last chunk and closes the file.
        public func finish() throws {
            try record(4, [])
            try flush(last: true)
            try handle.synchronize()
            try handle.close()
        }

        private func record(_ type: UInt8, _ bytes: [UInt8]) throws {
            pending += [type] + UInt32(bytes.count).bigEndianBytes + bytes
            while pending.count > ExportArchive.chunkSize { try flush(last: false) }
        }

        private func flush(last: Bool) throws {
            let take = min(pending.count, ExportArchive.chunkSize)
            let sealed = try sealer.seal(pending[0..<take], isLast: last)
            pending.removeFirst(take)
            try handle.write(contentsOf: UInt32(sealed.count).bigEndianBytes + sealed)
        }
    }

    /// An archive's contents, read back.
    public struct Contents: Sendable {
        public let practice: UUID
        /// Each lead as a JSON object.
        public let leads: [[String: String]]
        /// Each recording's bytes by lead id.
        public let recordings: [UUID: [UInt8]]

        /// Writes the contents into a new directory: `leads.jsonl` (one lead a line) and
        /// `recordings/<lead id>`.
        ///
        /// - Throws: `ConfigurationError` when `directory` already exists.
        public func write(to directory: URL) throws {
            guard !FileManager.default.fileExists(atPath: directory.path) else {
                throw ConfigurationError("\(directory.path) already exists")
            }
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false)
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("recordings"), withIntermediateDirectories: false)
            var lines = Data()
            for lead in leads {
                lines += try JSONSerialization.data(withJSONObject: lead, options: [.sortedKeys]) + Data("\n".utf8)
            }
            try lines.write(to: directory.appendingPathComponent("leads.jsonl"))
            for (lead, bytes) in recordings {
                try Data(bytes).write(
                    to: directory.appendingPathComponent("recordings/\(lead.uuidString.lowercased())"))
            }
        }
    }

    /// Opens and reads a whole archive (for the practice, or a test); wrong passphrases and any
    /// tampering are refused.
    public static func read(path: String, passphrase: String) throws -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(path): cannot be read")
        }
        let bytes = [UInt8](data)
        let headerSize = magic.count + 16 + 16 + 3 + StreamCipher.headerSize
        guard bytes.count >= headerSize, Array(bytes[0..<magic.count]) == magic else {
            throw ConfigurationError("\(path) is not an Enclave export")
        }
        var offset = magic.count
        let practice = UUID(uuid: bytes[offset..<offset + 16].withUnsafeBytes { $0.load(as: uuid_t.self) })
        offset += 16
        let salt = Array(bytes[offset..<offset + 16])
        offset += 16
        let cost = PasswordHasher.Cost(logN: Int(bytes[offset]), r: Int(bytes[offset + 1]), p: Int(bytes[offset + 2]))
        offset += 3
        let streamHeader = Array(bytes[offset..<offset + StreamCipher.headerSize])
        offset += StreamCipher.headerSize
        let key = try PasswordHasher.scrypt(password: Array(passphrase.utf8), salt: salt, cost: cost, length: 32)
        var opener = try StreamOpener(
            header: streamHeader, key: DataKey(version: 1, material: SecretBytes(copying: key)),
            context: context(practice))
        var plain: [UInt8] = []
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { throw SealingError(.streamIncomplete, "the export is truncated") }
            let length = Int(UInt32(bigEndianBytes: bytes[offset..<offset + 4]))
            offset += 4
            guard offset + length <= bytes.count else {
                throw SealingError(.streamIncomplete, "the export is truncated")
            }
            let isLast = offset + length == bytes.count
            do {
                plain += try opener.open(bytes[offset..<offset + length], isLast: isLast)
            } catch {
                throw ConfigurationError("the export does not open: wrong passphrase, or the file was changed")
            }
            offset += length
        }
        try opener.finish()
        var leads: [[String: String]] = []
        var recordings: [UUID: [UInt8]] = [:]
        var current: UUID?
        var position = 0
        while position + 5 <= plain.count {
            let type = plain[position]
            let length = Int(UInt32(bigEndianBytes: plain[position + 1..<position + 5]))
            let body = Array(plain[position + 5..<position + 5 + length])
            position += 5 + length
            switch type {
            case 1: leads.append((try JSONSerialization.jsonObject(with: Data(body)) as? [String: String]) ?? [:])
            case 2:
                let start = (try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:]
                current = (start["lead"] as? String).flatMap(UUID.init(uuidString:))
                if let current { recordings[current] = [] }
            case 3: if let current { recordings[current, default: []] += body }
            default: break
            }
        }
        return Contents(practice: practice, leads: leads, recordings: recordings)
    }

    static func context(_ practice: UUID) -> FieldContext {
        FieldContext(tenantID: practice, table: "export", column: "archive", rowID: practice)
    }
}
