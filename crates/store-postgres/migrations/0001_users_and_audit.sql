-- Users, keyed by the customer's identifier. COLLATE "C" keeps prefix search
-- (LIKE 'abc%') on the btree index.
CREATE TABLE users (
    id          uuid PRIMARY KEY,
    external_id text COLLATE "C" NOT NULL,
    pseudonym   text NOT NULL,
    created_at  timestamptz NOT NULL,
    CONSTRAINT users_external_id_key UNIQUE (external_id),
    CONSTRAINT users_pseudonym_key UNIQUE (pseudonym)
);

CREATE INDEX users_created_at_idx ON users (created_at, id);

-- The audit trail, partitioned by month on the event time. The DEFAULT partition
-- guarantees an insert never fails for want of a partition; partition
-- maintenance creates the monthly partitions ahead of time.
CREATE TABLE audit_events (
    seq            bigserial NOT NULL,
    id             uuid NOT NULL,
    occurred_at    timestamptz NOT NULL,
    event_type     text NOT NULL,
    actor_kind     text NOT NULL CHECK (actor_kind IN ('integration', 'operator', 'provider', 'system')),
    actor_id       text,
    user_id        uuid,
    user_pseudonym text,
    credential_id  uuid,
    flow_id        uuid,
    outcome        text NOT NULL CHECK (outcome IN ('success', 'failure', 'rejected')),
    reason         text,
    correlation_id text,
    details        jsonb NOT NULL CHECK (jsonb_typeof(details) = 'object'),
    PRIMARY KEY (occurred_at, seq)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

CREATE INDEX audit_events_seq_idx ON audit_events (seq);
CREATE INDEX audit_events_user_idx ON audit_events (user_id, seq) WHERE user_id IS NOT NULL;
