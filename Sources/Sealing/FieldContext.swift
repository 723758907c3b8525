import Foundation

/// Where a sealed value lives: its tenant, table, column and row. A ciphertext opens only in the
/// same place it was sealed for.
public struct FieldContext: Sendable, Hashable {
    public var tenantID: UUID
    public var table: String
    public var column: String
    public var rowID: UUID

    public init(tenantID: UUID, table: String, column: String, rowID: UUID) {
        self.tenantID = tenantID
        self.table = table
        self.column = column
        self.rowID = rowID
    }

    /// The associated data for a ciphertext with `header`:
    /// `"enclave.v1" | tenant (16) | len(table) u16 | table | len(column) u16 | column | row (16) | header`.
    /// Length prefixes make the encoding injective: no two different places encode the same.
    func associatedData(header: some Collection<UInt8>) throws -> [UInt8] {
        try Array(header).withUnsafeBytes { header in try withAssociatedData(header: header) { Array($0) } }
    }

    /// Lends the associated data for `header` to `body`, built in temporary storage (no heap
    /// allocation for ordinary names).
    func withAssociatedData<R>(header: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    {
        var table = self.table
        var column = self.column
        return try table.withUTF8 { table in
            try column.withUTF8 { column in
                guard table.count <= Int(UInt16.max), column.count <= Int(UInt16.max) else {
                    throw SealingError(.malformed, "table or column name too long")
                }
                let size = 10 + 16 + 2 + table.count + 2 + column.count + 16 + header.count
                return try withUnsafeTemporaryAllocation(byteCount: size, alignment: 1) { buffer in
                    var offset = 0
                    func append(_ bytes: UnsafeRawBufferPointer) {
                        UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + bytes.count)]).copyMemory(
                            from: bytes)
                        offset += bytes.count
                    }
                    "enclave.v1".utf8.withContiguousStorageIfAvailable { append(UnsafeRawBufferPointer($0)) }
                    withUnsafeBytes(of: tenantID.uuid) { append($0) }
                    withUnsafeBytes(of: UInt16(table.count).bigEndian) { append($0) }
                    append(UnsafeRawBufferPointer(table))
                    withUnsafeBytes(of: UInt16(column.count).bigEndian) { append($0) }
                    append(UnsafeRawBufferPointer(column))
                    withUnsafeBytes(of: rowID.uuid) { append($0) }
                    append(header)
                    return try body(UnsafeRawBufferPointer(buffer))
                }
            }
        }
    }
}

extension UUID {
    /// The UUID's 16 bytes in network order.
    public var bytes: [UInt8] { withUnsafeBytes(of: uuid) { Array($0) } }
}

extension FixedWidthInteger {
    /// The value's big-endian bytes.
    public var bigEndianBytes: [UInt8] {
        let size = MemoryLayout<Self>.size
        return (0..<size).map { UInt8(truncatingIfNeeded: self >> ((size - 1 - $0) * 8)) }
    }

    /// Reads a big-endian integer from the start of `bytes`, which must be long enough.
    public init(bigEndianBytes bytes: some Collection<UInt8>) {
        self = bytes.prefix(MemoryLayout<Self>.size).reduce(0) { $0 << 8 | Self($1) }
    }
}
