import Foundation

/// An `application/x-www-form-urlencoded` body as the provider sent it: every name and value,
/// in order, decoded (`+` is a space, `%XX` a byte of UTF-8). A provider's signature covers
/// every parameter, so nothing is dropped or merged here.
public struct FormBody: Sendable, Equatable {
    public let pairs: [(name: String, value: String)]

    public init(_ bytes: [UInt8]) throws {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AccessError(.invalidInput, "the form body is not valid UTF-8")
        }
        var pairs: [(String, String)] = []
        for piece in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : "") else {
                throw AccessError(.invalidInput, "the form body is not URL-encoded")
            }
            pairs.append((name, value))
        }
        self.pairs = pairs
    }

    /// The first value of `name`, if any.
    public subscript(_ name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    public static func == (lhs: FormBody, rhs: FormBody) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.name == $1.name && $0.value == $1.value }
    }

    private static func decode(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
