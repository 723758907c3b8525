import Foundation

extension Array where Element == UInt8 {
    init(hex: String) {
        let characters = [Character](hex.filter { !$0.isWhitespace })
        self = stride(from: 0, to: characters.count, by: 2).map {
            UInt8(String(characters[$0...$0 + 1]), radix: 16) ?? 0
        }
    }

    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
