import Enclave
import Foundation
import ServiceLifecycle

/// The webhook delivery worker as a service: a pass every `interval`, until a graceful shutdown
/// (a pass in progress finishes first).
public struct WebhookDeliveryService: Service {
    public let deliverer: WebhookDeliverer
    public let interval: Duration
    /// Told about each pass that did something, and about failed passes (no PHI in either).
    public let report: @Sendable (String) -> Void

    public init(deliverer: WebhookDeliverer, interval: Duration, report: @escaping @Sendable (String) -> Void) {
        self.deliverer = deliverer
        self.interval = interval
        self.report = report
    }

    public func run() async throws {
        report("webhooks: delivering every \(interval)")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let pass = try await deliverer.deliverDue()
                if pass != WebhookDeliverer.Summary() { report(Self.describe(pass)) }
            } catch  where isDatabaseUnreachable(error) {
                report(
                    "webhooks: cannot connect to the database (\(logSafeDescription(of: error))); retrying in \(interval)"
                )
            } catch {
                report("webhooks: pass failed (\(logSafeDescription(of: error))); retrying")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One line about a pass.
    public static func describe(_ pass: WebhookDeliverer.Summary) -> String {
        "webhooks: \(pass.delivered) delivered (\(pass.disclosed) with PHI), \(pass.retrying) to retry, "
            + "\(pass.failed) failed"
    }
}
