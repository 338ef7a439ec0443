-- What the IDV provider must still forget about deleted users. Written in the
-- same transaction as the deletion; processed (and retried) by the Core API.
CREATE TABLE provider_cleanups (
    user_id              BLOB PRIMARY KEY,
    customer_user_id     TEXT NOT NULL,
    applicant_sealed     BLOB,
    requested_at         INTEGER NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_attempt_at      INTEGER
) STRICT;
