import Foundation

extension UUID: PostgresEncodable, PostgresDecodable, PostgresArrayCodable, PostgresArrayElement {
    public static var postgresType: PostgresType { .uuid }
    public func postgresBinary() -> [UInt8]? {
        withUnsafeBytes(of: uuid) { Array($0) }
    }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .uuid else { throw PostgresDecodingFailure.unexpected(type, for: UUID.self) }
        guard bytes.count == 16 else { throw PostgresDecodingFailure("is not 16 bytes") }
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: bytes) }
        self.init(uuid: value)
    }

    public static var arrayType: PostgresType { .uuidArray }
    static var arrayTypes: Set<PostgresType> { [.uuidArray] }
    public static func encodeArray(_ elements: [UUID]) throws -> [UInt8] {
        try encodeElements(elements, arrayType: arrayType)
    }
    public static func decodeArray(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [UUID] {
        try decodeElements(bytes, type: type)
    }
}

/// Seconds from 2001-01-01 (Foundation's reference date) back to 2000-01-01 (PostgreSQL's epoch).
private let postgresEpochOffset: TimeInterval = 366 * 86_400

extension Date: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .timestamptz }
    public func postgresBinary() -> [UInt8]? {
        let microseconds = ((timeIntervalSinceReferenceDate + postgresEpochOffset) * 1_000_000).rounded()
        return Int64(exactly: microseconds)?.bigEndianBytes ?? (microseconds > 0 ? Int64.max : Int64.min).bigEndianBytes
    }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .timestamptz || type == .timestamp else {
            throw PostgresDecodingFailure.unexpected(type, for: Date.self)
        }
        var reader = BinaryReader(bytes)
        let microseconds = try reader.read(Int64.self)
        switch microseconds {
        case .max: self = .distantFuture
        case .min: self = .distantPast
        default: self.init(timeIntervalSinceReferenceDate: Double(microseconds) / 1_000_000 - postgresEpochOffset)
        }
    }
}

extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bytea }
    public func postgresBinary() -> [UInt8]? { Array(self) }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .bytea else { throw PostgresDecodingFailure.unexpected(type, for: Data.self) }
        self.init(bytes)
    }
}

/// A jsonb value, kept as its UTF-8 JSON text.
public struct JSONB: Hashable, Sendable, PostgresEncodable, PostgresDecodable {
    /// The JSON text, UTF-8.
    public var utf8: [UInt8]

    /// Wraps JSON text as is.
    public init(json: String) { utf8 = Array(json.utf8) }

    /// Encodes `value` with `JSONEncoder` (sorted keys, so equal values give equal text).
    public init(encoding value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        utf8 = Array(try encoder.encode(value))
    }

    /// Decodes the JSON text as `type`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(utf8))
    }

    /// The JSON text.
    public var text: String { String(decoding: utf8, as: UTF8.self) }

    public static var postgresType: PostgresType { .jsonb }
    public func postgresBinary() -> [UInt8]? { [1] + utf8 }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        switch type {
        case .jsonb:
            guard bytes.first == 1 else { throw PostgresDecodingFailure("has an unknown jsonb format version") }
            utf8 = Array(bytes.dropFirst())
        case .json:
            utf8 = Array(bytes)
        default:
            throw PostgresDecodingFailure.unexpected(type, for: JSONB.self)
        }
    }
}
