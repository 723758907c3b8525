public enum Enclave {}
