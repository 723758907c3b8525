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
        let table = Array(self.table.utf8)
        let column = Array(self.column.utf8)
        guard table.count <= Int(UInt16.max), column.count <= Int(UInt16.max) else {
            throw SealingError(.malformed, "table or column name too long")
        }
        var data = Array("enclave.v1".utf8)
        data.reserveCapacity(64 + table.count + column.count + header.count)
        data += tenantID.bytes
        data += UInt16(table.count).bigEndianBytes + table
        data += UInt16(column.count).bigEndianBytes + column
        data += rowID.bytes
        data += header
        return data
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
