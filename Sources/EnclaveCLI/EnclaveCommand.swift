import ArgumentParser
import Enclave
import Foundation

/// `enclave`: operate an Enclave installation.
@main
struct EnclaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enclave",
        abstract: "Operate Enclave, the HIPAA-grade data platform for medical call and form tracking.",
        subcommands: [
            Migrate.self, Keys.self, Practices.self, Agencies.self, Users.self, Agreements.self, Audit.self,
            Tenants.self, Serve.self, Webhooks.self, Recordings.self, Transcripts.self, Compliance.self,
            BreakGlassCommand.self,
            Holds.self,
            Demo.self,
        ]
    )
}

/// Prints `message` to standard output at once (a long-running command's log is a file).
func printNow(_ message: String) {
    print(message)
    fflush(nil)
}

/// Prints `message` to standard error, prefixed with the tool's name.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("enclave: \(message)\n".utf8))
}

/// Runs `body`, turning any error into a one-line message on standard error and exit status 1.
///
/// Errors are printed with `description`, which Enclave's error types keep free of passwords,
/// key material and PHI.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch  where isDatabaseUnreachable(error) {
        printError("cannot connect to the database: \(error)")
        throw ExitCode.failure
    } catch {
        printError("\(error)")
        throw ExitCode.failure
    }
}
