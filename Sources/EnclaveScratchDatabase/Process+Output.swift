import Foundation

extension Process {
    /// Starts the process and returns what it wrote to standard output (and standard error,
    /// when `errors` is true) once it has exited. The wait runs on a Dispatch thread: blocking a
    /// cooperative thread could starve the in-process server the process is talking to.
    public func output(includingErrors errors: Bool = false) async throws -> Data {
        let pipe = Pipe()
        standardOutput = pipe
        if errors { standardError = pipe }
        try run()
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                self.waitUntilExit()
                continuation.resume(returning: data)
            }
        }
    }
}
