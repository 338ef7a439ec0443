-- Seals: the audit trail's tamper evidence (see the PostgreSQL migration).
-- Months are 'YYYY-MM'; times INTEGER microseconds.
CREATE TABLE audit_seals (
    seal_no     INTEGER PRIMARY KEY CHECK (seal_no > 0),
    month       TEXT NOT NULL CHECK (month GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]'),
    from_seq    INTEGER NOT NULL,
    to_seq      INTEGER NOT NULL CHECK (to_seq > from_seq),
    event_count INTEGER NOT NULL CHECK (event_count >= 0),
    entries     BLOB NOT NULL,
    key_id      TEXT NOT NULL,
    prev_mac    BLOB,
    mac         BLOB NOT NULL,
    sealed_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_seals_month_idx ON audit_seals (month, seal_no);

-- Archive manifests: retention deletes a month's events only when its manifest
-- exists and its row count still matches.
CREATE TABLE audit_archives (
    month             TEXT PRIMARY KEY CHECK (month GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]'),
    row_count         INTEGER NOT NULL CHECK (row_count >= 0),
    first_occurred_at INTEGER,
    last_occurred_at  INTEGER,
    sha256            TEXT NOT NULL CHECK (length(sha256) = 64),
    file_name         TEXT NOT NULL,
    archived_at       INTEGER NOT NULL,
    archived_by       TEXT NOT NULL
) STRICT;
