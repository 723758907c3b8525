/// The schema this build was written against.
public enum SchemaVersion {
    /// The newest numbered migration in `sql/` when this binary was built. `/readyz` compares it
    /// with the database's (`enclave_private.schema_version()`), so a server never needs `sql/`
    /// at run time. A test fails when a migration is added without raising it.
    public static let expected = 27
}
