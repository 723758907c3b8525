import Foundation
import Synchronization

/// faster-whisper in a sidecar process on this machine, for an operator who supplies a model
/// directory (`ENCLAVE_WHISPER_MODEL`): no hub download is attempted (the sidecar runs with
/// `HF_HUB_OFFLINE=1` and `local_files_only`), and the audio goes over a pipe, never a socket.
///
/// The sidecar is started once and kept; each call writes one channel's 16 kHz samples (a
/// little-endian length, then the samples) and reads one line of JSON with the words and their
/// times. Its standard error goes nowhere: a library's log may carry what was said.
public final class WhisperSidecarTranscriber: Transcriber {
    public let engine: String
    private let sidecar: Mutex<Sidecar>

    /// The sidecar's program, run by `python -c`.
    static let program = """
        import json, os, struct, sys
        os.environ["HF_HUB_OFFLINE"] = "1"
        import numpy
        from faster_whisper import WhisperModel
        model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", local_files_only=True)
        print(json.dumps({"ready": True}), flush=True)
        while True:
            head = sys.stdin.buffer.read(4)
            if len(head) < 4:
                break
            data = sys.stdin.buffer.read(struct.unpack("<I", head)[0])
            audio = numpy.frombuffer(data, dtype=numpy.int16).astype(numpy.float32) / 32768.0
            try:
                segments, _ = model.transcribe(audio, language="en", beam_size=1, word_timestamps=True)
                words = [[w.word.strip(), w.start] for s in segments for w in (s.words or []) if w.word.strip()]
                print(json.dumps({"words": words}), flush=True)
            except Exception:
                print(json.dumps({"error": "the model failed on this audio"}), flush=True)
        """

    /// Starts the sidecar with the model in `model` (a CTranslate2 directory, as faster-whisper
    /// loads) under `python` (one with faster-whisper installed).
    ///
    /// - Throws: `SpeechError.engineUnavailable` when the directory has no model or the sidecar
    ///   does not come up.
    public init(model: String, python: String = "python3") throws {
        guard FileManager.default.fileExists(atPath: model + "/model.bin") else {
            throw SpeechError(.engineUnavailable, "no whisper model in \(model) (model.bin is missing)")
        }
        engine = "faster-whisper/" + URL(fileURLWithPath: model).lastPathComponent
        sidecar = Mutex(try Sidecar(model: model, python: python))
    }

    public func words(in samples: [Int16]) async throws -> [HeardWord] {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { [self] in
                continuation.resume(with: Result { try sidecar.withLock { try $0.words(in: samples) } })
            }
            thread.name = "enclave.speech.whisper"
            thread.start()
        }
    }

    /// The child process and its pipes; used only inside the transcriber's mutex.
    final class Sidecar: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        var buffered = Data()

        init(model: String, python: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python, "-c", WhisperSidecarTranscriber.program, model]
            var environment = ProcessInfo.processInfo.environment
            environment["HF_HUB_OFFLINE"] = "1"
            environment["TRANSFORMERS_OFFLINE"] = "1"
            process.environment = environment
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                throw SpeechError(.engineUnavailable, "the whisper sidecar could not start under \(python)")
            }
            guard let ready = readLine(), ready.contains("\"ready\"") else {
                process.terminate()
                throw SpeechError(
                    .engineUnavailable, "the whisper sidecar did not start (is faster-whisper installed for \(python)?)"
                )
            }
        }

        deinit {
            try? input.fileHandleForWriting.close()
            if process.isRunning { process.terminate() }
        }

        func words(in samples: [Int16]) throws -> [HeardWord] {
            guard process.isRunning else { throw SpeechError(.engineUnavailable, "the whisper sidecar has stopped") }
            var frame = withUnsafeBytes(of: UInt32(samples.count * 2).littleEndian) { Data($0) }
            samples.withUnsafeBufferPointer { frame.append(Data(buffer: $0)) }
            do {
                try input.fileHandleForWriting.write(contentsOf: frame)
            } catch {
                throw SpeechError(.engineUnavailable, "the whisper sidecar has stopped")
            }
            guard let line = readLine(),
                let reply = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { throw SpeechError(.engineUnavailable, "the whisper sidecar has stopped") }
            guard let words = reply["words"] as? [[Any]] else {
                throw SpeechError(.engineFailed, "whisper failed on the audio")
            }
            return words.compactMap { pair in
                guard pair.count == 2, let text = pair[0] as? String, let start = pair[1] as? Double else { return nil }
                return HeardWord(text, at: start)
            }
        }

        /// One line of the sidecar's output; nil once it has ended.
        private func readLine() -> String? {
            while true {
                if let newline = buffered.firstIndex(of: 0x0A) {
                    let line = buffered[buffered.startIndex..<newline]
                    buffered = Data(buffered[buffered.index(after: newline)...])
                    return String(decoding: line, as: UTF8.self)
                }
                let more = output.fileHandleForReading.availableData
                if more.isEmpty { return nil }
                buffered.append(more)
            }
        }
    }
}
