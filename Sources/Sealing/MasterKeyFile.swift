import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The default `MasterKeyProvider`: master keys in a file outside the database.
///
/// The file (`ENCLAVE_MASTER_KEY_FILE`) must be a regular file that neither group nor others
/// can read or write. Format:
///
///     enclave-master-keys 1
///     key 1 <32 bytes, base64>
///     key 2 <32 bytes, base64>
///
/// Several versions coexist; the database's registry says which one is active. Every change is
/// written to a new file (mode 0600), synced, and renamed over the old one.
public struct MasterKeyFile: MasterKeyProvider {
    /// Where the file is.
    public let path: String
    private let keys: [UInt32: SecretBytes]

    public var providerName: String { "file" }
    public var versions: [UInt32] { keys.keys.sorted() }

    private init(path: String, keys: [UInt32: SecretBytes]) {
        self.path = path
        self.keys = keys
    }

    /// Reads and checks the file at `path`.
    public static func load(path: String) throws -> MasterKeyFile {
        func refuse(_ reason: String) -> SealingError {
            SealingError(.masterKeyFile, "master key file \(path) \(reason)")
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw refuse(
                errno == ENOENT ? "does not exist (create one with `enclave keys init`)" : "cannot be examined")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw refuse("is not a regular file") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw refuse("is accessible by group or others (mode \(String(mode, radix: 8))): chmod 600 it")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw refuse("cannot be read") }
        guard let text = String(data: data, encoding: .utf8) else { throw refuse("is not text") }
        var keys: [UInt32: SecretBytes] = [:]
        var sawHeader = false
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ")
            if !sawHeader {
                guard fields == ["enclave-master-keys", "1"] else {
                    throw refuse("line \(index + 1): expected the header `enclave-master-keys 1`")
                }
                sawHeader = true
                continue
            }
            guard fields.count == 3, fields[0] == "key", let version = UInt32(fields[1]), version > 0 else {
                throw refuse("line \(index + 1): expected `key <version> <base64 key>`")
            }
            guard var bytes = Data(base64Encoded: String(fields[2])), bytes.count == 32 else {
                throw refuse("line \(index + 1): key \(version) is not 32 bytes of base64")
            }
            guard keys[version] == nil else { throw refuse("line \(index + 1): key \(version) appears twice") }
            keys[version] = SecretBytes(copying: bytes)
            bytes.resetBytes(in: 0..<bytes.count)
        }
        guard sawHeader, !keys.isEmpty else { throw refuse("holds no keys") }
        return MasterKeyFile(path: path, keys: keys)
    }

    /// Writes a new file at `path` with master key version 1; refuses to replace an existing file.
    public static func create(path: String) throws -> MasterKeyFile {
        let file = MasterKeyFile(path: path, keys: [1: try SecretBytes(randomCount: 32)])
        try file.write(replacing: false)
        return file
    }

    /// Adds a new random key, one version above the highest, and writes the file.
    public func addingVersion() throws -> (file: MasterKeyFile, version: UInt32) {
        let version = (versions.last ?? 0) + 1
        var keys = self.keys
        keys[version] = try SecretBytes(randomCount: 32)
        let file = MasterKeyFile(path: path, keys: keys)
        try file.write(replacing: true)
        return (file, version)
    }

    /// Removes `version` for good and writes the file.
    public func removingVersion(_ version: UInt32) throws -> MasterKeyFile {
        var keys = self.keys
        guard keys.removeValue(forKey: version) != nil else {
            throw SealingError(.keyUnavailable, "master key file \(path) has no key version \(version)")
        }
        guard !keys.isEmpty else {
            throw SealingError(.masterKeyFile, "refusing to remove the last master key from \(path)")
        }
        let file = MasterKeyFile(path: path, keys: keys)
        try file.write(replacing: true)
        return file
    }

    /// HMAC-SHA256 of `message` under key `version`, for files that use a key file to
    /// authenticate data kept elsewhere (audit checkpoints).
    public func authenticationCode(version: UInt32, message: some Collection<UInt8>) throws -> [UInt8] {
        try HMAC.authenticationCode(.sha256, key: try key(version), message: message)
    }

    public func keyIdentifier(version: UInt32) throws -> String {
        let mac = try HMAC.authenticationCode(.sha256, key: try key(version), message: Array("enclave.kek.id.v1".utf8))
        return mac.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    public func wrap(_ key: SecretBytes, version: UInt32, context: KeyWrapContext) async throws -> [UInt8] {
        try WrappedKey.wrap(key, masterKey: try self.key(version), version: version, context: context)
    }

    public func unwrap(_ wrapped: [UInt8], context: KeyWrapContext) async throws -> SecretBytes {
        let version = try WrappedKey.masterKeyVersion(of: wrapped)
        return try WrappedKey.unwrap(wrapped, masterKey: try key(version), context: context)
    }

    private func key(_ version: UInt32) throws -> SecretBytes {
        guard let key = keys[version] else {
            throw SealingError(.keyUnavailable, "master key version \(version) is not in \(path)")
        }
        return key
    }

    /// Writes the keys to a temporary file (0600), syncs it, and moves it into place.
    private func write(replacing: Bool) throws {
        var text = "# Enclave master keys. Keep this file outside the database and its backups, mode 0600.\n"
        text += "enclave-master-keys 1\n"
        for version in versions {
            guard let key = keys[version] else { continue }
            text += "key \(version) " + key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
        }
        var bytes = Array(text.utf8)
        text = ""
        defer { bytes.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SealingError(.masterKeyFile, "cannot create a file next to \(path)")
        }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw SealingError(.masterKeyFile, "cannot write \(path)")
        }
        if replacing {
            guard rename(temporary, path) == 0 else {
                unlink(temporary)
                throw SealingError(.masterKeyFile, "cannot replace \(path)")
            }
        } else {
            // link() fails if the target exists, so an existing key file is never overwritten.
            let linked = link(temporary, path) == 0
            let exists = errno == EEXIST
            unlink(temporary)
            guard linked else {
                throw SealingError(
                    .masterKeyFile, exists ? "\(path) already exists; not overwriting it" : "cannot create \(path)")
            }
        }
        let directory = (path as NSString).deletingLastPathComponent
        let directoryDescriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY)
        if directoryDescriptor >= 0 {
            fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}
