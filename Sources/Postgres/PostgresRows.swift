import CLibPQ

/// Owns a `PGresult`. Results are immutable once libpq hands them over, and libpq allows
/// reading them from any thread, so sharing is safe.
final class ResultHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQclear(pointer) }
}

/// The rows a statement returned, decoded lazily from PostgreSQL's binary format.
public struct PostgresRows: RandomAccessCollection, Sendable {
    let handle: ResultHandle?
    /// Column names, in order.
    public let columns: [String]
    /// Rows inserted, updated, deleted, selected or copied, as the command tag reports.
    public let affectedRows: Int
    private let columnIndexes: [String: Int]

    init(handle: ResultHandle?) {
        self.handle = handle
        guard let pointer = handle?.pointer else {
            columns = []
            affectedRows = 0
            columnIndexes = [:]
            return
        }
        let names = (0..<PQnfields(pointer)).map { String(cString: PQfname(pointer, $0)) }
        columns = names
        var indexes: [String: Int] = [:]
        for (index, name) in names.enumerated() where indexes[name] == nil { indexes[name] = index }
        columnIndexes = indexes
        affectedRows = Int(String(cString: PQcmdTuples(pointer))) ?? 0
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { handle.map { Int(PQntuples($0.pointer)) } ?? 0 }

    public subscript(position: Int) -> PostgresRow {
        PostgresRow(rows: self, index: position)
    }

    func columnIndex(_ name: String) throws -> Int {
        guard let index = columnIndexes[name] else {
            throw PostgresError(code: .columnNotFound, message: "the result has no column \"\(name)\"", column: name)
        }
        return index
    }
}

/// One row of `PostgresRows`.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    /// Decodes the column named `column` as `type`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ column: String) throws -> T {
        try decode(type, at: rows.columnIndex(column))
    }

    /// Decodes the column at `column` (0-based) as `type`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws -> T {
        guard let pointer = rows.handle?.pointer, column >= 0, column < rows.columns.count else {
            throw PostgresError(code: .columnNotFound, message: "the result has no column at index \(column)")
        }
        let row = Int32(index)
        let field = Int32(column)
        let name = rows.columns[column]
        do {
            if PQgetisnull(pointer, row, field) == 1 { return try T.postgresNull() }
            let type = PostgresType(rawValue: PQftype(pointer, field))
            let length = Int(PQgetlength(pointer, row, field))
            let bytes = UnsafeRawBufferPointer(start: PQgetvalue(pointer, row, field), count: length)
            return try T(postgresBinary: bytes, type: type)
        } catch let failure as PostgresDecodingFailure {
            throw PostgresError(
                code: .typeMismatch,
                message: "column \"\(name)\" \(failure.reason) (decoding \(T.self))",
                column: name
            )
        }
    }
}
