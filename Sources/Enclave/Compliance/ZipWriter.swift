import Foundation

/// An archive written as it goes, one file after another: `TarWriter` (the practice's export)
/// and `ZipWriter` (the patient's copy, which opens with a double click).
protocol ArchiveWriter {
    /// Starts a regular file of `size` bytes; its bytes follow through `append`.
    mutating func startFile(_ name: String, size: Int64, modified: Date) throws
    /// More bytes of the current file.
    mutating func append(_ bytes: [UInt8]) throws
    /// Ends the archive.
    mutating func finish() throws
}

extension ArchiveWriter {
    /// A whole small file.
    mutating func add(_ name: String, _ bytes: [UInt8]) throws {
        try startFile(name, size: Int64(bytes.count), modified: Date())
        if !bytes.isEmpty { try append(bytes) }
    }
}

extension TarWriter: ArchiveWriter {}

/// A ZIP archive (PKWARE APPNOTE 6.3) written as it goes, without compression (recordings are
/// compressed already): each file's local header, its bytes, then a data descriptor with its
/// CRC-32; the central directory last. Names are ASCII paths (ours are fixed names and ids).
/// Without ZIP64: an archive stops at 4 GiB, which a refusal says.
struct ZipWriter {
    private let sink: ([UInt8]) throws -> Void
    private var offset: Int64 = 0
    private var central: [UInt8] = []
    private var entries = 0
    private var current:
        (
            name: [UInt8], headerOffset: Int64, size: Int64, remaining: Int64, crc: UInt32, time: UInt16,
            date: UInt16
        )?

    init(sink: @escaping ([UInt8]) throws -> Void) {
        self.sink = sink
    }

    mutating func startFile(_ name: String, size: Int64, modified: Date = Date()) throws {
        try endFile()
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= 255, nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            throw ConfigurationError("zip: \(name) is not a short ASCII path")
        }
        guard offset + size < Int64(UInt32.max) - 1_000_000, entries < 65_000 else {
            throw ConfigurationError("zip: the copy would pass 4 GiB or 65,000 files")
        }
        let (time, date) = Self.dosTime(modified)
        var header: [UInt8] = []
        header.le32(0x0403_4b50)
        header.le16(20)  // version needed: 2.0
        header.le16(1 << 3)  // sizes and CRC follow the data
        header.le16(0)  // stored
        header.le16(time)
        header.le16(date)
        header.le32(0)
        header.le32(0)
        header.le32(0)
        header.le16(UInt16(nameBytes.count))
        header.le16(0)
        header += nameBytes
        current = (nameBytes, offset, size, size, 0, time, date)
        try write(header)
    }

    mutating func append(_ bytes: [UInt8]) throws {
        guard var file = current, Int64(bytes.count) <= file.remaining else {
            throw ConfigurationError("zip: more bytes than the file's size")
        }
        file.crc = CRC32.update(file.crc, bytes)
        file.remaining -= Int64(bytes.count)
        current = file
        try write(bytes)
    }

    mutating func finish() throws {
        try endFile()
        let start = offset
        try write(central)
        var end: [UInt8] = []
        end.le32(0x0605_4b50)
        end.le16(0)
        end.le16(0)
        end.le16(UInt16(entries))
        end.le16(UInt16(entries))
        end.le32(UInt32(central.count))
        end.le32(UInt32(start))
        end.le16(0)
        try write(end)
    }

    private mutating func endFile() throws {
        guard let file = current else { return }
        guard file.remaining == 0 else { throw ConfigurationError("zip: the previous file is incomplete") }
        var descriptor: [UInt8] = []
        descriptor.le32(0x0807_4b50)
        descriptor.le32(file.crc)
        descriptor.le32(UInt32(file.size))
        descriptor.le32(UInt32(file.size))
        try write(descriptor)
        var entry: [UInt8] = []
        entry.le32(0x0201_4b50)
        entry.le16(0x0314)  // made by: Unix, 2.0
        entry.le16(20)
        entry.le16(1 << 3)
        entry.le16(0)
        entry.le16(file.time)
        entry.le16(file.date)
        entry.le32(file.crc)
        entry.le32(UInt32(file.size))
        entry.le32(UInt32(file.size))
        entry.le16(UInt16(file.name.count))
        entry.le16(0)
        entry.le16(0)
        entry.le16(0)
        entry.le16(0)
        entry.le32(0o100600 << 16)  // a regular file, mode 0600
        entry.le32(UInt32(file.headerOffset))
        entry += file.name
        central += entry
        entries += 1
        current = nil
    }

    private mutating func write(_ bytes: [UInt8]) throws {
        try sink(bytes)
        offset += Int64(bytes.count)
    }

    /// MS-DOS time and date (UTC), as ZIP keeps them: two-second steps, years from 1980.
    static func dosTime(_ date: Date) -> (UInt16, UInt16) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let year = max(0, min(127, (parts.year ?? 1980) - 1980))
        let time = ((parts.hour ?? 0) << 11) | ((parts.minute ?? 0) << 5) | ((parts.second ?? 0) / 2)
        let day = (year << 9) | ((parts.month ?? 1) << 5) | (parts.day ?? 1)
        return (UInt16(time), UInt16(day))
    }
}

extension ZipWriter: ArchiveWriter {}

/// CRC-32 (ISO-HDLC, as ZIP and gzip use it).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    /// The CRC of what `crc` covered followed by `bytes` (start from 0).
    static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 {
        var value = ~crc
        for byte in bytes { value = table[Int((value ^ UInt32(byte)) & 0xff)] ^ (value >> 8) }
        return ~value
    }
}

extension [UInt8] {
    fileprivate mutating func le16(_ value: UInt16) {
        append(UInt8(value & 0xff))
        append(UInt8(value >> 8))
    }

    fileprivate mutating func le32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { append(UInt8((value >> UInt32(shift)) & 0xff)) }
    }
}
