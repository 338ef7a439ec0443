-- What the IDV provider must still forget about deleted users. Written in the
-- same transaction as the deletion; processed (and retried) by the Core API.
CREATE TABLE provider_cleanups (
    user_id              uuid PRIMARY KEY,
    customer_user_id     text NOT NULL,
    applicant_sealed     bytea,
    requested_at         timestamptz NOT NULL,
    attempts             integer NOT NULL DEFAULT 0,
    last_attempt_at      timestamptz
);
