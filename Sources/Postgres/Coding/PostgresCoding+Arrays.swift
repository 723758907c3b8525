/// An element type whose Swift arrays bind to and decode from a PostgreSQL type.
///
/// Most elements use PostgreSQL's binary array format (`text[]`, `uuid[]`, `int8[]`);
/// `UInt8` maps `[UInt8]` to bytea instead.
public protocol PostgresArrayCodable: Sendable {
    /// The PostgreSQL type of `[Self]`.
    static var arrayType: PostgresType { get }
    static func encodeArray(_ elements: [Self]) throws -> [UInt8]
    static func decodeArray(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [Self]
}

extension Array: PostgresEncodable where Element: PostgresArrayCodable {
    public static var postgresType: PostgresType { Element.arrayType }
    public func postgresBinary() throws -> [UInt8]? { try Element.encodeArray(self) }
}

extension Array: PostgresDecodable where Element: PostgresArrayCodable {
    public init(postgresBinary bytes: UnsafeRawBufferPointer, type: PostgresType) throws {
        self = try Element.decodeArray(bytes, type: type)
    }
}

/// A scalar that travels inside PostgreSQL's binary one-dimensional array format.
protocol PostgresArrayElement: PostgresEncodable, PostgresDecodable {
    static var arrayTypes: Set<PostgresType> { get }
}

extension PostgresArrayElement {
    static func encodeElements(_ elements: [Self], arrayType: PostgresType) throws -> [UInt8] {
        var out = Int32(elements.isEmpty ? 0 : 1).bigEndianBytes  // dimensions
        out += Int32(0).bigEndianBytes  // flags: no NULLs
        out += Int32(bitPattern: postgresType.rawValue).bigEndianBytes
        if !elements.isEmpty {
            out += Int32(elements.count).bigEndianBytes
            out += Int32(1).bigEndianBytes  // lower bound
        }
        for element in elements {
            guard let bytes = try element.postgresBinary() else {
                throw PostgresDecodingFailure("array element is NULL")
            }
            out += Int32(bytes.count).bigEndianBytes
            out += bytes
        }
        return out
    }

    static func decodeElements(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [Self] {
        guard arrayTypes.contains(type) else { throw PostgresDecodingFailure.unexpected(type, for: [Self].self) }
        var reader = BinaryReader(bytes)
        let dimensions = try reader.read(Int32.self)
        _ = try reader.read(Int32.self)  // flags
        let elementType = PostgresType(rawValue: try reader.read(UInt32.self))
        if dimensions == 0 { return [] }
        guard dimensions == 1 else { throw PostgresDecodingFailure("is a \(dimensions)-dimensional array") }
        let count = try reader.read(Int32.self)
        _ = try reader.read(Int32.self)  // lower bound
        guard count >= 0, Int(count) <= reader.remaining / 4 else {
            throw PostgresDecodingFailure("declares more elements than it holds")
        }
        var result: [Self] = []
        result.reserveCapacity(Int(count))
        for _ in 0..<count {
            let length = try reader.read(Int32.self)
            if length < 0 {
                throw PostgresDecodingFailure("has a NULL element, which [\(Self.self)] cannot hold")
            }
            let element = try reader.read(count: Int(length))
            result.append(try Self(postgresBinary: element, type: elementType))
        }
        return result
    }
}

extension String: PostgresArrayCodable, PostgresArrayElement {
    public static var arrayType: PostgresType { .textArray }
    static var arrayTypes: Set<PostgresType> { [.textArray, .varcharArray] }
    public static func encodeArray(_ elements: [String]) throws -> [UInt8] {
        try encodeElements(elements, arrayType: arrayType)
    }
    public static func decodeArray(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [String] {
        try decodeElements(bytes, type: type)
    }
}

extension Int64: PostgresArrayCodable, PostgresArrayElement {
    public static var arrayType: PostgresType { .int8Array }
    static var arrayTypes: Set<PostgresType> { [.int8Array, .int4Array] }
    public static func encodeArray(_ elements: [Int64]) throws -> [UInt8] {
        try encodeElements(elements, arrayType: arrayType)
    }
    public static func decodeArray(_ bytes: UnsafeRawBufferPointer, type: PostgresType) throws -> [Int64] {
        try decodeElements(bytes, type: type)
    }
}
