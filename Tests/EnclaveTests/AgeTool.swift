import EnclaveTestSupport
import Foundation

/// The real `age` tool (Debian's package), to prove an export opens without Enclave.
enum AgeTool {
    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `arguments[0]` with the rest; returns its exit status.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        if input != nil { process.standardInput = stdin }
        process.standardError = FileHandle.nullDevice
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// A new identity file in `directory`, and its public key (age1…).
    static func keygen(in directory: URL) throws -> (identity: String, recipient: String) {
        let identity = directory.appendingPathComponent("age-identity.txt").path
        guard try run(["age-keygen", "-o", identity]) == 0,
            let text = FileManager.default.contents(atPath: identity).map({ String(decoding: $0, as: UTF8.self) }),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("# public key: ") })
        else { throw Failed(description: "age-keygen failed (is Debian's age installed? scripts/setup installs it)") }
        return (identity, String(line.dropFirst("# public key: ".count)))
    }

    /// `age -d -i identity` of `path` into `output`; true when age opened it.
    static func decrypt(_ path: String, identity: String, to output: String) throws -> Bool {
        try run(["age", "-d", "-i", identity, "-o", output, path]) == 0
    }

    /// `age -d` of a passphrase-encrypted `path`, typing the passphrase at age's terminal prompt
    /// (age reads it from a TTY only), through Python's pty.
    static func decrypt(_ path: String, passphrase: String, to output: String) throws -> Bool {
        let script = """
            import os, pty, sys
            pid, fd = pty.fork()
            if pid == 0:
                os.execvp("age", ["age", "-d", "-o", sys.argv[1], sys.argv[2]])
            seen = b""
            while b"passphrase" not in seen.lower():
                chunk = os.read(fd, 1024)
                if not chunk:
                    break
                seen += chunk
            os.write(fd, sys.stdin.readline().encode())
            try:
                while os.read(fd, 1024):
                    pass
            except OSError:
                pass
            _, status = os.waitpid(pid, 0)
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        return try run([TestEnvironment.python.path, "-c", script, output, path], input: passphrase + "\n") == 0
    }

    /// Unpacks a tar into a new directory.
    static func untar(_ archive: String, into directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard try run(["tar", "-x", "-f", archive, "-C", directory.path]) == 0 else {
            throw Failed(description: "tar could not unpack the export")
        }
    }
}
