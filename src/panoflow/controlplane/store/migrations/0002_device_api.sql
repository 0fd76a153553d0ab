-- panoflow control plane, schema version 2: the device API (docs/device-protocol.md sections 1, 2 and 4).
-- Portable SQL (SQLite and PostgreSQL): TEXT ids, BIGINT nanosecond clocks, documents as JSON text.
--
-- Changed meaning of an existing column: `signals.delivered` now means "acknowledged by the device" (the device
-- listed the signal's id in a sync's AckedSignals). Signals are sent on every sync until then (at least once).

CREATE TABLE device_credentials (
    id TEXT PRIMARY KEY,               -- sha256 hex of the device token (the token itself is never stored)
    device_id TEXT NOT NULL,
    revoked INTEGER NOT NULL,          -- 1 once the device was deleted: its token then gets 403, not 401
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL                  -- {"ClaimedTime", "Hostname"}
);
CREATE INDEX device_credentials_device ON device_credentials (device_id);

-- The newest 10 000 log lines per device, as a ring: line number `seq` lives in slot seq % 10000
-- (id = '<device id>/<slot>'), so appending overwrites the oldest line and never needs a count.
CREATE TABLE device_logs (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq BIGINT NOT NULL,               -- per-device line number, increasing
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL                  -- {"Time", "Instance", "Node", "Line", "ReceivedTime"}
);
CREATE INDEX device_logs_device ON device_logs (device_id, seq);

-- Per device: the next log line number.
CREATE TABLE device_log_heads (
    id TEXT PRIMARY KEY,               -- device id
    next_seq BIGINT NOT NULL,
    created_ns BIGINT NOT NULL,
    doc TEXT NOT NULL
);

-- Per device: the latest metrics text the device sent.
CREATE TABLE device_metrics (
    id TEXT PRIMARY KEY,               -- device id
    created_ns BIGINT NOT NULL,        -- when the text was received
    doc TEXT NOT NULL                  -- {"Text", "ReceivedTime"}
);
