import Foundation
import Sealing

/// One file of `sql/functions/`: the functions of one concern, as `create or replace`, with
/// their grants.
///
/// Functions are source, not history: each lives in exactly one file, and `enclave migrate up`
/// re-applies a file whenever its checksum changes (as Flyway's repeatable migrations do).
/// Signature and return-type changes, which `create or replace` cannot make, go in a numbered
/// migration that drops the old function first.
public struct FunctionFile: Sendable, Equatable {
    /// The name recorded in the history, such as `functions/gate.sql`.
    public let name: String
    /// The file's content.
    public let source: String
    /// Lowercase hex SHA-256 of the file's bytes.
    public let checksum: String
    /// The schema-qualified names of the functions the file creates, such as
    /// `enclave_private.reachable_tenant`.
    public let functionNames: Set<String>

    /// The folder, inside the migrations directory, that holds the function files.
    public static let folder = "functions"
    /// The manifest that lists the function files in the order they apply.
    public static let manifest = "order"

    init(name: String, data: Data) throws {
        guard let source = String(data: data, encoding: .utf8) else {
            throw MigrationError(code: .badFile, file: name, message: "is not valid UTF-8")
        }
        self.name = name
        self.source = source
        self.checksum = SHA256.hexDigest(data)
        self.functionNames = Self.definedFunctions(in: source)
    }

    /// The schema-qualified names after `create [or replace] function` in `source`, outside
    /// comments, lowercased.
    public static func definedFunctions(in source: String) -> Set<String> {
        var names: Set<String> = []
        for statement in SQLScript(source).statements {
            let pattern =
                /(?i)^create\s+(?:or\s+replace\s+)?function\s+([a-z_][a-z0-9_]*)\s*\.\s*([a-z_][a-z0-9_]*)\s*\(/
            if let match = statement.text.firstMatch(of: pattern) {
                names.insert("\(match.1).\(match.2)".lowercased())
            }
        }
        return names
    }

    /// Loads the function files of `directory/functions`, in the order its manifest lists them;
    /// none when the folder does not exist.
    ///
    /// - Throws: `MigrationError.badFile` for a listed file that is missing, a `.sql` file the
    ///   manifest does not list, a file listed twice, or a folder without a manifest.
    public static func load(from directory: URL) throws -> [FunctionFile] {
        let folder = directory.appendingPathComponent(Self.folder, isDirectory: true)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue
        else { return [] }
        let manifestName = "\(Self.folder)/\(Self.manifest)"
        guard let manifest = try? String(contentsOf: folder.appendingPathComponent(Self.manifest), encoding: .utf8)
        else {
            throw MigrationError(
                code: .badFile, file: manifestName, message: "is missing: it lists the function files in order")
        }
        var listed: [String] = []
        for (index, line) in manifest.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let entry = line.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty || entry.hasPrefix("#") { continue }
            guard entry.hasSuffix(".sql"), !entry.contains("/") else {
                throw MigrationError(
                    code: .badFile, file: manifestName, line: index + 1, message: "lists \(entry), not a .sql file name"
                )
            }
            guard !listed.contains(entry) else {
                throw MigrationError(
                    code: .badFile, file: manifestName, line: index + 1, message: "lists \(entry) twice")
            }
            listed.append(entry)
        }
        let present = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        for name in present.sorted() where name.hasSuffix(".sql") && !listed.contains(name) {
            throw MigrationError(
                code: .badFile, file: "\(Self.folder)/\(name)", message: "is not listed in \(manifestName)")
        }
        return try listed.map { entry in
            let name = "\(Self.folder)/\(entry)"
            guard let data = try? Data(contentsOf: folder.appendingPathComponent(entry)) else {
                throw MigrationError(
                    code: .badFile, file: name, message: "is listed in \(manifestName) but cannot be read")
            }
            return try FunctionFile(name: name, data: data)
        }
    }
}
