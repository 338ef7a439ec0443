-- A biometric reference submitted during a flow is staged on that flow,
-- sealed and bound to it, and becomes the user's reference only in the
-- transaction that completes the flow. Removed with the flow, or when the
-- flow ends otherwise.
CREATE TABLE staged_references (
    flow_id    uuid PRIMARY KEY REFERENCES flows (id) ON DELETE CASCADE,
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL
);

-- Step-up and recovery flows are released only the reference the user had
-- when they were created: the flow that stored it.
ALTER TABLE flows ADD COLUMN reference_flow_id uuid;
UPDATE flows f SET reference_flow_id = r.created_by_flow
    FROM biometric_references r
    WHERE r.user_id = f.user_id AND f.flow_type IN ('step_up', 'recovery')
      AND f.state IN ('pending', 'awaiting_verification', 'verified', 'in_review');

-- The transaction context's digest is keyed (HMAC under a key derived from
-- the data-encryption key, whose id is recorded): a plain SHA-256 of a payee
-- and an amount lets a reader of the database confirm guesses. The plain
-- digests stored so far are cleared; the column stays for the previous
-- release's sake (rollbacks need no database step).
ALTER TABLE flows ADD COLUMN transaction_context_hmac text;
ALTER TABLE flows ADD COLUMN transaction_context_key_id text;
UPDATE flows SET transaction_context_sha256 = NULL WHERE transaction_context_sha256 IS NOT NULL;
