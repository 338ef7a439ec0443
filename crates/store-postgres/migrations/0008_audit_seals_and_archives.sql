-- Seals: the audit trail's tamper evidence. Each lists, for one month and one
-- range of positions (from_seq, to_seq], every event's position and keyed tag,
-- and is chained to the previous seal by its MAC.
CREATE TABLE audit_seals (
    seal_no     bigint PRIMARY KEY CHECK (seal_no > 0),
    month       date NOT NULL CHECK (extract(day FROM month) = 1),
    from_seq    bigint NOT NULL,
    to_seq      bigint NOT NULL CHECK (to_seq > from_seq),
    event_count bigint NOT NULL CHECK (event_count >= 0),
    entries     bytea NOT NULL,
    key_id      text NOT NULL,
    prev_mac    bytea,
    mac         bytea NOT NULL,
    sealed_at   timestamptz NOT NULL
);

CREATE INDEX audit_seals_month_idx ON audit_seals (month, seal_no);

-- Archive manifests: one per exported month. Retention drops a month's
-- partition only when its manifest exists and its row count still matches.
CREATE TABLE audit_archives (
    month             date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    row_count         bigint NOT NULL CHECK (row_count >= 0),
    first_occurred_at timestamptz,
    last_occurred_at  timestamptz,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    file_name         text NOT NULL,
    archived_at       timestamptz NOT NULL,
    archived_by       text NOT NULL
);
