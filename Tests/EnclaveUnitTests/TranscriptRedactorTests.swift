import Testing

@testable import Enclave

@Suite("Transcript redaction (no database)")
struct TranscriptRedactorTests {
    let redactor = TranscriptRedactor(knownNames: ["John Miller", "Karen O'Neil"])

    @Test(
        "spoken and typed phone numbers, digit runs, dates, emails, addresses and known names become labels",
        arguments: [
            ("five five five one two three four five six seven", "[PHONE]"),
            ("my number is (555) 123-4567.", "my number is [PHONE]."),
            ("call me on double five five oh one two three", "call me on [PHONE]"),
            ("my member id is one two three four", "my member id is [NUMBER]"),
            ("it is march fourth nineteen eighty two", "it is [DATE]"),
            ("born on the fourth of march 1982", "born on the [DATE]"),
            ("born 3/4/1982, right", "born [DATE], right"),
            ("email john.miller@example.com please", "email [EMAIL] please"),
            ("it's john dot miller at gmail dot com", "it's [EMAIL]"),
            ("I live at 1234 Oak Street apartment 4b", "I live at [ADDRESS]"),
            ("twelve thirty four north elm avenue", "[ADDRESS]"),
            ("hi my name is john miller", "hi my name is [NAME]"),
            ("this is Karen, how can I help", "this is [NAME], how can I help"),
        ])
    func redacts(_ input: String, _ expected: String) {
        #expect(redactor.redact(input) == expected)
    }

    @Test(
        "what is not PHI stays: a time, a short number, a month without a day, may as a verb",
        arguments: [
            "we have an opening next tuesday at ten in the morning",
            "i need two fillings",
            "do you have dental insurance",
            "may i have your date of birth",
            "we are closed in march",
        ])
    func keeps(_ input: String) {
        #expect(redactor.redact(input) == input)
    }

    /// Synthetic calls with known PHI in every form the issue lists: none of it survives.
    @Test("recall on a synthetic corpus: no number, date, email or known name survives")
    func recall() {
        let firsts = ["john", "maria", "wei", "aisha", "carlos", "olga"]
        let lasts = ["miller", "garcia", "chen", "okafor", "novak", "haddad"]
        let digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        let months = ["january", "march", "july", "october", "december"]
        let days = ["first", "fourth", "twelfth", "twenty first", "thirtieth"]
        let years = ["nineteen eighty two", "two thousand five", "nineteen sixty"]
        var survivors: [String] = []
        for index in 0..<60 {
            let first = firsts[index % firsts.count]
            let last = lasts[(index * 5) % lasts.count]
            let phone = (0..<10).map { digits[(index * 7 + $0 * 3) % 10] }.joined(separator: " ")
            let typed = "555-\(100 + index)-\(1000 + index * 37)"
            let date = "\(months[index % months.count]) \(days[index % days.count]) \(years[index % years.count])"
            let numeric = "\(1 + index % 12)/\(1 + index % 28)/19\(50 + index % 50)"
            let email = "\(first).\(last)\(index)@example.com"
            let spoken = "\(first) dot \(last) at gmail dot com"
            let call = """
                hello this is \(first) \(last) my number is \(phone) or \(typed) my date of birth is \(date) \
                or \(numeric) my email is \(email) also \(spoken) thanks
                """
            let redacted = TranscriptRedactor(knownNames: ["\(first) \(last)"]).redact(call)
            let phi =
                [first, last, typed, numeric, email, "gmail"] + phone.split(separator: " ").map(String.init)
                + date.split(separator: " ").filter { !["thousand"].contains($0) }.map(String.init)
            let left = redacted.split(separator: " ").map(String.init)
            survivors += phi.filter { left.contains($0) }.map { "\(index): \($0) in \(redacted)" }
        }
        #expect(survivors.isEmpty, "\(survivors.prefix(5))")
    }
}
