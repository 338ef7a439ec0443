ALTER TABLE users ADD COLUMN idv_applicant_sealed BLOB;

CREATE TABLE flows (
    id                          BLOB PRIMARY KEY,
    user_id                     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    flow_type                   TEXT NOT NULL CHECK (flow_type IN ('registration', 'sign_in', 'step_up', 'recovery')),
    state                       TEXT NOT NULL CHECK (state IN ('pending', 'awaiting_verification', 'verified', 'in_review', 'completed', 'failed', 'expired', 'cancelled')),
    version                     INTEGER NOT NULL,
    identity_status             TEXT NOT NULL CHECK (identity_status IN ('not_required', 'pending', 'verified', 'in_review', 'failed')),
    idv_run_id                  TEXT UNIQUE,
    sdk_token_sealed            BLOB,
    possession_done             INTEGER NOT NULL,
    reference_stored            INTEGER NOT NULL,
    credential_id               BLOB,
    pending_credential          TEXT,
    failure_reason              TEXT,
    transaction_context_sealed  BLOB,
    transaction_context_sha256  TEXT,
    cross_platform              INTEGER NOT NULL,
    handoff_code_sha256         BLOB UNIQUE,
    handoff_expires_at          INTEGER,
    handoff_claimed_at          INTEGER,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    expires_at                  INTEGER NOT NULL,
    completed_at                INTEGER
) STRICT;

CREATE INDEX flows_user_idx ON flows (user_id, created_at DESC);

CREATE TABLE credentials (
    id              BLOB PRIMARY KEY,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    webauthn_id     TEXT NOT NULL UNIQUE,
    public_key      BLOB,
    aaguid          BLOB,
    sign_count      INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    transports      TEXT NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    platform        TEXT,
    device_label    TEXT,
    created_by_flow BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_used_at    INTEGER
) STRICT;

CREATE INDEX credentials_user_idx ON credentials (user_id, created_at);

CREATE TABLE biometric_references (
    user_id         BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed          BLOB NOT NULL,
    created_by_flow BLOB NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE idempotency_keys (
    scope          TEXT NOT NULL,
    key            TEXT NOT NULL,
    request_sha256 BLOB NOT NULL,
    status         INTEGER,
    body_sealed    BLOB,
    locked_until   INTEGER NOT NULL,
    expires_at     INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;

CREATE TABLE provider_events (
    dedupe_key  TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
