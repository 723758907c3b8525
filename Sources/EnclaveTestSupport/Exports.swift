// The tests' fixtures build on the disposable databases, which the benchmarks use too: a test
// that imports EnclaveTestSupport gets both.
@_exported import EnclaveScratchDatabase
