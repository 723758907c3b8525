import CPocketSphinx
import Foundation
import Synchronization

/// Debian's pocketsphinx (0.8) with its US English model, in process.
///
/// The decoder is loaded once and used by one call at a time, on a thread of its own: decoding
/// is minutes of CPU that must not hold one of Swift's cooperative threads. A channel is decoded
/// in pieces of about a minute, cut at the quietest moment near each minute, so a long call
/// neither grows one search without bound nor loses words at a cut.
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
            var start = 0
            while start < samples.count {
                let end = Self.cut(samples, from: start)
                words += try decode(samples[start..<end], offset: start)
                start = end
            }
            return words
        }

        /// Where the piece starting at `from` ends.
        static func cut(_ samples: [Int16], from: Int) -> Int {
            guard samples.count - from > piece + window else { return samples.count }
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
