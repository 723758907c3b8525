import Enclave
import Testing

@Suite("Hex text (no database)")
struct HexTests {
    @Test("hex text decodes strictly")
    func hex() {
        #expect([UInt8](hex: "00ffA0") == [0x00, 0xff, 0xa0])
        #expect([UInt8](hex: "") == [])
        #expect([UInt8](hex: "abc") == nil)
        #expect([UInt8](hex: "zz") == nil)
        #expect([UInt8](hex: "0g") == nil)
        #expect([0x01, 0xab].hex == "01ab")
    }
}
