import EnclaveTestSupport
import Foundation
import Testing

@Suite("Recordings keep memory bounded")
struct RecordingMemoryTests {
    @Test("a 200 MB recording stores and streams back byte-identical with peak resident memory under 64 MiB")
    func twoHundredMegabytes() async throws {
        // Measured in a process of its own (enclave-bench), so that other tests running in
        // parallel cannot inflate, or hide, its peak resident memory.
        let bench = CLIProcess.executable.deletingLastPathComponent().appendingPathComponent("enclave-bench")
        let process = Process()
        process.executableURL = bench
        process.arguments = ["recording", "200"]
        let data = try await process.output(includingErrors: true)
        let text = String(decoding: data, as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(text.contains("recording 200 MB"))
        #expect(text.contains("byte-identical"))
        let peak = text.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("peak_rss_mib=") }.flatMap {
            Double($0.dropFirst(13))
        }
        let measured = try #require(peak, "\(text)")
        #expect(measured > 0)
        #expect(measured < 64, "peak resident memory \(measured) MiB")
    }
}
