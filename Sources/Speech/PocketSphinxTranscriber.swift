import CPocketSphinx
import Foundation
import Synchronization

/// Debian's pocketsphinx (0.8) with its US English model, in process.
///
/// The decoder is loaded once and used by one call at a time, on a thread of its own: decoding
/// is minutes of CPU that must not hold one of Swift's cooperative threads. A channel is decoded
/// stretch of speech by stretch (silence is skipped), a stretch longer than a minute in pieces
/// cut at the quietest moment near each minute, so a long call neither grows one search without
/// bound nor loses words at a cut.
public final class PocketSphinxTranscriber: Transcriber {
    public let engine = "pocketsphinx-0.8/en-us"

    /// Where Debian's pocketsphinx-en-us installs the model.
    public static let defaultModel = "/usr/share/pocketsphinx/model/en-us"

    private let decoder: Mutex<Decoder>

    /// Loads the model in `model` (the acoustic model in `en-us/`, `en-us.lm.bin`,
    /// `cmudict-en-us.dict`).
    ///
    /// - Throws: `SpeechError.engineUnavailable` when the model cannot be loaded.
    public init(model: String = PocketSphinxTranscriber.defaultModel) throws {
        let files = ["\(model)/en-us", "\(model)/en-us.lm.bin", "\(model)/cmudict-en-us.dict"]
        for file in files where !FileManager.default.fileExists(atPath: file) {
            throw SpeechError(
                .engineUnavailable, "the pocketsphinx model is missing \(file) (apt-get install pocketsphinx-en-us)")
        }
        guard let handle = enclave_ps_open(files[0], files[1], files[2], "16000") else {
            throw SpeechError(.engineUnavailable, "pocketsphinx could not load the model in \(model)")
        }
        decoder = Mutex(Decoder(handle))
    }

    public func words(in samples: [Int16]) async throws -> [HeardWord] {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { [self] in
                continuation.resume(with: Result { try decoder.withLock { try $0.words(in: samples) } })
            }
            thread.name = "enclave.speech"
            thread.start()
        }
    }

    /// The C decoder, freed with its owner.
    final class Decoder: @unchecked Sendable {
        // Used only inside the transcriber's mutex.
        let handle: OpaquePointer
        init(_ handle: OpaquePointer) { self.handle = handle }
        deinit { ps_free(handle) }

        /// Samples per second of the model's input.
        static let rate = 16_000
        /// Pieces are cut near every minute, at the quietest tenth of a second in the ten
        /// seconds before it.
        static let piece = 60 * rate
        static let window = 10 * rate

        func words(in samples: [Int16]) throws -> [HeardWord] {
            var words: [HeardWord] = []
            for segment in Self.speech(in: samples) {
                var start = segment.lowerBound
                while start < segment.upperBound {
                    let end = Self.cut(samples, from: start, end: segment.upperBound)
                    words += try decode(samples[start..<end], offset: start)
                    start = end
                }
            }
            return words
        }

        /// The stretches of `samples` with speech: runs of 10 ms frames louder than the quiet of
        /// the channel, joined across pauses under half a second, with a fifth of a second either
        /// side. Each is decoded as an utterance of its own, so a word's time is its stretch's
        /// start plus its frame (the decoder's frames skip silence), and the turns of a
        /// dual-channel call come out in order; silence is not decoded at all.
        static func speech(in samples: [Int16]) -> [Range<Int>] {
            let frame = rate / 100
            let count = samples.count / frame
            guard count > 0 else { return [] }
            var energies = [Int](repeating: 0, count: count)
            for index in 0..<count {
                var sum = 0
                for sample in samples[index * frame..<(index + 1) * frame] { sum += abs(Int(sample)) }
                energies[index] = sum / frame
            }
            // Loud is a twentieth of the loudest frames' level (the 95th percentile), and never
            // below a floor that line noise stays under.
            let loud = max(100, energies.sorted()[count * 95 / 100] / 20)
            var stretches: [Range<Int>] = []
            let pause = 50
            let pad = 20
            var index = 0
            while index < count {
                guard energies[index] >= loud else {
                    index += 1
                    continue
                }
                var end = index
                var quiet = 0
                var next = index + 1
                while next < count, quiet < pause {
                    if energies[next] >= loud {
                        end = next
                        quiet = 0
                    } else {
                        quiet += 1
                    }
                    next += 1
                }
                // A click is not speech: at least a tenth of a second.
                if end - index >= 10 {
                    let range = max(0, index - pad) * frame..<min(count, end + 1 + pad) * frame
                    if let last = stretches.last, last.upperBound >= range.lowerBound {
                        stretches[stretches.count - 1] = last.lowerBound..<range.upperBound
                    } else {
                        stretches.append(range)
                    }
                }
                index = end + 1
            }
            return stretches
        }

        /// Where the piece starting at `from` ends, at the latest `end`.
        static func cut(_ samples: [Int16], from: Int, end: Int) -> Int {
            guard end - from > piece + window else { return end }
            let tenth = rate / 10
            var best = from + piece
            var quietest = Int.max
            var at = from + piece - window
            while at + tenth <= from + piece {
                var energy = 0
                for s in samples[at..<at + tenth] { energy += abs(Int(s)) }
                if energy < quietest {
                    quietest = energy
                    best = at + tenth / 2
                }
                at += tenth
            }
            return best
        }

        private func decode(_ piece: ArraySlice<Int16>, offset: Int) throws -> [HeardWord] {
            guard ps_start_utt(handle) >= 0 else { throw SpeechError(.engineFailed, "pocketsphinx did not start") }
            let processed = piece.withUnsafeBufferPointer {
                ps_process_raw(handle, $0.baseAddress, $0.count, 0, 1)
            }
            guard processed >= 0, ps_end_utt(handle) >= 0 else {
                throw SpeechError(.engineFailed, "pocketsphinx failed on the audio")
            }
            var words: [HeardWord] = []
            var segment = ps_seg_iter(handle)
            while let current = segment {
                if let raw = ps_seg_word(current), let word = Self.spoken(String(cString: raw)) {
                    var first: Int32 = 0
                    var last: Int32 = 0
                    ps_seg_frames(current, &first, &last)
                    // 100 frames a second.
                    words.append(HeardWord(word, at: Double(offset) / Double(Self.rate) + Double(first) / 100))
                }
                segment = ps_seg_next(current)
            }
            return words
        }

        /// A word as said, without pronunciation variants ("read(2)"); nil for silence and
        /// fillers ("<sil>", "[NOISE]", "<s>").
        static func spoken(_ word: String) -> String? {
            guard let first = word.first, first != "<", first != "[" else { return nil }
            if let open = word.firstIndex(of: "(") { return String(word[..<open]) }
            return word
        }
    }
}
