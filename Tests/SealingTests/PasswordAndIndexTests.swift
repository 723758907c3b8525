import Foundation
import Sealing
import Testing

@Suite("Passwords, blind indexes and phone numbers")
struct PasswordAndIndexTests {
    @Test("hashes are PHC strings that verify the right password only")
    func passwords() throws {
        let hasher = PasswordHasher(cost: .testing)
        let hash = try hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(try hasher.verify("correct horse battery staple", against: hash))
        #expect(try !hasher.verify("correct horse battery stapl", against: hash))
        #expect(try hasher.hash("same") != hasher.hash("same"))
        #expect(!hasher.needsRehash(hash))
        #expect(PasswordHasher().needsRehash(hash))
        #expect(PasswordHasher().cost == .owasp)
        for bad in [
            "", "$scrypt$", "$argon2id$v=19$m=1,t=1,p=1$abc$def",
            "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            #expect(throws: SealingError.self) { try hasher.verify("x", against: bad) }
        }
    }

    @Test("the default cost is OWASP's and still verifies")
    func owaspCost() throws {
        let hasher = PasswordHasher()
        let hash = try hasher.hash("pw")
        #expect(hash.hasPrefix("$scrypt$ln=17,r=8,p=1$"))
        #expect(try hasher.verify("pw", against: hash))
    }

    @Test(
        "phone numbers normalize to E.164",
        arguments: [
            ("+1 (555) 123-4567", "+15551234567"), ("555.123.4567", "+15551234567"), ("1-555-123-4567", "+15551234567"),
            ("0044 20 7946 0958", "+442079460958"), ("+44 20 7946 0958", "+442079460958"),
        ]
    )
    func phoneNumbers(input: String, expected: String) throws {
        #expect(try PhoneNumber.normalize(input) == expected)
    }

    @Test(
        "things that are not phone numbers are refused",
        arguments: [
            "", "hello", "555-1234", "+1234", "+1234567890123456", "555 123 4567 ext 9", "+0 555 123 4567",
            // A digit with a combining mark (found by fuzzing) is not a digit.
            "+1 555 123 456\u{34E}7", "+1 555 123 4567\u{737}",
        ])
    func notPhoneNumbers(input: String) {
        #expect(throws: SealingError(.invalidPhoneNumber, "")) { try PhoneNumber.normalize(input) }
    }

    @Test("blind indexes match for one number written two ways, and differ across tenants")
    func blindIndex() throws {
        let tenantA = try BlindIndex(key: SecretBytes(randomCount: 32))
        let tenantB = try BlindIndex(key: SecretBytes(randomCount: 32))
        let a1 = try tenantA.index(phoneNumber: "(555) 123-4567")
        #expect(a1 == (try tenantA.index(phoneNumber: "+1 555 123 4567")))
        #expect(a1 != (try tenantA.index(phoneNumber: "+1 555 123 4568")))
        #expect(a1 != (try tenantB.index(phoneNumber: "(555) 123-4567")))
        #expect(a1.count == 32)
    }

    @Test("random bytes differ and SecretBytes never prints its content")
    func randomness() throws {
        #expect(try SecureRandom.bytes(32) != SecureRandom.bytes(32))
        let secret = try SecretBytes(randomCount: 32)
        #expect("\(secret)" == "SecretBytes(32 bytes)")
    }
}
