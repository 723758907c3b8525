import CLibPQ
import Foundation

extension Connection {
    /// Opens a libpq connection, blocking: run on the connection's own thread. Errors never
    /// contain the password.
    static func openBlocking(_ configuration: ConnectionConfiguration, _ notices: Notices) throws
        -> UnsafeConnectionHandle
    {
        let keywords = configuration.parameters.map { strdup($0.keyword) } + [nil]
        let values = configuration.parameters.map { strdup($0.value) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let pgconn = PQconnectdbParams(
            keywords.map { $0.map { UnsafePointer($0) } }, values.map { $0.map { UnsafePointer($0) } }, 0)
        guard let pgconn else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(pgconn) == CONNECTION_OK else {
            var message = String(cString: PQerrorMessage(pgconn)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(pgconn)
            if let password = configuration.password, !password.isEmpty {
                message = message.replacingOccurrences(of: password, with: "***")
            }
            throw PostgresError(code: .connectionFailed, message: "could not connect to PostgreSQL: \(message)")
        }
        // libpq prints notices to stderr by default; the service decides what to log. The one
        // notice read is the warning of a cancelled wait for the synchronous standby, known by
        // the server function that raises it (the message is translated, its SQLSTATE generic).
        PQsetNoticeReceiver(
            pgconn,
            { context, result in
                guard let context, let result,
                    let routine = PQresultErrorField(result, Int32(UInt8(ascii: "R"))),
                    String(cString: routine) == "SyncRepWaitForLSN"
                else { return }
                Unmanaged<Notices>.fromOpaque(context).takeUnretainedValue().commitNotReplicated = true
            }, Unmanaged.passUnretained(notices).toOpaque())
        return UnsafeConnectionHandle(pointer: pgconn)
    }
}

/// What a connection's notice receiver saw; written and read only on the connection's thread
/// (libpq calls the receiver inside the call that reads the server's messages). The connection
/// holds it as long as libpq may call the receiver with it.
final class Notices: @unchecked Sendable {
    var commitNotReplicated = false
}

/// A `PGconn` pointer handed from the connection's thread to its owner.
struct UnsafeConnectionHandle: @unchecked Sendable {
    // Used only on the owning connection's thread.
    let pointer: OpaquePointer?
}
