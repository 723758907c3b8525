import CoreMetrics
import Enclave
import Foundation
import Postgres
import Prometheus

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of the
/// server's own (not the process-wide bootstrap, so two servers in one process, as in tests,
/// keep theirs apart) and exposed on a separate listener (`MetricsServer`).
///
/// Operations are route patterns, never raw paths, so ids and PHI never become labels and the
/// number of series stays bounded.
final class Metrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let pool: ConnectionPool
    private let auditFailures: CoreMetrics.Counter
    /// The audit failures already counted into `auditFailures`.
    private let auditFailuresReported = Locked(0)
    /// One counter and one timer per series, made once: the request path only looks them up.
    private let series = Locked<[SeriesKey: (CoreMetrics.Counter, CoreMetrics.Timer)]>([:])

    private struct SeriesKey: Hashable, Sendable {
        let operation: String
        let method: String
        let status: Int
    }

    init(pool: ConnectionPool) {
        self.pool = pool
        factory = PrometheusMetricsFactory(registry: registry)
        auditFailures = CoreMetrics.Counter(label: "enclave_audit_write_failures_total", factory: factory)
    }

    /// Counts a request and its time to the response head.
    func observe(operation: String, method: String, status: Int, duration: Duration) {
        let key = SeriesKey(operation: operation, method: method, status: status)
        let (requests, latency) = series.withLock { all in
            if let made = all[key] { return made }
            let labels = [("operation", operation), ("method", method)]
            let made = (
                CoreMetrics.Counter(
                    label: "enclave_http_requests_total", dimensions: labels + [("status", String(status))],
                    factory: factory),
                CoreMetrics.Timer(label: "enclave_http_request_duration_seconds", dimensions: labels, factory: factory)
            )
            all[key] = made
            return made
        }
        requests.increment()
        latency.recordNanoseconds(duration.nanoseconds)
    }

    /// The exposition text, with the pool's usage and the audit failures read now.
    func render() -> String {
        let usage = pool.usage
        for (state, value) in [("open", usage.open), ("idle", usage.idle), ("in_use", usage.open - usage.idle)] {
            CoreMetrics.Gauge(label: "enclave_db_pool_connections", dimensions: [("state", state)], factory: factory)
                .record(value)
        }
        CoreMetrics.Gauge(label: "enclave_db_pool_waiting", factory: factory).record(usage.waiting)
        CoreMetrics.Gauge(label: "enclave_db_pool_max_connections", factory: factory).record(
            pool.options.maxConnections)
        let failures = Int(AuditWriteFailures.count.load(ordering: .relaxed))
        let delta = auditFailuresReported.withLock { reported in
            defer { reported = max(reported, failures) }
            return max(0, failures - reported)
        }
        auditFailures.increment(by: delta)
        return registry.emitToString()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
