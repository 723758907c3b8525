extension Bool: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bool }
    public func postgresBinary() -> [UInt8]? { [self ? 1 : 0] }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .bool else { throw PostgresDecodingFailure.unexpected(type, for: Bool.self) }
        guard bytes.count == 1 else { throw PostgresDecodingFailure("is not a one-byte bool") }
        self = bytes[0] != 0
    }
}

extension Int16: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int2 }
    public func postgresBinary() -> [UInt8]? { bigEndianBytes }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .int2 else { throw PostgresDecodingFailure.unexpected(type, for: Int16.self) }
        self = try decodeInteger(bytes, type)
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int4 }
    public func postgresBinary() -> [UInt8]? { bigEndianBytes }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .int2 || type == .int4 else { throw PostgresDecodingFailure.unexpected(type, for: Int32.self) }
        self = try decodeInteger(bytes, type)
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int8 }
    public func postgresBinary() -> [UInt8]? { bigEndianBytes }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard type == .int2 || type == .int4 || type == .int8 || type == .oid else {
            throw PostgresDecodingFailure.unexpected(type, for: Int64.self)
        }
        self = try decodeInteger(bytes, type)
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .int8 }
    public func postgresBinary() -> [UInt8]? { Int64(self).bigEndianBytes }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        self = Int(try Int64(postgresBinary: bytes, type: type))
    }
}

/// Decodes int2, int4, int8 or oid binary values, widening to `T`.
private func decodeInteger<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ type: PostgresType) throws -> T {
    var reader = BinaryReader(bytes)
    let value: Int64
    switch bytes.count {
    case 2: value = Int64(try reader.read(Int16.self))
    case 4: value = type == .oid ? Int64(try reader.read(UInt32.self)) : Int64(try reader.read(Int32.self))
    case 8: value = try reader.read(Int64.self)
    default: throw PostgresDecodingFailure("has \(bytes.count) bytes, not an integer")
    }
    guard let result = T(exactly: value) else { throw PostgresDecodingFailure("does not fit in \(T.self)") }
    return result
}

extension Double: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .float8 }
    public func postgresBinary() -> [UInt8]? { bitPattern.bigEndianBytes }
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        var reader = BinaryReader(bytes)
        switch (type, bytes.count) {
        case (.float8, 8): self = Double(bitPattern: try reader.read(UInt64.self))
        case (.float4, 4): self = Double(Float(bitPattern: try reader.read(UInt32.self)))
        default: throw PostgresDecodingFailure.unexpected(type, for: Double.self)
        }
    }
}

extension String: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .text }
    public func postgresBinary() throws -> [UInt8]? {
        // PostgreSQL text cannot hold NUL; refuse it here rather than let the server guess.
        if utf8.contains(0) { throw PostgresDecodingFailure("a text value contains a NUL byte") }
        return Array(utf8)
    }
    static let textTypes: Set<PostgresType> = [.text, .varchar, .bpchar, .name, .char, .unknown]
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        guard Self.textTypes.contains(type) else { throw PostgresDecodingFailure.unexpected(type, for: String.self) }
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw PostgresDecodingFailure("is not valid UTF-8")
        }
        self = string
    }
}

/// `[UInt8]` is bytea, not an array of integers.
extension UInt8: PostgresArrayCodable {
    public static var arrayType: PostgresType { .bytea }
    public static func encodeArray(_ elements: [UInt8]) -> [UInt8] { elements }
    public static func decodeArray(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [UInt8] {
        guard type == .bytea else { throw PostgresDecodingFailure.unexpected(type, for: [UInt8].self) }
        return Array(bytes)
    }
}
