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
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
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
        .target(name: "Postgres", dependencies: ["CLibPQ"], swiftSettings: strict),
        .target(name: "Sealing", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "Enclave", dependencies: ["Postgres", "Sealing"], swiftSettings: strict),
        .executableTarget(
            name: "EnclaveCLI",
            dependencies: [
                "Enclave",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "EnclaveBench", dependencies: ["Sealing", "Enclave", "Postgres", "EnclaveTestSupport"],
            swiftSettings: strict),
        .target(name: "EnclaveTestSupport", dependencies: ["Postgres"], swiftSettings: strict),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "EnclaveTestSupport"], swiftSettings: strict),
        .testTarget(name: "SealingTests", dependencies: ["Sealing"], swiftSettings: strict),
        .testTarget(
            name: "EnclaveTests",
            dependencies: ["Enclave", "Postgres", "EnclaveTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "EnclaveCLITests",
            dependencies: ["Enclave", "Postgres", "Sealing", "EnclaveTestSupport"],
            swiftSettings: strict
        ),
    ]
)
