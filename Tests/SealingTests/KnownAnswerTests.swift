import Foundation
import Sealing
import Testing

@Suite("Known-answer tests")
struct KnownAnswerTests {
    struct GCMVector: Sendable, CustomTestStringConvertible {
        let name: String, key: String, nonce: String, plaintext: String, aad: String, ciphertext: String, tag: String
        var testDescription: String { name }
    }

    // The AES-256 cases (13-16) of "The Galois/Counter Mode of Operation" (McGrew & Viega), as used by NIST's GCM validation.
    static let gcm: [GCMVector] = [
        GCMVector(
            name: "case 13", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        GCMVector(
            name: "case 14", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: String(repeating: "00", count: 16), aad: "", ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        GCMVector(
            name: "case 15", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext:
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            aad: "",
            ciphertext:
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            tag: "b094dac5d93471bdec1a502270e3cc6c"),
        GCMVector(
            name: "case 16", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext:
                "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            ciphertext:
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("AES-256-GCM seals and opens the published vectors", arguments: gcm)
    func aesGCM(vector: GCMVector) throws {
        let key = [UInt8](hex: vector.key)
        let nonce = [UInt8](hex: vector.nonce)
        let plaintext = [UInt8](hex: vector.plaintext)
        let aad = [UInt8](hex: vector.aad)
        var output: [UInt8] = []
        try key.withUnsafeBytes { k in
            try nonce.withUnsafeBytes { n in
                try plaintext.withUnsafeBytes { p in
                    try aad.withUnsafeBytes { a in
                        try AES256GCM.seal(key: k, nonce: n, plaintext: p, associatedData: a, appendingTo: &output)
                    }
                }
            }
        }
        #expect(output.hex == vector.ciphertext + vector.tag)
        let opened = try key.withUnsafeBytes { k in
            try nonce.withUnsafeBytes { n in
                try output.withUnsafeBytes { c in
                    try aad.withUnsafeBytes { a in
                        try AES256GCM.open(key: k, nonce: n, ciphertextAndTag: c, associatedData: a)
                    }
                }
            }
        }
        #expect(opened == plaintext)
    }

    @Test("scrypt matches RFC 7914 section 12")
    func scrypt() throws {
        let first = try PasswordHasher.scrypt(
            password: [], salt: [], cost: .init(logN: 4, r: 1, p: 1), length: 64)
        #expect(
            first.hex
                == "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        )
        let second = try PasswordHasher.scrypt(
            password: Array("password".utf8), salt: Array("NaCl".utf8), cost: .init(logN: 10, r: 8, p: 16), length: 64)
        #expect(
            second.hex
                == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        )
    }

    @Test(
        "TOTP matches RFC 6238 Appendix B",
        arguments: [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ]
    )
    func totp(time: Int, sha1: String, sha256: String, sha512: String) throws {
        let seed = "1234567890"
        let date = Date(timeIntervalSince1970: TimeInterval(time))
        let cases: [(HMAC.Algorithm, Int, String)] = [(.sha1, 20, sha1), (.sha256, 32, sha256), (.sha512, 64, sha512)]
        for (algorithm, length, expected) in cases {
            let secret = SecretBytes(copying: Array(String(repeating: seed, count: 7).utf8.prefix(length)))
            let totp = try TOTP(secret: secret, digits: 8, algorithm: algorithm)
            #expect(try totp.code(at: date) == expected)
            #expect(try totp.matchingStep(for: expected, at: date) == totp.step(at: date))
        }
    }
}
