/// CSV as RFC 4180 writes it: every field quoted, quotes doubled, lines ending in CRLF; a field a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a
/// leading `'`. Every CSV download (the audit trail, reports, conversions) goes through it.
public enum CSV {
    public static func line(_ fields: [String]) -> String {
        fields.map(field).joined(separator: ",") + "\r\n"
    }

    public static func field(_ value: String) -> String {
        let neutral = value.first.map { "=+-@\t\r".contains($0) } == true ? "'" + value : value
        return "\"" + neutral.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
