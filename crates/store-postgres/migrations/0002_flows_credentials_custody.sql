-- The provider-side applicant of a user, sealed with the data-encryption key.
ALTER TABLE users ADD COLUMN idv_applicant_sealed bytea;

CREATE TABLE flows (
    id                          uuid PRIMARY KEY,
    user_id                     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    flow_type                   text NOT NULL CHECK (flow_type IN ('registration', 'sign_in', 'step_up', 'recovery')),
    state                       text NOT NULL CHECK (state IN ('pending', 'awaiting_verification', 'verified', 'in_review', 'completed', 'failed', 'expired', 'cancelled')),
    version                     bigint NOT NULL,
    identity_status             text NOT NULL CHECK (identity_status IN ('not_required', 'pending', 'verified', 'in_review', 'failed')),
    idv_run_id                  text,
    sdk_token_sealed            bytea,
    possession_done             boolean NOT NULL,
    reference_stored            boolean NOT NULL,
    credential_id               uuid,
    pending_credential          jsonb,
    failure_reason              text,
    transaction_context_sealed  bytea,
    transaction_context_sha256  text,
    cross_platform              boolean NOT NULL,
    handoff_code_sha256         bytea,
    handoff_expires_at          timestamptz,
    handoff_claimed_at          timestamptz,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL,
    expires_at                  timestamptz NOT NULL,
    completed_at                timestamptz,
    CONSTRAINT flows_idv_run_id_key UNIQUE (idv_run_id),
    CONSTRAINT flows_handoff_code_sha256_key UNIQUE (handoff_code_sha256)
);

CREATE INDEX flows_user_idx ON flows (user_id, created_at DESC);

CREATE TABLE credentials (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    webauthn_id     text NOT NULL,
    public_key      bytea,
    aaguid          uuid,
    sign_count      bigint NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    transports      jsonb NOT NULL,
    backup_eligible boolean NOT NULL,
    backup_state    boolean NOT NULL,
    platform        text,
    device_label    text,
    created_by_flow uuid NOT NULL,
    status          text NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    status_reason   text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_used_at    timestamptz,
    CONSTRAINT credentials_webauthn_id_key UNIQUE (webauthn_id)
);

CREATE INDEX credentials_user_idx ON credentials (user_id, created_at);

-- One current biometric reference per user, sealed and bound to the user.
CREATE TABLE biometric_references (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed          bytea NOT NULL,
    created_by_flow uuid NOT NULL,
    created_at      timestamptz NOT NULL
);

CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL,
    request_sha256 bytea NOT NULL,
    status         integer,
    body_sealed    bytea,
    locked_until   timestamptz NOT NULL,
    expires_at     timestamptz,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE provider_events (
    dedupe_key  text PRIMARY KEY,
    run_id      text NOT NULL,
    received_at timestamptz NOT NULL
);
