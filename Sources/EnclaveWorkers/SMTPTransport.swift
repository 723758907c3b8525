import Enclave
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Mail over SMTP (RFC 5321) with STARTTLS (RFC 3207): required unless the server is on
/// loopback. Credentials (AUTH PLAIN, only over TLS) come from the environment. One connection
/// per message; the worker sends few.
public struct SMTPTransport: MailTransport {
    public let host: String
    public let port: Int
    public let username: String?
    public let password: String?
    public let caFile: String?
    public let timeout: TimeAmount

    public init(
        host: String, port: Int, username: String? = nil, password: String? = nil, caFile: String? = nil,
        timeout: TimeAmount = .seconds(20)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.caFile = caFile
        self.timeout = timeout
    }

    /// From `ENCLAVE_SMTP_URL` (smtp://host:port), `ENCLAVE_SMTP_USERNAME`,
    /// `ENCLAVE_SMTP_PASSWORD` and `ENCLAVE_SMTP_CA_FILE`; nil when the URL is not set.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> SMTPTransport?
    {
        guard let text = environment["ENCLAVE_SMTP_URL"], !text.isEmpty else { return nil }
        guard let url = URL(string: text), url.scheme == "smtp", let host = url.host, url.user == nil else {
            throw ConfigurationError(
                "ENCLAVE_SMTP_URL is smtp://host[:port] (credentials go in ENCLAVE_SMTP_USERNAME and ENCLAVE_SMTP_PASSWORD)"
            )
        }
        return SMTPTransport(
            host: host, port: url.port ?? 587, username: environment["ENCLAVE_SMTP_USERNAME"],
            password: environment["ENCLAVE_SMTP_PASSWORD"], caFile: environment["ENCLAVE_SMTP_CA_FILE"])
    }

    var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) }

    public func send(_ message: MailMessage) async throws {
        let replies = SMTPReplies()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(replies) }
            }
            .connect(host: host, port: port).get()
        do {
            try await converse(channel, replies, message)
            try? await channel.close()
        } catch {
            try? await channel.close()
            throw error
        }
    }

    private func converse(_ channel: any Channel, _ replies: SMTPReplies, _ message: MailMessage) async throws {
        func expect(_ command: String?, _ codes: Set<Int>) async throws -> SMTPReplies.Reply {
            let reply = try await replies.next(on: channel, sending: command, timeout: timeout)
            guard codes.contains(reply.code) else {
                // The server's words may echo an address; keep the code and the verb only.
                let verb = command?.split(separator: " ").first.map(String.init) ?? "greeting"
                throw SMTPError("the SMTP server refused \(verb) with \(reply.code)")
            }
            return reply
        }
        let hello = "EHLO enclave.invalid"
        _ = try await expect(nil, [220])
        var features = try await expect(hello, [250])
        var secure = false
        if features.lines.contains(where: { $0.uppercased().hasPrefix("STARTTLS") }) {
            _ = try await expect("STARTTLS", [220])
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile { tls.trustRoots = .file(caFile) }
            let context = try NIOSSLContext(configuration: tls)
            // SNI takes names only; an address is checked against the certificate's IP entries.
            let isAddress = host.contains(":") || host.split(separator: ".").allSatisfy { Int($0) != nil }
            try await replies.startTLS(on: channel) {
                try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host)
            }
            features = try await expect(hello, [250])
            secure = true
        } else if !isLoopback {
            throw SMTPError("the SMTP server at \(host) does not offer STARTTLS; mail goes only over TLS")
        }
        if let username, let password {
            guard secure else { throw SMTPError("SMTP credentials are sent only over TLS") }
            let token = Data(([0] + Array(username.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            _ = try await expect("AUTH PLAIN \(token)", [235])
        }
        _ = try await expect("MAIL FROM:<\(try Self.address(message.from))>", [250])
        _ = try await expect("RCPT TO:<\(try Self.address(message.to))>", [250, 251])
        _ = try await expect("DATA", [354])
        _ = try await expect(Self.data(message), [250])
        _ = try? await expect("QUIT", [221])
    }

    /// An address without anything that could break out of the command line.
    static func address(_ text: String) throws -> String {
        guard text.contains("@"), !text.contains(where: { $0.isNewline || $0 == "<" || $0 == ">" || $0 == " " }),
            text.utf8.count <= 320
        else { throw SMTPError("not a mail address the transport will send to") }
        return text
    }

    /// The message in DATA form: headers, a blank line, the body with leading dots doubled,
    /// CRLF line ends, and the final dot (which `next` sends as the command line).
    static func data(_ message: MailMessage) -> String {
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        let subject = message.subject.filter { !$0.isNewline }
        var lines = [
            "From: \(message.from)", "To: \(message.to)", "Subject: \(subject)", "Date: \(date.string(from: Date()))",
            "Message-ID: <\(UUID().uuidString.lowercased())@enclave.invalid>", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
        ]
        for line in message.body.split(separator: "\n", omittingEmptySubsequences: false) {
            let text = String(line).replacingOccurrences(of: "\r", with: "")
            lines.append(text.hasPrefix(".") ? "." + text : text)
        }
        lines.append(".")
        return lines.joined(separator: "\r\n")
    }
}

/// A refusal or failure of the SMTP conversation; never carries message content.
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Collects the server's replies (multi-line `250-…` up to `250 …`) and hands each to the
/// command waiting for it. Touched only on its channel's event loop.
final class SMTPReplies: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    struct Reply: Sendable {
        let code: Int
        let lines: [String]
    }

    private var buffer = ""
    private var lines: [String] = []
    private var ready: [Reply] = []
    private var waiting: [EventLoopPromise<Reply>] = []
    private var failure: (any Error)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer += bytes.readString(length: bytes.readableBytes) ?? ""
        guard buffer.utf8.count < 65536 else {
            fail(SMTPError("the SMTP server sent an over-long reply"))
            return
        }
        while let end = buffer.range(of: "\r\n") {
            let line = String(buffer[..<end.lowerBound])
            buffer.removeSubrange(..<end.upperBound)
            guard line.count >= 3, let code = Int(line.prefix(3)) else {
                fail(SMTPError("the SMTP server sent something that is not a reply"))
                return
            }
            lines.append(String(line.dropFirst(4)))
            if line.count == 3 || line[line.index(line.startIndex, offsetBy: 3)] == " " {
                deliver(Reply(code: code, lines: lines))
                lines = []
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(SMTPError("the SMTP server closed the connection"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(SMTPError("the SMTP connection failed (\(type(of: error)))"))
        context.close(promise: nil)
    }

    /// Puts `tls` in front of the channel after the server's 220 to STARTTLS. Anything that came
    /// in plaintext after the 220 (an attacker's injected replies) is dropped, in the same event
    /// loop turn that puts TLS in front, so that nothing read before TLS answers a command sent
    /// after it (RFC 3207 section 4.2).
    func startTLS(on channel: any Channel, _ makeTLS: @escaping @Sendable () throws -> any ChannelHandler)
        async throws
    {
        try await channel.eventLoop.submit {
            self.discardPlaintext()
            try channel.pipeline.syncOperations.addHandler(try makeTLS(), position: .first)
        }.get()
    }

    /// Replies and partial lines read so far and not yet taken. On the channel's event loop.
    private func discardPlaintext() {
        buffer = ""
        lines = []
        ready = []
    }

    /// Replies read and not yet taken (for tests).
    var pendingReplies: Int { ready.count }

    private func deliver(_ reply: Reply) {
        if waiting.isEmpty { ready.append(reply) } else { waiting.removeFirst().succeed(reply) }
    }

    private func fail(_ error: any Error) {
        failure = error
        for promise in waiting { promise.fail(error) }
        waiting = []
    }

    /// Sends `command` (if any) and waits for the next reply.
    func next(on channel: any Channel, sending command: String?, timeout: TimeAmount) async throws -> Reply {
        let loop = channel.eventLoop
        let reply = loop.flatSubmit { () -> EventLoopFuture<Reply> in
            if let command {
                channel.writeAndFlush(ByteBuffer(string: command + "\r\n"), promise: nil)
            }
            if !self.ready.isEmpty { return loop.makeSucceededFuture(self.ready.removeFirst()) }
            if let failure = self.failure { return loop.makeFailedFuture(failure) }
            let promise = loop.makePromise(of: Reply.self)
            self.waiting.append(promise)
            let timer = loop.scheduleTask(in: timeout) {
                // A promise completes once: take it out of the queue before failing it.
                if let index = self.waiting.firstIndex(where: { $0.futureResult === promise.futureResult }) {
                    self.waiting.remove(at: index)
                    promise.fail(SMTPError("the SMTP server did not answer in time"))
                }
            }
            promise.futureResult.whenComplete { _ in timer.cancel() }
            return promise.futureResult
        }
        return try await reply.get()
    }
}
