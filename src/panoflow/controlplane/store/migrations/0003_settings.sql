-- panoflow control plane, schema version 3: settings the server keeps for itself (docs/security.md).
-- Portable SQL (SQLite and PostgreSQL): TEXT ids, BIGINT nanosecond clocks, documents as JSON text.
--
-- Row `tls_ca`: the TLS certificate authority `control-plane serve` creates once ({"CertificatePem", "KeyPem"});
-- its certificate goes into every provisioning bundle, its key never leaves this table.

CREATE TABLE settings (
    id TEXT PRIMARY KEY,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
