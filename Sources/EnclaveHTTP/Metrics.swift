import Enclave
import Foundation
import Postgres
import Synchronization

/// Request counts and latencies by operation, for `/metrics` (Prometheus text format 0.0.4).
/// Operations are route patterns, never raw paths, so ids and PHI never become labels and the
/// number of series stays bounded.
final class Metrics: Sendable {
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private struct Key: Hashable, Comparable {
        let operation: String
        let method: String
        static func < (lhs: Key, rhs: Key) -> Bool { (lhs.operation, lhs.method) < (rhs.operation, rhs.method) }
    }

    private struct Series {
        var byStatus: [Int: Int] = [:]
        var buckets = [Int](repeating: 0, count: Metrics.buckets.count)
        var count = 0
        var sum = 0.0
    }

    private let series = Mutex<[Key: Series]>([:])

    func observe(operation: String, method: String, status: Int, seconds: Double) {
        series.withLock { all in
            let key = Key(operation: operation, method: method)
            var entry = all[key] ?? Series()
            entry.byStatus[status, default: 0] += 1
            for (index, bound) in Self.buckets.enumerated() where seconds <= bound { entry.buckets[index] += 1 }
            entry.count += 1
            entry.sum += seconds
            all[key] = entry
        }
    }

    func render(pool: ConnectionPool) -> String {
        let snapshot = series.withLock { $0 }
        var lines = [
            "# HELP enclave_http_requests_total HTTP requests by operation, method and status.",
            "# TYPE enclave_http_requests_total counter",
        ]
        for key in snapshot.keys.sorted() {
            for (status, count) in snapshot[key, default: Series()].byStatus.sorted(by: { $0.key < $1.key }) {
                lines.append("enclave_http_requests_total{\(Self.labels(key)),status=\"\(status)\"} \(count)")
            }
        }
        lines += [
            "# HELP enclave_http_request_duration_seconds Time to the response head, by operation and method.",
            "# TYPE enclave_http_request_duration_seconds histogram",
        ]
        for key in snapshot.keys.sorted() {
            let entry = snapshot[key, default: Series()]
            for (index, bound) in Self.buckets.enumerated() {
                lines.append(
                    "enclave_http_request_duration_seconds_bucket{\(Self.labels(key)),le=\"\(bound)\"} \(entry.buckets[index])"
                )
            }
            lines.append("enclave_http_request_duration_seconds_bucket{\(Self.labels(key)),le=\"+Inf\"} \(entry.count)")
            lines.append("enclave_http_request_duration_seconds_sum{\(Self.labels(key))} \(entry.sum)")
            lines.append("enclave_http_request_duration_seconds_count{\(Self.labels(key))} \(entry.count)")
        }
        let usage = pool.usage
        lines += [
            "# HELP enclave_db_pool_connections Database connections of the service role, by state.",
            "# TYPE enclave_db_pool_connections gauge",
            "enclave_db_pool_connections{state=\"open\"} \(usage.open)",
            "enclave_db_pool_connections{state=\"idle\"} \(usage.idle)",
            "enclave_db_pool_connections{state=\"in_use\"} \(usage.open - usage.idle)",
            "# HELP enclave_db_pool_waiting Requests waiting for a database connection.",
            "# TYPE enclave_db_pool_waiting gauge",
            "enclave_db_pool_waiting \(usage.waiting)",
            "# HELP enclave_db_pool_max_connections The pool's limit.",
            "# TYPE enclave_db_pool_max_connections gauge",
            "enclave_db_pool_max_connections \(pool.options.maxConnections)",
            "# HELP enclave_audit_write_failures_total Audit writes that failed (each refused its request).",
            "# TYPE enclave_audit_write_failures_total counter",
            "enclave_audit_write_failures_total \(AuditWriteFailures.count.load(ordering: .relaxed))",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    private static func labels(_ key: Key) -> String {
        "operation=\"\(escape(key.operation))\",method=\"\(escape(key.method))\""
    }

    private static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
