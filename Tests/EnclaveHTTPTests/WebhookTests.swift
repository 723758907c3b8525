import Enclave
import EnclaveHTTPTestSupport
import EnclaveTestSupport
import EnclaveWorkers
import Foundation
import Hummingbird
import HummingbirdTLS
import NIOSSL
import Postgres
import Sealing
import Testing

@testable import EnclaveHTTP

/// A practice's own HTTPS system: records what arrives at /<name>; answers 500 to the first
/// delivery at /flaky.
struct Receiver: Sendable {
    struct Delivery: Sendable {
        let endpoint: String
        let body: [UInt8]
        let signature: String
        let deliveryID: String
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    let port: Int
    let deliveries: Locked<[Delivery]>

    static func with(directory: String, _ body: (Receiver) async throws -> Void) async throws {
        let deliveries = Locked<[Delivery]>([])
        let router = Router()
        router.post("/:name") { request, context -> Response in
            let name = context.parameters.get("name") ?? ""
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let count = deliveries.withLock { list -> Int in
                list.append(
                    Delivery(
                        endpoint: name, body: Array(bytes.readableBytesView),
                        signature: request.headers.first { $0.name.canonicalName == "enclave-signature" }?.value ?? "",
                        deliveryID: request.headers.first { $0.name.canonicalName == "enclave-delivery" }?.value ?? ""))
                return list.filter { $0.endpoint == name }.count
            }
            return Response(status: name == "flaky" && count == 1 ? .internalServerError : .noContent)
        }
        let port = Locked<Int>(0)
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile("\(directory)/cert.pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: "\(directory)/key.pem", format: .pem)))
        let app = Application(
            router: router, server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port ?? 0 } })
        let running = Task { try await app.run() }
        try await waitUntil("the receiver listens") { port.value != 0 }
        do {
            try await body(Receiver(port: port.value, deliveries: deliveries))
        } catch {
            running.cancel()
            throw error
        }
        running.cancel()
        _ = try? await running.value
    }
}

@Suite("HIPAA-mode webhooks")
struct WebhookTests {
    /// The tests' receiver listens on loopback, which deliveries may reach only when allowed.
    static func loopbackAllowed() throws -> EgressPolicy {
        try EgressPolicy.fromEnvironment([EgressPolicy.allowVariable: "127.0.0.0/8,::1"])
    }

    @Test("the worker says plainly that it cannot connect to the database, and keeps trying")
    func workerWithoutDatabase() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-worker-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pool = ConnectionPool(
            configuration: try ConnectionConfiguration("postgresql://enclave_maint:pw@127.0.0.1:1/enclave"),
            options: .init(maxConnections: 1, checkoutTimeout: .seconds(1)))
        let deliverer = WebhookDeliverer(
            maintenance: MaintenanceContext(pool: pool),
            keys: TenantKeyStore(provider: try MasterKeyFile.create(path: "\(directory)/kek")),
            transport: try HTTPWebhookTransport())
        let reports = Locked<[String]>([])
        let service = WebhookDeliveryService.make(
            deliverer: deliverer, interval: .milliseconds(50), report: { line in reports.withLock { $0.append(line) } })
        let running = Task { try await service.run() }
        try await waitUntil("two failed passes are reported") {
            reports.value.filter { $0.hasPrefix("webhooks: cannot connect to the database (") }.count >= 2
        }
        running.cancel()
        _ = try? await running.value
    }

    @Test("without an allowlist, a delivery to a receiver on loopback is refused after resolution and nothing arrives")
    func egressRefused() async throws {
        try await LiveServer.with { server in
            try await Receiver.with(directory: server.directory) { receiver in
                let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
                let added = try await server.request(
                    "POST", "/v1/practices/\(server.practice)/webhooks", token: token,
                    body: Array("{\"url\": \"https://localhost:\(receiver.port)/plain\", \"baa_covered\": false}".utf8))
                #expect(added.status == 201)
                #expect(
                    try await server.signedCall(
                        #"{"caller_number": "+1 555 010 7700", "started_at": "2026-11-29T12:00:00Z"}"#, key: "egress-1"
                    ).status == 201)
                let transport = try HTTPWebhookTransport(caFile: "\(server.directory)/cert.pem")
                let pass = try await WebhookDeliverer(
                    maintenance: server.maintenance, keys: server.store, transport: transport
                ).deliverDue()
                #expect(pass.delivered == 0)
                #expect(pass.retrying == 1)
                #expect(receiver.deliveries.value.isEmpty)
                let superuser = try await server.database.connect()
                defer { Task { await superuser.close() } }
                let error = try await superuser.query(
                    "select last_error from enclave.outbox where kind = 'webhook'"
                ).first?.decode(String?.self, "last_error")
                #expect(error?.contains("loopback") == true, "\(error ?? "none")")
            }
        }
    }

    @Test(
        "an endpoint not covered by a BAA receives no PHI; a covered HTTPS endpoint does, recorded as phi.disclosed; deliveries are signed and retried"
    )
    func phiOnlyToCoveredEndpoints() async throws {
        try await LiveServer.with { server in
            try await Receiver.with(directory: server.directory) { receiver in
                let token = try await server.mfaSession(email: "owner@smile.test", password: "owner password 12")
                func add(_ url: String, covered: Bool) async throws -> LiveServer.Reply {
                    try await server.request(
                        "POST", "/v1/practices/\(server.practice)/webhooks", token: token,
                        body: Array("{\"url\": \"\(url)\", \"baa_covered\": \(covered)}".utf8))
                }
                let base = "https://localhost:\(receiver.port)"
                // Marking an endpoint as BAA-covered needs a re-authentication in the last five minutes.
                let superuser = try await server.database.connect()
                try await superuser.query("update enclave.sessions set authenticated_at = now() - interval '6 minutes'")
                let stale = try await add("\(base)/covered", covered: true)
                #expect(stale.status == 403)
                #expect(stale.json["type"] as? String == "https://enclave.dev/problems/reauthentication-required")
                try await superuser.query("update enclave.sessions set authenticated_at = now()")
                let plain = try await add("\(base)/plain", covered: false)
                #expect(plain.status == 201, "\(plain.body)")
                let covered = try await add("\(base)/covered", covered: true)
                #expect(covered.status == 201)
                let flaky = try await add("\(base)/flaky", covered: false)
                #expect(flaky.status == 201)
                let insecure = try await add("http://localhost:\(receiver.port)/plain", covered: false)
                #expect(insecure.status == 400, "plain HTTP is refused in HIPAA mode")
                #expect(try await add("ftp://example.test/x", covered: false).status == 400)
                #expect(try await add("https://user:pw@example.test/x", covered: false).status == 400)
                let listed = try await server.request("GET", "/v1/practices/\(server.practice)/webhooks", token: token)
                #expect(listed.array.count == 3)
                let plainSecret = try #require(plain.json["secret"] as? String)
                let coveredSecret = try #require(covered.json["secret"] as? String)
                #expect(!listed.body.contains(plainSecret))

                // An agency member or an ingest credential cannot add endpoints: the table is read-only to the service.
                let app = try await server.database.connect("ENCLAVE_DATABASE_URL")
                await #expect(throws: PostgresError.self) {
                    try await app.query(
                        "insert into enclave.webhook_endpoints (tenant_id, url, signing_secret) values ($1, 'https://x.test', '\\x00')",
                        [server.practice])
                }
                await app.close()

                let call = try await server.signedCall(
                    #"{"caller_number": "+1 555 010 7788", "caller_name": "Jane Patient", "started_at": "2026-11-29T12:00:00Z", "transcript": "I have chest pain", "attribution": {"source": "google", "campaign": "implants"}}"#,
                    key: "hook-1")
                let lead = try #require(call.json["lead_id"] as? String)

                let clock = Locked(Date())
                let transport = try HTTPWebhookTransport(
                    caFile: "\(server.directory)/cert.pem", egress: try Self.loopbackAllowed())
                let deliverer = WebhookDeliverer(
                    maintenance: server.maintenance, keys: server.store, transport: transport,
                    policy: .init(firstDelay: 60), now: { clock.value })
                let first = try await deliverer.deliverDue()
                #expect(first.delivered == 2)
                #expect(first.retrying == 1)
                #expect(first.disclosed == 1)
                #expect(try await deliverer.deliverDue() == WebhookDeliverer.Summary(), "the retry waits its turn")
                clock.withLock { $0 = $0.addingTimeInterval(61) }
                let second = try await deliverer.deliverDue()
                #expect(second.delivered == 1)
                try await transport.shutdown()

                let got = receiver.deliveries.value
                #expect(got.count == 4)
                // Whole values only: short digit runs also occur in the random ids.
                let phi = [
                    "Jane", "Patient", "15550107788", "555 010 7788", "chest", "caller_number", "transcript", "\"phi\"",
                ]
                for delivery in got where delivery.endpoint != "covered" {
                    for word in phi { #expect(!delivery.text.contains(word), "\(delivery.endpoint) got \(word)") }
                    #expect(delivery.text.contains(lead))
                    #expect(delivery.text.contains("implants"), "attribution is not PHI")
                }
                let plainDelivery = try #require(got.first { $0.endpoint == "plain" })
                #expect(
                    try IngestSignature(header: plainDelivery.signature).mac == expectedMAC(plainDelivery, plainSecret))
                let coveredDelivery = try #require(got.first { $0.endpoint == "covered" })
                #expect(coveredDelivery.text.contains("Jane Patient"))
                #expect(coveredDelivery.text.contains("I have chest pain"))
                #expect(
                    try IngestSignature(header: coveredDelivery.signature).mac
                        == expectedMAC(coveredDelivery, coveredSecret))
                #expect(
                    try IngestSignature(header: coveredDelivery.signature).mac
                        != expectedMAC(coveredDelivery, plainSecret))
                let flakyIDs = Set(got.filter { $0.endpoint == "flaky" }.map(\.deliveryID))
                #expect(flakyIDs.count == 1, "a retry carries the same delivery id")

                let disclosed = try await superuser.query(
                    "select object_id, actor_kind, details from enclave.audit_events where action = 'phi.disclosed'")
                #expect(disclosed.count == 1)
                #expect(try disclosed.first?.decode(String.self, "object_id") == lead)
                let notices = try await superuser.query(
                    "select payload::text as payload from enclave.outbox where kind = 'notification' and payload ->> 'event' = 'lead.created'"
                )
                #expect(notices.count == 1)
                // Marking the endpoint covered raised an alert for the owner, with its own notification.
                let alerts = try await superuser.query(
                    "select a.kind from enclave.alerts a join enclave.outbox o on o.payload ->> 'alert' = a.id::text")
                #expect(try alerts.map { try $0.decode(String.self, "kind") } == ["webhook_covered"])
                let notice = try #require(try notices.first?.decode(String.self, "payload"))
                for word in phi { #expect(!notice.contains(word), "the notification carries \(word)") }
                #expect(notice.contains(lead))
                await superuser.close()

                // After a key rotation and a re-encryption that destroys the old version, the
                // endpoints still sign (their secrets were re-sealed), and PHI still reaches only the covered one.
                _ = try await server.keys.rotate(tenants: [server.practice])
                let report = try await Reencryptor(keys: server.keys).reencrypt(server.practice, destroyUnused: true)
                #expect(report.unusedVersions == [1])
                let later = try await server.signedCall(
                    #"{"caller_number": "+1 555 010 7799", "caller_name": "Jo Patient", "started_at": "2026-11-29T12:30:00Z"}"#,
                    key: "hook-2")
                let laterLead = try #require(later.json["lead_id"] as? String)
                let transport2 = try HTTPWebhookTransport(
                    caFile: "\(server.directory)/cert.pem", egress: try Self.loopbackAllowed())
                let third = try await WebhookDeliverer(
                    maintenance: server.maintenance, keys: server.store, transport: transport2,
                    now: { clock.value }
                ).deliverDue()
                try await transport2.shutdown()
                #expect(third.delivered == 3)
                let fresh = receiver.deliveries.value.filter { $0.text.contains(laterLead) }
                #expect(fresh.count == 3)
                for delivery in fresh {
                    let secret =
                        delivery.endpoint == "covered"
                        ? coveredSecret : delivery.endpoint == "plain" ? plainSecret : nil
                    if let secret {
                        #expect(try IngestSignature(header: delivery.signature).mac == expectedMAC(delivery, secret))
                    }
                    #expect(delivery.text.contains("Jo Patient") == (delivery.endpoint == "covered"))
                }

                // A removed endpoint gets nothing more.
                let plainID = try #require((plain.json["endpoint"] as? [String: Any])?["id"] as? String)
                #expect(
                    try await server.request(
                        "DELETE", "/v1/practices/\(server.practice)/webhooks/\(plainID)", token: token
                    ).status == 204)
                #expect(
                    try await server.request(
                        "DELETE", "/v1/practices/\(server.practice)/webhooks/\(plainID)", token: token
                    ).status == 404)
            }
        }
    }

    func expectedMAC(_ delivery: Receiver.Delivery, _ secret: String) throws -> [UInt8] {
        let signature = try IngestSignature(header: delivery.signature)
        return try Array(secret.utf8).withUnsafeBytes {
            try HMAC.authenticationCode(
                .sha256, key: $0, message: Array("\(signature.timestamp).".utf8) + delivery.body)
        }
    }
}
