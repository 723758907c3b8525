import Foundation

/// A POSIX ustar archive written as it goes: each file's header, then its bytes, padded to 512.
/// Names are ASCII paths of at most 100 bytes (ours are fixed names and ids).
struct TarWriter {
    private let sink: ([UInt8]) throws -> Void
    private var remaining: Int64 = 0
    private var written: Int64 = 0

    init(sink: @escaping ([UInt8]) throws -> Void) {
        self.sink = sink
    }

    /// Starts a regular file of `size` bytes; its bytes follow through `append`.
    mutating func startFile(_ name: String, size: Int64, modified: Date = Date()) throws {
        guard remaining == 0 else { throw ConfigurationError("tar: the previous file is incomplete") }
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= 100, nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            throw ConfigurationError("tar: \(name) is not a short ASCII path")
        }
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) {
            for (index, byte) in bytes.enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int64, width: Int) -> [UInt8] {
            Array(String(value, radix: 8).leftPadded(to: width - 1).utf8) + [0]
        }
        put(nameBytes, at: 0)
        put(octal(0o600, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(Int64(modified.timeIntervalSince1970), width: 12), at: 136)
        put(Array(repeating: 0x20, count: 8), at: 148)
        header[156] = UInt8(ascii: "0")
        put(Array("ustar".utf8) + [0], at: 257)
        put(Array("00".utf8), at: 263)
        put(Array("enclave".utf8), at: 265)
        put(Array("enclave".utf8), at: 297)
        let checksum = header.reduce(0) { $0 + Int64($1) }
        put(Array(String(checksum, radix: 8).leftPadded(to: 6).utf8) + [0, 0x20], at: 148)
        try sink(header)
        remaining = size
        written = 0
    }

    /// More bytes of the current file.
    mutating func append(_ bytes: [UInt8]) throws {
        guard Int64(bytes.count) <= remaining else { throw ConfigurationError("tar: more bytes than the file's size") }
        try sink(bytes)
        remaining -= Int64(bytes.count)
        written += Int64(bytes.count)
        if remaining == 0, written % 512 != 0 {
            try sink([UInt8](repeating: 0, count: Int(512 - written % 512)))
        }
    }

    /// The end-of-archive marker.
    mutating func finish() throws {
        guard remaining == 0 else { throw ConfigurationError("tar: the last file is incomplete") }
        try sink([UInt8](repeating: 0, count: 1024))
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
