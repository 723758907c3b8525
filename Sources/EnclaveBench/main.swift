import Foundation

// enclave-bench [sealing|audit|audit-page [events]|patient [events]|recording [MB]|capture [calls]|reencrypt|gate [practices leads]|transcribe [calls]|all]: benchmarks with a reference measured in the same run.
// scripts/bench builds this in release mode and runs it against the dev cluster.
let mode = CommandLine.arguments.dropFirst().first ?? "all"
do {
    if mode == "sealing" || mode == "all" { try sealingBenchmark() }
    if mode == "audit" || mode == "all" {
        if mode == "all" { print("") }
        try await auditBenchmark()
    }
    if mode == "recording" || mode == "all" {
        if mode == "all" { print("") }
        let megabytes = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 200
        try await recordingBenchmark(megabytes: megabytes)
    }
    if mode == "capture" || mode == "all" {
        if mode == "all" { print("") }
        let calls = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 1_000
        try await captureBenchmark(calls: calls)
    }
    if mode == "reencrypt" || mode == "all" {
        if mode == "all" { print("") }
        try await reencryptBenchmark()
    }
    if mode == "audit-page" || mode == "all" {
        if mode == "all" { print("") }
        let events = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 1_000_000
        try await auditPageBenchmark(events: events)
    }
    if mode == "patient" || mode == "all" {
        if mode == "all" { print("") }
        let events = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 1_000_000
        try await patientReportBenchmark(events: events)
    }
    if mode == "gate" || mode == "all" {
        if mode == "all" { print("") }
        let practices = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 2_000
        let leads = CommandLine.arguments.dropFirst(3).first.flatMap { Int($0) } ?? 1_000
        try await gateBenchmark(practices: practices, leads: leads)
    }
    if mode == "transcribe" || mode == "all" {
        if mode == "all" { print("") }
        let calls = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 30
        try await transcribeBenchmark(calls: calls)
    }
} catch {
    FileHandle.standardError.write(Data("enclave-bench: \(error)\n".utf8))
    exit(1)
}
