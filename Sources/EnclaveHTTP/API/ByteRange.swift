import Foundation

/// One `Range: bytes=…` request header against a size (RFC 9110 §14). Several ranges, or a
/// header that does not parse, get the whole recording, as the RFC allows.
enum ByteRange: Equatable {
    case whole
    case part(ClosedRange<Int64>)
    case unsatisfiable

    static func resolve(_ header: String?, total: Int64) -> ByteRange {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .whole }
        let first = parts[0].isEmpty ? nil : Int64(parts[0])
        let last = parts[1].isEmpty ? nil : Int64(parts[1])
        if !parts[0].isEmpty && first == nil || !parts[1].isEmpty && last == nil { return .whole }
        switch (first, last) {
        case (let first?, let last):
            if let last, last < first { return .whole }
            guard first < total else { return .unsatisfiable }
            return .part(first...min(last ?? total - 1, total - 1))
        case (nil, let suffix?):
            guard suffix > 0, total > 0 else { return .unsatisfiable }
            return .part(max(total - suffix, 0)...(total - 1))
        case (nil, nil):
            return .whole
        }
    }
}
