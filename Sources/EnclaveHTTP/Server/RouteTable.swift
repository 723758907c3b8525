import HTTPTypes
import Hummingbird
import Synchronization

/// The routes the API serves, to answer 405 (with `Allow`) rather than 404 when a path exists
/// but not with the request's method.
final class RouteTable: Sendable {
    private let routes = Mutex<[(pattern: [Substring?], method: String)]>([])

    /// Takes the routes of a router whose handlers are registered.
    func load(_ descriptions: [(path: String, method: String)]) {
        let parsed = descriptions.map { description in
            (
                pattern: description.path.split(separator: "/").map { segment -> Substring? in
                    segment.hasPrefix(":") || segment.hasPrefix("{") ? nil : segment
                },
                method: description.method
            )
        }
        routes.withLock { $0 = parsed }
    }

    /// The methods `path` is served with (empty when no route matches it).
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        return routes.withLock { routes in
            routes.filter { route in
                route.pattern.count == segments.count
                    && zip(route.pattern, segments).allSatisfy { pattern, segment in
                        pattern == nil || pattern == segment
                    }
            }.map(\.method)
        }.sorted()
    }
}
