import ArgumentParser
import Enclave
import EnclaveWorkers
import Foundation
import Logging
import ServiceLifecycle
import Speech

extension EnclaveCommand {
    /// `enclave transcripts`: call transcription on this machine.
    struct Transcripts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Transcripts of calls, made on this machine.", subcommands: [Run.self])

        /// `enclave transcripts run`: the transcription worker.
        struct Run: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Transcribe calls' recordings, redact the transcripts and tag them by keyword.",
                discussion: """
                    Runs as the maintenance role, with the master key. Each call with a recording (or a \
                    provider's transcript) and no transcript of ours is decrypted in memory, transcribed \
                    here (pocketsphinx in this process; faster-whisper in a local sidecar when \
                    $ENCLAVE_WHISPER_MODEL names a model directory), and stored sealed with its redacted \
                    form, tags and search tokens (transcript.created). No network connection is opened \
                    but the database's. Without --once it runs until SIGINT or SIGTERM.
                    """)

            @OptionGroup var maintenance: MaintenanceOptions
            @Flag(help: "Make one pass and exit.") var once = false
            @Option(help: "Seconds between passes.") var interval: Double = 10
            @Option(help: "Calls per pass.") var batch: Int = 10
            @Option(help: "The pocketsphinx model directory.")
            var model: String = PocketSphinxTranscriber.defaultModel
            @Option(
                help:
                    "A faster-whisper model directory, instead of pocketsphinx (default: $ENCLAVE_WHISPER_MODEL).")
            var whisperModel: String?
            @Option(help: "The Python with faster-whisper for the sidecar (default: $ENCLAVE_WHISPER_PYTHON, python3).")
            var whisperPython: String?

            /// Whisper when a model is given, else pocketsphinx.
            func transcriber() throws -> any Transcriber {
                let environment = ProcessInfo.processInfo.environment
                if let whisper = whisperModel ?? environment["ENCLAVE_WHISPER_MODEL"], !whisper.isEmpty {
                    return try WhisperSidecarTranscriber(
                        model: whisper, python: whisperPython ?? environment["ENCLAVE_WHISPER_PYTHON"] ?? "python3")
                }
                return try PocketSphinxTranscriber(model: model)
            }

            func run() async throws {
                try await reportingErrors {
                    guard (1...1000).contains(batch) else { throw ValidationError("--batch must be 1 to 1000") }
                    let keys = try await maintenance.keyManagement()
                    let worker = TranscriptionWorker(
                        maintenance: keys.maintenance, keys: keys.store,
                        transcriber: try transcriber())
                    if once {
                        print(TranscriptionService.describe(try await worker.transcribeDue(limit: batch)))
                    } else {
                        try await ServiceGroup(
                            services: [
                                TranscriptionService.make(
                                    worker: worker, batch: batch, interval: .milliseconds(Int(interval * 1000)),
                                    report: { printNow($0) })
                            ],
                            gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "enclave.transcripts")
                        ).run()
                    }
                    await keys.maintenance.pool.close()
                }
            }
        }
    }
}
