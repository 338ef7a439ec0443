-- Timestamps are INTEGER microseconds since the Unix epoch (UTC); ids are
-- 16-byte BLOBs. STRICT tables refuse values of the wrong type.
CREATE TABLE users (
    id          BLOB PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    pseudonym   TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX users_created_at_idx ON users (created_at, id);

-- SQLite keeps the whole trail in one table; retention deletes by month instead
-- of dropping partitions.
CREATE TABLE audit_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB NOT NULL UNIQUE,
    occurred_at    INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    actor_kind     TEXT NOT NULL CHECK (actor_kind IN ('integration', 'operator', 'provider', 'system')),
    actor_id       TEXT,
    user_id        BLOB,
    user_pseudonym TEXT,
    credential_id  BLOB,
    flow_id        BLOB,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'rejected')),
    reason         TEXT,
    correlation_id TEXT,
    details        TEXT NOT NULL CHECK (json_valid(details) AND json_type(details) = 'object')
) STRICT;

CREATE INDEX audit_events_occurred_idx ON audit_events (occurred_at);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, seq) WHERE user_id IS NOT NULL;
