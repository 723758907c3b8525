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
    /// True when marked `-- enclave:after-functions`: the file needs the functions of
    /// `functions/` (a policy or trigger that calls one), so the runner applies changed
    /// function files first.
    public let runsAfterFunctions: Bool

    /// The marker that makes a file run outside a transaction.
    public static let noTransactionMarker = "-- enclave:no-transaction"
    /// The marker of a batched tenant migration, followed by the batch size.
    public static let batchMarker = "-- enclave:batch "
    /// The marker of a schema migration that needs the function files applied before it.
    public static let afterFunctionsMarker = "-- enclave:after-functions"

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
        self.runsAfterFunctions = markers.contains(Self.afterFunctionsMarker)
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
        return files
    }
}
