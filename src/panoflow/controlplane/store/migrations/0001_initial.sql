-- panoflow control plane, schema version 1.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids, BIGINT nanosecond clocks for ordering, documents as JSON text.
-- Each resource table keeps the columns the API filters or sorts on; everything else lives in `doc`.

CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,               -- AccessKeyId
    secret TEXT NOT NULL,              -- SigV4 needs the secret itself to verify a signature (see docs)
    status TEXT NOT NULL,              -- Active | Inactive
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    aggregated_status TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);

CREATE TABLE claim_tokens (
    id TEXT PRIMARY KEY,               -- sha256 hex of the one-time token (the token itself is never stored)
    device_id TEXT NOT NULL,
    expires_ns BIGINT NOT NULL,
    used_ns BIGINT,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX claim_tokens_device ON claim_tokens (device_id);

CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE package_versions (
    id TEXT PRIMARY KEY,               -- <package id>/<version>/<patch>
    package_id TEXT NOT NULL,
    version TEXT NOT NULL,
    patch TEXT NOT NULL,
    is_latest INTEGER NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX package_versions_package ON package_versions (package_id, version);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    package_id TEXT NOT NULL,
    package_name TEXT NOT NULL,
    package_version TEXT NOT NULL,
    patch_version TEXT NOT NULL,
    owner TEXT NOT NULL,
    category TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX nodes_package ON nodes (package_id);

CREATE TABLE template_jobs (
    id TEXT PRIMARY KEY,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);

CREATE TABLE application_instances (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX application_instances_device ON application_instances (device_id);

CREATE TABLE signals (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    node_instance_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX signals_instance ON signals (instance_id, delivered);

CREATE TABLE device_jobs (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX device_jobs_device ON device_jobs (device_id);

CREATE TABLE tags (
    id TEXT PRIMARY KEY,               -- the resource ARN
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL                  -- {"key": "value"}
);
