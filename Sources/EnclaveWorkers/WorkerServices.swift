import Enclave
import Foundation

// The workers `enclave` runs, each a `PeriodicWorker` over one service of the Enclave layer,
// with the one line it reports about a pass (ids and counts, never PHI).

/// The webhook delivery worker.
public enum WebhookDeliveryService {
    public static func make(
        deliverer: WebhookDeliverer, interval: Duration, report: @escaping @Sendable (String) -> Void
    ) -> PeriodicWorker {
        PeriodicWorker(
            name: "webhooks", doing: "delivering", interval: interval, idle: WebhookDeliverer.Summary(),
            pass: { try await deliverer.deliverDue() }, describe: describe, report: report)
    }

    /// One line about a pass.
    public static func describe(_ pass: WebhookDeliverer.Summary) -> String {
        "webhooks: \(pass.delivered) delivered (\(pass.disclosed) with PHI), \(pass.retrying) to retry, "
            + "\(pass.failed) failed"
    }
}

/// The recording worker.
public enum RecordingFetchService {
    public static func make(
        fetcher: RecordingFetcher, interval: Duration, report: @escaping @Sendable (String) -> Void
    ) -> PeriodicWorker {
        PeriodicWorker(
            name: "recordings", doing: "fetching", interval: interval, idle: RecordingFetcher.Summary(),
            pass: { try await fetcher.fetchDue() }, describe: describe, report: report)
    }

    /// One line about a pass.
    public static func describe(_ pass: RecordingFetcher.Summary) -> String {
        "recordings: \(pass.fetched) fetched and sealed, \(pass.deleted) deleted at the provider, "
            + "\(pass.retrying) to retry, \(pass.failed) failed"
    }
}

/// The transcription worker.
public enum TranscriptionService {
    public static func make(
        worker: TranscriptionWorker, batch: Int, interval: Duration, report: @escaping @Sendable (String) -> Void
    ) -> PeriodicWorker {
        PeriodicWorker(
            name: "transcripts", doing: "transcribing", interval: interval, idle: TranscriptionWorker.Summary(),
            pass: { try await worker.transcribeDue(limit: batch) }, describe: describe, report: report)
    }

    /// One line about a pass (counts and seconds, never words).
    public static func describe(_ pass: TranscriptionWorker.Summary) -> String {
        "transcripts: \(pass.transcribed) calls transcribed (\(Int(pass.seconds.rounded())) s of audio), "
            + "\(pass.redacted) provider transcripts redacted, \(pass.unreadable) recordings unreadable"
    }
}

/// The audit chainer.
public enum AuditChainService {
    public static func make(
        chainer: AuditChainer, interval: Duration, report: @escaping @Sendable (String) -> Void
    ) -> PeriodicWorker {
        PeriodicWorker(
            name: "audit", doing: "linking", interval: interval, idle: AuditChainer.Summary(),
            pass: { try await chainer.linkPending() }, describe: describe, report: report)
    }

    /// One line about a pass.
    public static func describe(_ pass: AuditChainer.Summary) -> String {
        "audit: \(pass.linked) events linked in \(pass.chains) chains, \(pass.checkpointed) heads checkpointed"
            + (pass.refused > 0 ? ", \(pass.refused) refused" : "")
            + pass.alerts.map { "\nALERT: audit: \($0)" }.joined()
    }
}

/// The compliance workers: the retention purge with the access-alert scan (every minute), and
/// the mailer (every few seconds, so that an owner hears of a break-glass at once).
public enum ComplianceWorkService {
    /// One pass of the purge and the scan.
    public struct Summary: Sendable, Equatable {
        public var purge = ComplianceOperations.PurgeSummary()
        public var alerts = 0
        public init() {}
    }

    public static func pass(operations: ComplianceOperations) async throws -> Summary {
        var summary = Summary()
        summary.purge = try await operations.purge()
        summary.alerts = try await operations.scanAlerts()
        return summary
    }

    public static func make(
        operations: ComplianceOperations, interval: Duration, report: @escaping @Sendable (String) -> Void
    ) -> PeriodicWorker {
        PeriodicWorker(
            name: "compliance", doing: "purging expired data and raising alerts", interval: interval, idle: Summary(),
            pass: { try await pass(operations: operations) }, describe: describe, report: report)
    }

    public static func mail(mailer: Mailer, interval: Duration, report: @escaping @Sendable (String) -> Void)
        -> PeriodicWorker
    {
        PeriodicWorker(
            name: "mail", doing: "sending notifications", interval: interval, idle: Mailer.Summary(),
            pass: { try await mailer.deliverDue() }, describe: describe, report: report)
    }

    /// One line about a pass (counts only).
    public static func describe(_ pass: Summary) -> String {
        let purge = pass.purge
        return "compliance: purged \(purge.recordings) recordings, \(purge.transcripts) transcripts, "
            + "\(purge.formFields) form fields and \(purge.leads) leads in \(purge.practices) practices "
            + "(\(purge.held) held whole); \(pass.alerts) alerts raised"
    }

    public static func describe(_ pass: Mailer.Summary) -> String {
        "mail: \(pass.sent) emails sent for \(pass.notifications) notifications, \(pass.retrying) to retry, "
            + "\(pass.failed) failed"
    }
}
