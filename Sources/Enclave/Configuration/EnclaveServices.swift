import Foundation
import Postgres
import Sealing

/// The service layer, wired once: the service role's connection pool, the authentication role's
/// small pool (MFA and re-authentication only), the master keys checked
/// against the registry, one key store (so one cache of unwrapped data keys), and every service
/// over them. `enclave serve`, the demo, the benchmarks and the test fixtures all build it here.
public struct EnclaveServices: Sendable {
    /// What may differ between a deployment, a demo and a test.
    public struct Options: Sendable {
        /// Connections in the service role's pool.
        public var connections: Int
        /// Connections in the authentication role's pool.
        public var authConnections: Int
        /// Session timeouts, password cost, TOTP window.
        public var identity: IdentityService.Policy
        /// The clock signatures and codes are checked against.
        public var clock: @Sendable () -> Date
        /// Password derivations at once (default: the machine's cores); past it, 503.
        public var passwordWork: Int
        /// Hosts recording callbacks may name (`MediaHosts`, `ENCLAVE_MEDIA_HOSTS`).
        public var mediaHosts: Set<String>

        public init(
            connections: Int = 10, authConnections: Int = 2, identity: IdentityService.Policy = .init(),
            clock: @escaping @Sendable () -> Date = Date.init,
            passwordWork: Int = ProcessInfo.processInfo.activeProcessorCount,
            mediaHosts: Set<String> = MediaHosts.default
        ) {
            self.connections = connections
            self.authConnections = authConnections
            self.identity = identity
            self.clock = clock
            self.passwordWork = passwordWork
            self.mediaHosts = mediaHosts
        }
    }

    /// The service role's pool (`enclave_app`).
    public let pool: ConnectionPool
    /// The authentication role's pool (`enclave_auth`): only it marks a session MFA-verified or
    /// re-authenticated, so an injection through the service role cannot.
    public let authPool: ConnectionPool
    /// The master keys that wrap data keys, TOTP seeds and ingest secrets.
    public let masterKeys: any MasterKeyProvider
    /// The master key version new wraps use.
    public let masterKeyVersion: UInt32
    /// Data keys, unwrapped through one bounded cache.
    public let keys: TenantKeyStore
    public let identity: IdentityService
    public let access: PracticeAccess
    public let agreements: AgreementService
    public let sources: TrackingSources
    public let leads: LeadService
    public let ingest: IngestService
    public let webhooks: WebhookEndpoints
    /// Break-glass, retention settings and legal holds, alerts, the owner's export.
    public let compliance: ComplianceService
    /// Patients' requests: lookup, access report, request log, erasure and restriction.
    public let patients: PatientRights
    /// A practice's keyword sets and the tag counts of its calls.
    public let keywords: KeywordSets
    /// A practice's audit trail and accounting of disclosures.
    public let auditLog: AuditLog
    /// Lead counts by day and attribution (the dashboard, the agency overview).
    public let reports: LeadReports
    /// Qualification, spend and the ROI reports.
    public let value: LeadValue
    /// Twilio-compatible voice capture.
    public let twilio: TwilioCapture
    /// The website snippet's capture: visitor sessions, pool numbers, forms.
    public let web: WebCapture

    /// Wires the services over a pool and master keys the caller already checked.
    public init(
        pool: ConnectionPool, authPool: ConnectionPool, masterKeys: any MasterKeyProvider, masterKeyVersion: UInt32,
        options: Options = Options()
    ) {
        self.pool = pool
        self.authPool = authPool
        self.masterKeys = masterKeys
        self.masterKeyVersion = masterKeyVersion
        keys = TenantKeyStore(provider: masterKeys)
        identity = IdentityService(
            pool: pool, authPool: authPool, masterKeys: masterKeys, masterKeyVersion: masterKeyVersion,
            policy: options.identity, passwordWork: PasswordWork(limit: options.passwordWork))
        access = PracticeAccess(pool: pool)
        agreements = AgreementService(identity: identity)
        sources = TrackingSources(access: access, masterKeys: masterKeys, masterKeyVersion: masterKeyVersion)
        leads = LeadService(access: access, keys: keys)
        ingest = IngestService(pool: pool, keys: keys, now: options.clock)
        webhooks = WebhookEndpoints(access: access, keys: keys)
        compliance = ComplianceService(identity: identity, access: access, keys: keys)
        patients = PatientRights(identity: identity, keys: keys)
        keywords = KeywordSets(identity: identity, access: access, keys: keys)
        auditLog = AuditLog(identity: identity)
        reports = LeadReports(access: access, agreements: agreements)
        value = LeadValue(access: access, agreements: agreements)
        twilio = TwilioCapture(ingest: ingest, mediaHosts: options.mediaHosts)
        web = WebCapture(ingest: ingest)
    }

    /// Connects as the service and authentication roles, loads the master key file and checks it
    /// against the registry, then wires the services.
    ///
    /// - Throws: a `ConfigurationError` for a missing, too-open or wrong key file, or a database
    ///   without a registered master key; the pool is closed again.
    public static func open(
        database: ConnectionConfiguration, authDatabase: ConnectionConfiguration, masterKeyFile path: String,
        options: Options = Options()
    ) async throws -> EnclaveServices {
        let pool = ConnectionPool(configuration: database, options: .init(maxConnections: options.connections))
        let authPool = ConnectionPool(
            configuration: authDatabase, options: .init(maxConnections: options.authConnections))
        do {
            let file = try MasterKeyFile.load(path: path)
            let active = try await MasterKeyRegistry.verify(file, pool: pool)
            return EnclaveServices(
                pool: pool, authPool: authPool, masterKeys: file, masterKeyVersion: active, options: options)
        } catch {
            await pool.close()
            await authPool.close()
            throw error
        }
    }

    /// Closes the pools once work in flight has finished.
    public func close() async {
        await pool.close()
        await authPool.close()
    }
}
