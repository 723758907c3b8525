/// A keyed, deterministic index of a sensitive value: HMAC-SHA256 of its normalized form under
/// a per-tenant index key, kept apart from the data keys. Equal values give equal indexes within
/// one tenant, so "all calls from this caller" needs no decryption; across tenants they differ.
public struct BlindIndex: Sendable {
    private let key: SecretBytes

    /// An index under `key` (32 bytes, the tenant's index key).
    public init(key: SecretBytes) throws {
        guard key.count == 32 else { throw SealingError(.malformed, "an index key must be 32 bytes") }
        self.key = key
    }

    /// The index of a phone number, normalized to E.164 first.
    public func index(phoneNumber: String, defaultCountryCode: String = "1") throws -> [UInt8] {
        try index(normalized: PhoneNumber.normalize(phoneNumber, defaultCountryCode: defaultCountryCode))
    }

    /// The index of an email address, normalized first (`EmailAddress.normalize`). A distinct
    /// prefix keeps it from ever equalling a phone number's index.
    public func index(emailAddress: String) throws -> [UInt8] {
        try index(normalized: "mailto:" + EmailAddress.normalize(emailAddress))
    }

    /// The index of an already-normalized value.
    public func index(normalized value: String) throws -> [UInt8] {
        try HMAC.authenticationCode(.sha256, key: key, message: Array("enclave.index.v1:".utf8) + Array(value.utf8))
    }
}

/// Phone numbers in E.164 form (`+` and 8 to 15 digits).
public enum PhoneNumber {
    /// Normalizes `input` to E.164. Accepts `+CC…`, `00CC…`, and national numbers, which get
    /// `defaultCountryCode` (for `1`, a 10-digit number or 11 digits starting with 1).
    /// Spaces, dots, dashes and parentheses are ignored; anything else is refused.
    public static func normalize(_ input: String, defaultCountryCode: String = "1") throws -> String {
        guard input.utf8.count <= 64 else {
            throw SealingError(.invalidPhoneNumber, "a phone number has at most 15 digits")
        }
        var digits = ""
        var international = false
        for (offset, character) in input.trimmingSpaces().enumerated() {
            switch character {
            case "+" where offset == 0: international = true
            // ASCII only: a digit with a combining mark sorts between "0" and "9" too (fuzzing found it).
            case "0"..."9" where character.isASCII: digits.append(character)
            case " ", "-", ".", "(", ")": continue
            default:
                throw SealingError(
                    .invalidPhoneNumber, "a phone number holds only digits, +, spaces, dots, dashes and parentheses")
            }
        }
        if !international, digits.hasPrefix("00") {
            digits.removeFirst(2)
            international = true
        }
        if !international {
            if defaultCountryCode == "1", digits.count == 11, digits.hasPrefix("1") {
                digits.removeFirst()
            }
            if defaultCountryCode == "1", digits.count != 10 {
                throw SealingError(.invalidPhoneNumber, "a national number for country code 1 has 10 digits")
            }
            digits = defaultCountryCode + digits
        }
        guard (8...15).contains(digits.count), digits.first != "0" else {
            throw SealingError(.invalidPhoneNumber, "an E.164 number has 8 to 15 digits and a country code")
        }
        return "+" + digits
    }
}

/// Email addresses as the blind index compares them.
public enum EmailAddress {
    /// Trims spaces and lowercases the whole address (providers treat the local part without
    /// regard to case in practice; a patient writes it either way). Refuses what is not one
    /// `local@domain` of at most 254 bytes without spaces.
    public static func normalize(_ input: String) throws -> String {
        let address = String(input.trimmingSpaces()).lowercased()
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard address.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !address.contains(where: { $0.isWhitespace || $0.isNewline })
        else {
            throw SealingError(.invalidEmailAddress, "an email address is local@domain, at most 254 bytes")
        }
        return address
    }
}

extension String {
    func trimmingSpaces() -> Substring {
        var view = self[...]
        while view.first?.isWhitespace == true { view = view.dropFirst() }
        while view.last?.isWhitespace == true { view = view.dropLast() }
        return view
    }
}
