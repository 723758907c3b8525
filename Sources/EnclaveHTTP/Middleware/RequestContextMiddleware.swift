import Enclave
import EnclaveConsole
import Foundation
import HTTPTypes
import Hummingbird

/// Sets `RequestValues` for everything inside it (the API and the console): the bearer token
/// (or, for a recording's GET only, the console's session cookie), the request id, the client's
/// address and user agent, and the target and Host a provider's signature covers. Answers with
/// the request id.
///
/// The client's address is the peer's, unless the peer is one of `trustedProxies`: then it is the
/// last address of `X-Forwarded-For` that is not itself a trusted proxy. Anyone else's
/// `X-Forwarded-For` is ignored, so a client cannot choose its own address.
struct RequestContextMiddleware: RouterMiddleware {
    typealias Context = EnclaveRequestContext
    let trustedProxies: [EgressPolicy.Block]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var values = RequestValues()
        values.contentType = request.headers[.contentType].map { String($0.prefix(100)) }
        values.target = request.uri.string
        values.host = request.head.authority.map { String($0.prefix(300)) }
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
            values.token = SessionToken(String(authorization.dropFirst(7)))
        } else if request.method == .get, Self.isRecording(request.uri.path),
            let cookie = request.cookies[Console.sessionCookieName], !cookie.value.isEmpty
        {
            // The console's audio player cannot send a header: a recording's GET (never a
            // write) also takes the console's SameSite=Strict session cookie.
            values.token = SessionToken(cookie.value)
        }
        values.context.requestID =
            request.headers[.requestID].map { String($0.prefix(100)) } ?? UUID().uuidString.lowercased()
        values.context.client = ClientInfo(
            address: Self.clientAddress(
                peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: .xForwardedFor],
                trusting: trustedProxies),
            userAgent: request.headers[.userAgent].map { String($0.prefix(300)) })
        var response = try await RequestValues.$current.withValue(values) { try await next(request, context) }
        response.headers[.requestID] = values.context.requestID
        return response
    }

    /// The client's address: the peer's, or behind trusted proxies the last forwarded address
    /// that is not a trusted proxy (a proxy appends the address it received the request from).
    static func clientAddress(peer: String?, forwardedFor: [String], trusting proxies: [EgressPolicy.Block])
        -> String?
    {
        guard let peer, let address = EgressPolicy.IPAddress(peer), proxies.contains(where: { $0.contains(address) })
        else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard let forwarded = EgressPolicy.IPAddress(hop) else { return peer }
            if !proxies.contains(where: { $0.contains(forwarded) }) { return forwarded.description }
        }
        return peer
    }

    /// `/v1/practices/{id}/leads/{id}/recording`.
    static func isRecording(_ path: String) -> Bool {
        let parts = path.split(separator: "/")
        return parts.count == 6 && parts[0] == "v1" && parts[1] == "practices" && parts[3] == "leads"
            && parts[5] == "recording"
    }
}
