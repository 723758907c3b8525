/// A Swift value that can be bound as a statement parameter, in PostgreSQL's binary format.
public protocol PostgresEncodable: Sendable {
    /// The parameter type sent to the server.
    static var postgresType: PostgresType { get }
    /// The binary representation, or `nil` for SQL NULL.
    func postgresBinary() throws -> [UInt8]?
}

/// A Swift value that can be decoded from a result column in PostgreSQL's binary format.
public protocol PostgresDecodable: Sendable {
    /// Decodes a non-NULL value of column type `type`.
    init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws
    /// The value for SQL NULL; non-optional types throw.
    static func postgresNull() throws -> Self
}

extension PostgresDecodable {
    public static func postgresNull() throws -> Self {
        throw PostgresDecodingFailure("is NULL but \(Self.self) is not optional")
    }
}

/// Why a value could not be decoded; `PostgresRow` adds the column and reports a `PostgresError`.
public struct PostgresDecodingFailure: Error, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }

    static func unexpected(_ type: PostgresType, for swiftType: Any.Type) -> PostgresDecodingFailure {
        PostgresDecodingFailure("has type \(type), which cannot be decoded as \(swiftType)")
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresType { Wrapped.postgresType }
    public func postgresBinary() throws -> [UInt8]? {
        switch self {
        case .none: nil
        case .some(let value): try value.postgresBinary()
        }
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        self = .some(try Wrapped(postgresBinary: bytes, type: type))
    }
    public static func postgresNull() throws -> Self { .none }
}

/// Reads big-endian integers from a binary value, failing (never trapping) on short input.
struct BinaryReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw PostgresDecodingFailure("is shorter than its type requires") }
        var value: T = 0
        for index in 0..<size { value = value << 8 | T(truncatingIfNeeded: bytes[offset + index]) }
        offset += size
        return value
    }

    mutating func read(count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw PostgresDecodingFailure("is shorter than it declares") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}

extension FixedWidthInteger {
    /// The value's big-endian bytes.
    var bigEndianBytes: [UInt8] {
        let size = MemoryLayout<Self>.size
        return (0..<size).map { UInt8(truncatingIfNeeded: self >> ((size - 1 - $0) * 8)) }
    }
}
