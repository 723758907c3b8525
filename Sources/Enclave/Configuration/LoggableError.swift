import Postgres
import Sealing

/// What a log line may say about an unexpected error. Enclave's own error types describe
/// themselves without values (`PostgresError` gives its code and SQLSTATE only, never the
/// server's message, which can quote data); anything else is named by its type alone, since its
/// text could quote input, PHI or key material.
public enum LoggableError {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as PostgresError: return "\(error)"
        case let error as AccessError: return "access: \(error.code)"
        case let error as SealingError: return "sealing: \(error.code)"
        case let error as ConfigurationError: return "configuration: \(error)"
        default: return String(reflecting: type(of: error))
        }
    }
}
