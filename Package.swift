// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Enclave",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "enclave", targets: ["EnclaveCLI"]),
        .executable(name: "enclave-bench", targets: ["EnclaveBench"]),
        .library(name: "Enclave", targets: ["Enclave"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "Sealing", targets: ["Sealing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strict),
        .target(name: "Sealing", dependencies: ["COpenSSL"], swiftSettings: strict),
        // Speech to text on this machine: Debian's pocketsphinx in process (the worker's).
        .systemLibrary(
            name: "CPocketSphinx",
            pkgConfig: "pocketsphinx",
            providers: [.apt(["libpocketsphinx-dev", "pocketsphinx-en-us"])]
        ),
        .target(name: "Speech", dependencies: ["CPocketSphinx"], swiftSettings: strict),
        .target(name: "Enclave", dependencies: ["Postgres", "Sealing", "Speech"], swiftSettings: strict),
        .systemLibrary(
            name: "CQRencode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // The web console: server-rendered pages over the service layer.
        .target(
            name: "EnclaveConsole",
            dependencies: [
                "Enclave", "Sealing", "CQRencode",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [.copy("Resources/templates"), .copy("Resources/static")],
            swiftSettings: strict
        ),
        // The workers: periodic passes as services, and their transports (SMTP, HTTPS webhooks).
        .target(
            name: "EnclaveWorkers",
            dependencies: [
                "Enclave",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "EnclaveHTTP",
            dependencies: [
                "Enclave", "EnclaveConsole",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict,
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        .executableTarget(
            name: "EnclaveCLI",
            dependencies: [
                "Enclave",
                "EnclaveConsole",
                "EnclaveHTTP",
                "EnclaveWorkers",
                "Speech",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "EnclaveBench",
            dependencies: [
                "Sealing", "Enclave", "Postgres", "EnclaveScratchDatabase", "Speech", "EnclaveSpeechCorpus",
            ],
            swiftSettings: strict),
        // A client generated from the API's spec, for tests.
        .target(
            name: "EnclaveAPIClient",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            swiftSettings: strict,
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // What the tests and the benchmarks share: disposable databases on the dev cluster,
        // migrated from one shared template, and synthetic users signed in with TOTP.
        .target(
            name: "EnclaveScratchDatabase", dependencies: ["Postgres", "Sealing", "Enclave"], swiftSettings: strict),
        // Scripted calls with known PHI, spoken as telephone audio: the transcription tests and
        // benchmark's corpus.
        .target(name: "EnclaveSpeechCorpus", swiftSettings: strict),
        // The tests' own helpers, over what they share with the benchmarks.
        .target(
            name: "EnclaveTestSupport", dependencies: ["Postgres", "Sealing", "Enclave", "EnclaveScratchDatabase"],
            swiftSettings: strict),
        // The live HTTPS server fixture and the generated client, apart from the database
        // fixtures so that the benchmarks and the database tests neither wait for nor link the
        // HTTP stack.
        .target(
            name: "EnclaveHTTPTestSupport",
            dependencies: [
                "Enclave", "EnclaveHTTP", "EnclaveConsole", "EnclaveAPIClient", "EnclaveTestSupport", "Postgres",
                "Sealing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "PostgresTests", dependencies: ["Postgres", "Enclave", "EnclaveTestSupport"], swiftSettings: strict),
        .testTarget(name: "SealingTests", dependencies: ["Sealing"], swiftSettings: strict),
        .testTarget(name: "SpeechTests", dependencies: ["Speech"], swiftSettings: strict),
        // Tests that need no database.
        .testTarget(name: "PostgresUnitTests", dependencies: ["Postgres"], swiftSettings: strict),
        .testTarget(name: "EnclaveUnitTests", dependencies: ["Enclave", "Postgres"], swiftSettings: strict),
        .testTarget(
            name: "EnclaveTests",
            dependencies: ["Enclave", "Postgres", "EnclaveTestSupport", "EnclaveSpeechCorpus"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EnclaveHTTPTests",
            dependencies: [
                "EnclaveHTTP", "EnclaveWorkers", "Enclave", "Postgres", "Sealing", "Speech", "EnclaveTestSupport",
                "EnclaveHTTPTestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                "EnclaveAPIClient",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EnclaveCLITests",
            dependencies: ["Enclave", "Postgres", "Sealing", "EnclaveTestSupport"],
            swiftSettings: strict
        ),
    ]
)
