/// A client of the Enclave API, generated from `Sources/EnclaveHTTP/openapi.yaml` (this target's
/// `openapi.yaml` is a link to it) by swift-openapi-generator: a change to the spec that breaks
/// a call fails to compile. The tests use it over swift-openapi-async-http-client.
public enum EnclaveAPIClient {}
