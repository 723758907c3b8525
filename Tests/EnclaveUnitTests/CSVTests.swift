import Testing

@testable import Enclave

@Suite("CSV (no database)")
struct CSVTests {
    @Test("fields are quoted, quotes doubled, and a formula a spreadsheet would run is neutralised")
    func fields() {
        #expect(
            CSV.line(["a", "b\"c", "=HYPERLINK(\"x\")", "-1", "@x", "ok"])
                == "\"a\",\"b\"\"c\",\"'=HYPERLINK(\"\"x\"\")\",\"'-1\",\"'@x\",\"ok\"\r\n")
    }
}
