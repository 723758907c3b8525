import Foundation
import Sealing

/// One `NNNN_description.sql` file of a migrations directory.
public struct MigrationFile: Sendable, Equatable {
    /// The number before the underscore.
    public let version: Int
    /// The file name, such as `0001_roles_and_schemas.sql`.
    public let name: String
    /// The file's content.
    public let source: String
    /// Lowercase hex SHA-256 of the file's bytes.
    public let checksum: String
    /// False when the first line is `-- enclave:no-transaction` (for `CREATE INDEX CONCURRENTLY`).
    public let transactional: Bool

    /// For tenant migrations marked `-- enclave:batch N`: run in batches of N rows, each in its
    /// own transaction, until a batch changes nothing.
    public let batchSize: Int?
    /// The checksums this file had before it was rewritten (listed in the directory's
    /// `rewritten` file): a database that applied one of them is current.
    public internal(set) var previousChecksums: Set<String> = []

    /// The marker that makes a file run outside a transaction.
    public static let noTransactionMarker = "-- enclave:no-transaction"
    /// The marker of a batched tenant migration, followed by the batch size.
    public static let batchMarker = "-- enclave:batch "
    /// A marker of earlier releases: the function files now apply after every numbered file.
    static let retiredAfterFunctionsMarker = "-- enclave:after-functions"
    /// The file that lists rewritten migrations with their earlier checksums.
    public static let rewrittenListName = "rewritten"

    init(version: Int, name: String, data: Data) throws {
        guard let source = String(data: data, encoding: .utf8) else {
            throw MigrationError(code: .badFile, file: name, message: "is not valid UTF-8")
        }
        self.version = version
        self.name = name
        self.source = source
        self.checksum = SHA256.hexDigest(data)
        // Markers are the file's leading `-- enclave:` lines.
        let markers = source.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .prefix { $0.hasPrefix("-- enclave:") }
        self.transactional = !markers.contains(Self.noTransactionMarker)
        if markers.contains(Self.retiredAfterFunctionsMarker) {
            throw MigrationError(
                code: .badFile, file: name, line: 1,
                message: "\(Self.retiredAfterFunctionsMarker) is retired: function files apply after every numbered "
                    + "file, so a numbered file may not call them (policies go in functions/policies.sql)")
        }
        if let index = markers.firstIndex(where: { $0.hasPrefix(Self.batchMarker) }) {
            guard let size = Int(markers[index].dropFirst(Self.batchMarker.count)), (1...1_000_000).contains(size)
            else {
                throw MigrationError(
                    code: .badFile, file: name, line: index + 1, message: "the batch size must be 1 to 1000000")
            }
            batchSize = size
        } else {
            batchSize = nil
        }
    }

    /// Loads every `.sql` file of `directory`, sorted by version.
    ///
    /// - Throws: `MigrationError.badFile` naming a misnamed file, a duplicate version, or an
    ///   unreadable directory.
    public static func load(from directory: URL) throws -> [MigrationFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(code: .badFile, file: directory.path, message: "cannot read the migrations directory")
        }
        var files: [MigrationFile] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            let parts = name.dropLast(4).split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), version > 0,
                parts[1].allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" })
            else {
                throw MigrationError(
                    code: .badFile,
                    file: name,
                    message: "is not named NNNN_description.sql (four digits, then lowercase letters, digits, _)"
                )
            }
            if let clash = files.first(where: { $0.version == version }) {
                throw MigrationError(code: .badFile, file: name, message: "has the same version as \(clash.name)")
            }
            let data: Data
            do {
                data = try Data(contentsOf: directory.appendingPathComponent(name))
            } catch {
                throw MigrationError(code: .badFile, file: name, message: "cannot be read")
            }
            files.append(try MigrationFile(version: version, name: name, data: data))
        }
        for (version, checksums) in try rewrittenChecksums(in: directory) {
            guard let index = files.firstIndex(where: { $0.version == version }) else {
                throw MigrationError(
                    code: .badFile, file: rewrittenListName,
                    message: "lists version \(version), which has no file")
            }
            files[index].previousChecksums = checksums
        }
        return files
    }

    /// The directory's `rewritten` list: for each rewritten version, the checksums it had. Lines
    /// are `NNNN <64 hex digits> <why>`; `#` starts a comment.
    static func rewrittenChecksums(in directory: URL) throws -> [Int: Set<String>] {
        let url = directory.appendingPathComponent(rewrittenListName)
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw MigrationError(code: .badFile, file: rewrittenListName, message: "cannot be read as UTF-8")
        }
        var list: [Int: Set<String>] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            guard fields.count >= 3, first.count == 4, let version = Int(first), fields[1].count == 64,
                fields[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase })
            else {
                throw MigrationError(
                    code: .badFile, file: rewrittenListName, line: number + 1,
                    message: "is not `NNNN <previous SHA-256, 64 lowercase hex digits> <why>`")
            }
            list[version, default: []].insert(String(fields[1]))
        }
        return list
    }
}
