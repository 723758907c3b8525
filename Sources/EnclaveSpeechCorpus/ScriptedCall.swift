import Foundation

/// A scripted telephone call to a practice, with the PHI it carries known word by word: the
/// tests and `scripts/bench transcribe` speak it with flite or espeak-ng, turn it into telephone
/// audio with sox, and score transcription and redaction against it.
public struct ScriptedCall: Sendable {
    /// Who says a turn: the practice's receptionist or the caller.
    public enum Speaker: Sendable { case practice, caller }

    /// What kind of PHI a word is.
    public enum PHI: String, Sendable, CaseIterable {
        /// A person's name: the caller's, the receptionist's.
        case name
        /// A spoken digit of a phone or member number.
        case number
        /// A word of a spoken date of birth.
        case date
        /// A word of a spoken email address ("jane dot doe at gmail dot com").
        case email
        /// A word of a street address ("four twenty two maple avenue").
        case address
    }

    /// A word of the script and the PHI it is, if any, that redaction must remove.
    public struct Word: Sendable, Equatable {
        public let text: String
        public let phi: PHI?
    }

    public struct Turn: Sendable {
        public let speaker: Speaker
        public let words: [Word]
        public var text: String { words.map(\.text).joined(separator: " ") }
    }

    public let callerName: String
    public let receptionist: String
    /// The caller's number, ten digits.
    public let phoneNumber: String
    public let turns: [Turn]

    /// The call's first `count` turns: a shorter call, for tests that need only its start.
    public func prefix(_ count: Int) -> ScriptedCall {
        ScriptedCall(
            callerName: callerName, receptionist: receptionist, phoneNumber: phoneNumber,
            turns: Array(turns.prefix(count)))
    }

    /// The script as one text, as a perfect transcriber would write it.
    public var text: String { turns.map(\.text).joined(separator: " ") }
    public var words: [Word] { turns.flatMap(\.words) }

    /// `count` calls, the same for the same `count`: names, numbers, dates of birth, insurance
    /// and reasons drawn in turn from fixed lists.
    public static func corpus(count: Int) -> [ScriptedCall] {
        (0..<count).map { call($0) }
    }

    static let firstNames = [
        "Margaret", "Daniel", "Priya", "Robert", "Linda", "Thomas", "Angela", "Marcus", "Helen", "Victor", "Sandra",
        "George",
    ]
    static let lastNames = [
        "Olsen", "Fischer", "Raman", "Delgado", "Whitaker", "Brennan", "Kowalski", "Nguyen", "Harper", "Lindqvist",
        "Moreno",
    ]
    static let receptionists = ["Anna", "Rachel", "Kevin", "Sophie", "Martin"]
    static let practices = ["Riverside Family Dental", "Oak Street Dermatology", "Lakeview Pediatrics"]
    static let months = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
        "December",
    ]
    static let ordinals = [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
        "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
        "twentieth", "twenty first", "twenty second", "twenty third", "twenty fourth", "twenty fifth",
    ]
    static let insurers = ["Blue Cross", "Aetna", "Cigna", "United Healthcare", "Humana"]
    static let reasons = [
        "a cleaning", "a toothache that started last night", "a rash on my arm", "my son's ear infection",
        "a follow up after my surgery", "a new patient exam",
    ]
    static let digitWords = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    static let streets = ["maple avenue", "oak street", "river road", "cedar lane", "hill drive"]
    static let houseNumbers = ["four twenty two", "twelve", "eighteen fifty", "three oh seven", "ninety one"]
    static let mailHosts = ["gmail dot com", "yahoo dot com", "outlook dot com"]
    static let years = [
        "nineteen sixty four", "nineteen seventy one", "nineteen eighty two", "nineteen ninety", "two thousand five",
    ]

    static func call(_ n: Int) -> ScriptedCall {
        let first = firstNames[n % firstNames.count]
        let last = lastNames[(n * 7 + 3) % lastNames.count]
        let receptionist = receptionists[n % receptionists.count]
        var seed = UInt64(n + 1) &* 0x9E37_79B9_7F4A_7C15
        func digit() -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % 10)
        }
        let phone = "555" + (0..<7).map { _ in String(digit()) }.joined()
        let member = (0..<6).map { _ in digit() }
        func spoken(_ digits: some Sequence<Character>) -> [Word] {
            digits.map { Word(text: digitWords[Int(String($0)) ?? 0], phi: .number) }
        }
        func plain(_ text: String) -> [Word] { text.split(separator: " ").map { Word(text: String($0), phi: nil) } }
        func phi(_ text: String, _ kind: PHI = .name) -> [Word] {
            text.split(separator: " ").map { Word(text: String($0), phi: kind) }
        }
        let birth =
            phi(months[(n * 5) % 12], .date) + phi(ordinals[(n * 3) % ordinals.count], .date)
            + phi(years[n % years.count], .date)
        let practice = practices[n % practices.count]
        let phoneWords = Array(phone)
        let turns: [Turn] = [
            Turn(
                speaker: .practice,
                words: plain("thank you for calling \(practice.lowercased()) this is") + phi(receptionist)
                    + plain("speaking how can I help you today")),
            Turn(
                speaker: .caller,
                words: plain("hi my name is") + phi(first) + phi(last)
                    + plain("and I would like to make an appointment for \(reasons[n % reasons.count])")),
            Turn(speaker: .practice, words: plain("of course are you a new patient with us")),
            Turn(
                speaker: .caller,
                words: plain("yes I am a new patient my date of birth is") + birth),
            Turn(speaker: .practice, words: plain("thank you what insurance do you have")),
            Turn(
                speaker: .caller,
                words: plain("I have \(insurers[n % insurers.count].lowercased()) insurance and my member number is")
                    + spoken(member.map { Character(String($0)) })),
            Turn(speaker: .practice, words: plain("and what is the best phone number to reach you")),
            Turn(
                speaker: .caller,
                words: plain("it is") + spoken(phoneWords[0..<3]) + spoken(phoneWords[3..<6])
                    + spoken(phoneWords[6..<10])),
            Turn(speaker: .practice, words: plain("and an email address and your home address for our records")),
            Turn(
                speaker: .caller,
                words: plain("sure it is") + phi("\(first.lowercased()) dot \(last.lowercased()) at", .email)
                    + phi(mailHosts[n % mailHosts.count], .email) + plain("and I live at")
                    + phi(houseNumbers[n % houseNumbers.count] + " " + streets[(n * 3) % streets.count], .address)),
            Turn(
                speaker: .practice,
                words: plain("thank you") + phi(first)
                    + plain("we have an opening on tuesday at ten in the morning with the doctor")),
        ]
        return ScriptedCall(
            callerName: "\(first) \(last)", receptionist: receptionist, phoneNumber: phone, turns: turns)
    }
}

extension ScriptedCall {
    /// The call as telephone audio: each turn spoken (the receptionist and the caller in different
    /// voices), joined, at 8 kHz µ-law in a WAV file, one channel, or two with the caller on the
    /// first (each channel silent while the other side speaks), as a dual-channel recording is.
    ///
    /// `engine` is `flite` or `espeak-ng`. Throws naming the tool that failed.
    public func telephoneAudio(engine: String = "flite", dualChannel: Bool = false) throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("call-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var callerTrack: [String] = []
        var practiceTrack: [String] = []
        for (index, turn) in turns.enumerated() {
            let spoken = directory.appendingPathComponent("turn\(index).wav").path
            let phone = directory.appendingPathComponent("phone\(index).wav").path
            let silence = directory.appendingPathComponent("silence\(index).wav").path
            let caller = turn.speaker == .caller
            if engine == "espeak-ng" {
                try Self.run("espeak-ng", ["-v", caller ? "en-us" : "en-gb", "-s", "150", "-w", spoken, turn.text])
            } else {
                try Self.run("flite", ["-voice", caller ? "rms" : "slt", "-t", turn.text, "-o", spoken])
            }
            // Half a second between turns, at telephone rate.
            try Self.run(
                "sox", [spoken, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed", phone, "pad", "0", "0.5"])
            try Self.run("sox", [phone, silence, "vol", "0"])
            callerTrack.append(caller ? phone : silence)
            practiceTrack.append(caller ? silence : phone)
        }
        let output = directory.appendingPathComponent("call.wav").path
        if dualChannel {
            let left = directory.appendingPathComponent("caller.wav").path
            let right = directory.appendingPathComponent("practice.wav").path
            try Self.run("sox", callerTrack + [left])
            try Self.run("sox", practiceTrack + [right])
            try Self.run("sox", ["-M", left, right, "-e", "u-law", output])
        } else {
            let mixed = zip(callerTrack, practiceTrack).map { $0.0.contains("silence") ? $0.1 : $0.0 }
            try Self.run("sox", mixed + ["-e", "u-law", output])
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(
                .fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) failed (scripts/setup installs it)"])
        }
    }
}
