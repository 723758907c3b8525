import Enclave
import EnclaveSpeechCorpus
import Foundation
import Speech

/// Transcription and redaction on a synthetic telephone corpus (issue 30): `calls` scripted calls
/// (a receptionist and a caller, with names, a date of birth, an insurance member number and a
/// phone number), spoken by flite and espeak-ng in turn, a third of them dual-channel, as 8 kHz
/// µ-law WAV. Reports, per engine: the word error rate against the script, the real-time factor on
/// one core (seconds of audio per second of decoding), and what redaction removes: recall per kind
/// of PHI and precision, on the script itself (a perfect transcript, where each PHI word is known),
/// and what PHI survives in the redacted recognizer output. The reference is the audio's own
/// length; the ratio is real time.
func transcribeBenchmark(calls: Int) async throws {
    let corpus = ScriptedCall.corpus(count: calls)
    print("transcribe: \(calls) scripted calls, flite and espeak-ng voices, 8 kHz µ-law, every third dual-channel")
    var engines: [any Transcriber] = [try PocketSphinxTranscriber()]
    // faster-whisper too, when the operator has a model (none can be downloaded here).
    let environment = ProcessInfo.processInfo.environment
    if let model = environment["ENCLAVE_WHISPER_MODEL"], !model.isEmpty {
        engines.append(
            try WhisperSidecarTranscriber(model: model, python: environment["ENCLAVE_WHISPER_PYTHON"] ?? "python3"))
    } else {
        print("transcribe: faster-whisper not measured (set ENCLAVE_WHISPER_MODEL to a model directory)")
    }
    var audio: [(ScriptedCall, PCMAudio, String)] = []
    for (index, script) in corpus.enumerated() {
        let voice = index % 2 == 0 ? "flite" : "espeak-ng"
        audio.append(
            (script, try PCMAudio(wav: try script.telephoneAudio(engine: voice, dualChannel: index % 3 == 0)), voice))
    }
    let seconds = audio.reduce(0) { $0 + $1.1.duration }
    print(String(format: "transcribe: %.0f s of audio, %.1f s a call", seconds, seconds / Double(calls)))

    // Redaction on the scripts: each word's PHI kind is known.
    var found: [ScriptedCall.PHI: (hit: Int, all: Int)] = [:]
    var labelled = 0
    var labelledPHI = 0
    for script in corpus {
        let words = script.words
        let labels = TranscriptRedactor(knownNames: [script.callerName, script.receptionist]).labels(
            of: words.map(\.text))
        for (word, label) in zip(words, labels) {
            if let kind = word.phi {
                found[kind, default: (0, 0)].all += 1
                if label != nil { found[kind, default: (0, 0)].hit += 1 }
            }
            if label != nil {
                labelled += 1
                if word.phi != nil { labelledPHI += 1 }
            }
        }
    }
    for kind in ScriptedCall.PHI.allCases {
        let (hit, all) = found[kind] ?? (0, 0)
        print(
            String(
                format: "transcribe: redaction recall, %@ (spoken) on the scripts: %.1f%% (%d of %d words)",
                kind.rawValue, all == 0 ? 100 : 100 * Double(hit) / Double(all), hit, all))
    }
    print(
        String(
            format: "transcribe: redaction precision on the scripts: %.1f%% (%d of %d words removed were PHI)",
            labelled == 0 ? 100 : 100 * Double(labelledPHI) / Double(labelled), labelledPHI, labelled))

    for engine in engines {
        var errors = 0
        var reference = 0
        var byVoice: [String: (errors: Int, words: Int)] = [:]
        var decoding: [Double] = []
        var nameLeaks = 0
        var numberRuns = 0
        for (script, pcm, voice) in audio {
            let started = Date()
            let transcript = try await engine.transcript(of: pcm)
            let elapsed = Date().timeIntervalSince(started)
            decoding.append(pcm.duration / elapsed)
            let said = KeywordSet.normalise(script.text).split(separator: " ").map(String.init)
            // Without the turns' speaker labels.
            let spoken = transcript.split(separator: "\n").map { line in
                line.hasPrefix("Caller: ")
                    ? line.dropFirst(8) : line.hasPrefix("Practice: ") ? line.dropFirst(10) : line
            }.joined(separator: " ")
            let heard = KeywordSet.normalise(spoken).split(separator: " ").map(String.init)
            let distance = wordDistance(said, heard)
            errors += distance
            let kind = voice + (pcm.channels.count > 1 ? ", dual-channel" : ", one channel")
            byVoice[kind, default: (0, 0)].errors += distance
            byVoice[kind, default: (0, 0)].words += said.count
            if ProcessInfo.processInfo.environment["ENCLAVE_BENCH_VERBOSE"] != nil {
                print("said: \(said.joined(separator: " "))\nheard: \(heard.joined(separator: " "))\n")
            }
            reference += said.count
            let redacted = TranscriptRedactor(knownNames: [script.callerName, script.receptionist]).redact(transcript)
            let redactedWords = Set(KeywordSet.normalise(redacted).split(separator: " ").map(String.init))
            nameLeaks +=
                script.callerName.lowercased().split(separator: " ").filter { redactedWords.contains(String($0)) }
                .count
            if hasDigitRun(redacted) { numberRuns += 1 }
        }
        let sorted = decoding.sorted()
        print(
            String(
                format: "transcribe: %@: word error rate %.1f%% (%d errors in %d words)", engine.engine,
                100 * Double(errors) / Double(reference), errors, reference))
        for (kind, figures) in byVoice.sorted(by: { $0.key < $1.key }) {
            print(
                String(
                    format: "transcribe: %@:   %@: %.1f%%", engine.engine, kind,
                    100 * Double(figures.errors) / Double(figures.words)))
        }
        print(
            String(
                format: "transcribe: %@: %.2fx real time on one core (median of %d calls; min %.2fx, max %.2fx)",
                engine.engine, sorted[sorted.count / 2], sorted.count, sorted.first ?? 0, sorted.last ?? 0))
        print(
            "transcribe: \(engine.engine): in the redacted recognizer output, \(nameLeaks) caller-name words "
                + "and \(numberRuns) runs of four or more number words survived")
    }
}

/// Word-level Levenshtein distance: substitutions, insertions and deletions.
func wordDistance(_ reference: [String], _ hypothesis: [String]) -> Int {
    var previous = Array(0...hypothesis.count)
    for (i, word) in reference.enumerated() {
        var current = [i + 1] + Array(repeating: 0, count: hypothesis.count)
        for (j, heard) in hypothesis.enumerated() {
            current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (word == heard ? 0 : 1))
        }
        previous = current
    }
    return previous[hypothesis.count]
}

/// Four or more number words (or digits) in a row.
func hasDigitRun(_ text: String) -> Bool {
    let digits: Set<String> = ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    var run = 0
    for word in KeywordSet.normalise(text).split(separator: " ") {
        run = digits.contains(String(word)) || word.allSatisfy(\.isNumber) ? run + 1 : 0
        if run >= 4 { return true }
    }
    return false
}
