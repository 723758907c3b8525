import Foundation
import Testing

@testable import Speech

/// A sentence spoken by flite as telephone audio: 8 kHz µ-law WAV, the way a call is recorded.
/// flite and sox are waited for on a Dispatch thread: the suite's cooperative threads are few.
func spoken(_ text: String) async throws -> [UInt8] {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try speak(text) }) }
    }
}

private func speak(_ text: String) throws -> [UInt8] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("speech-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let voice = directory.appendingPathComponent("voice.wav").path
    let phone = directory.appendingPathComponent("phone.wav").path
    for (tool, arguments) in [
        ("flite", ["-t", text, "-o", voice]), ("sox", [voice, "-r", "8000", "-e", "u-law", phone]),
    ] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw SpeechError(.engineFailed, "\(tool) failed") }
    }
    return Array(try Data(contentsOf: URL(fileURLWithPath: phone)))
}

@Suite("pocketsphinx in process")
struct PocketSphinxTests {
    @Test("a sentence spoken over the telephone comes back as most of its words, with times in order")
    func sentence() async throws {
        let transcriber = try PocketSphinxTranscriber()
        let audio = try PCMAudio(wav: try await spoken("I would like to make an appointment for a cleaning next week."))
        let words = try await transcriber.words(in: audio.channel(0, at: 16_000))
        let heard = Set(words.map(\.text))
        let said = ["would", "like", "make", "appointment", "cleaning", "next", "week"]
        #expect(said.filter(heard.contains).count >= 5, "heard: \(words.map(\.text))")
        #expect(words.map(\.start) == words.map(\.start).sorted())
        #expect(!words.contains { $0.text.hasPrefix("<") || $0.text.hasPrefix("[") || $0.text.contains("(") })
    }

    @Test("two channels become turns, each opened by who spoke, in time order")
    func turns() {
        let caller = [HeardWord("hi", at: 0.5), HeardWord("there", at: 0.8), HeardWord("thanks", at: 5)]
        let practice = [HeardWord("hello", at: 2), HeardWord("how", at: 2.4)]
        #expect(
            PocketSphinxTranscriber.turns([caller, practice])
                == "Caller: hi there\nPractice: hello how\nCaller: thanks")
        #expect(PocketSphinxTranscriber.turns([caller]) == "hi there thanks")
    }

    @Test("a long channel is cut at its quietest moment near each minute")
    func cut() {
        let rate = 16_000
        var samples = [Int16](repeating: 1000, count: 150 * rate)
        // Silence 55.0 to 55.3 s.
        for i in (55 * rate)..<(55 * rate + rate * 3 / 10) { samples[i] = 0 }
        let end = PocketSphinxTranscriber.Decoder.cut(samples, from: 0, end: samples.count)
        #expect((55 * rate)...(55 * rate + rate * 3 / 10) ~= end)
        #expect(PocketSphinxTranscriber.Decoder.cut(samples, from: 0, end: 65 * rate) == 65 * rate)
    }

    @Test("speech is found between silences; pauses under half a second stay inside a stretch")
    func stretches() {
        let rate = 16_000
        func tone(_ seconds: Double) -> [Int16] { (0..<Int(seconds * Double(rate))).map { $0 % 16 < 8 ? 3000 : -3000 } }
        func silence(_ seconds: Double) -> [Int16] { [Int16](repeating: 0, count: Int(seconds * Double(rate))) }
        let samples = silence(1) + tone(1) + silence(0.3) + tone(0.5) + silence(2) + tone(1) + silence(1) + tone(0.02)
        let stretches = PocketSphinxTranscriber.Decoder.speech(in: samples)
        // 1.0-2.8 s (with its pause) and 4.8-5.8 s, each with 0.2 s either side; the click is not speech.
        #expect(stretches.map { Double($0.lowerBound) / Double(rate) } == [0.8, 4.6])
        #expect(stretches.map { Double($0.upperBound) / Double(rate) } == [3.0, 6.0])
    }

    @Test("a missing model is a clear error naming the package")
    func missingModel() {
        #expect(throws: SpeechError.self) { try PocketSphinxTranscriber(model: "/nonexistent") }
    }
}

@Suite("faster-whisper in a sidecar (only where ENCLAVE_WHISPER_MODEL names a model)")
struct WhisperSidecarTests {
    static let model = ProcessInfo.processInfo.environment["ENCLAVE_WHISPER_MODEL"] ?? ""

    @Test("a directory without a model is refused before any process starts")
    func noModel() {
        #expect(throws: SpeechError(.engineUnavailable, "no whisper model in /nonexistent (model.bin is missing)")) {
            try WhisperSidecarTranscriber(model: "/nonexistent")
        }
    }

    @Test("a sentence spoken over the telephone comes back as most of its words", .enabled(if: !model.isEmpty))
    func sentence() async throws {
        let transcriber = try WhisperSidecarTranscriber(
            model: Self.model, python: ProcessInfo.processInfo.environment["ENCLAVE_WHISPER_PYTHON"] ?? "python3")
        let audio = try PCMAudio(wav: try await spoken("I would like to make an appointment for a cleaning next week."))
        let words = try await transcriber.words(in: audio.channel(0, at: 16_000))
        let heard = Set(words.map { $0.text.lowercased().trimmingCharacters(in: .punctuationCharacters) })
        #expect(["appointment", "cleaning", "week"].filter(heard.contains).count >= 2, "heard: \(words.map(\.text))")
    }
}
