import Enclave
import EnclaveTestSupport
import Foundation

/// The output of one run of the `enclave` executable.
struct CLIResult: Sendable {
    let status: Int32
    let standardOutput: String
    let standardError: String
    var output: String { standardOutput + standardError }
}

/// Runs the built `enclave` executable as a separate process.
enum CLIProcess {
    /// `$ENCLAVE_BIN`, else `.build/debug/enclave` of this checkout.
    static var executable: URL { TestEnvironment.enclaveExecutable }

    /// Runs `enclave arguments…` with `environment` laid over this process's environment
    /// (a `nil` value removes the variable).
    static func run(_ arguments: [String], environment: [String: String?] = [:], input: String? = nil) async throws
        -> CLIResult
    {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = TestEnvironment.packageRoot
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        let standardInput = Pipe()
        process.standardInput = standardInput
        try process.run()
        standardInput.fileHandleForWriting.write(Data((input ?? "").utf8))
        try standardInput.fileHandleForWriting.close()
        // Read both pipes while the process runs, so neither can fill up and block it, on
        // Dispatch threads: blocking calls must not hold Swift's cooperative threads.
        let (outData, errData) = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let group = DispatchGroup()
                let errData = Locked(Data())
                group.enter()
                DispatchQueue.global().async {
                    let data = error.fileHandleForReading.readDataToEndOfFile()
                    errData.withLock { $0 = data }
                    group.leave()
                }
                let outData = output.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: (outData, errData.value))
            }
        }
        return CLIResult(
            status: process.terminationStatus,
            standardOutput: String(decoding: outData, as: UTF8.self),
            standardError: String(decoding: errData, as: UTF8.self)
        )
    }
}
