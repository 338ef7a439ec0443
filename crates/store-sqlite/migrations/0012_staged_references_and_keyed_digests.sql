-- A biometric reference submitted during a flow is staged on that flow,
-- sealed and bound to it, and becomes the user's reference only in the
-- transaction that completes the flow (see the PostgreSQL migration).
CREATE TABLE staged_references (
    flow_id    BLOB PRIMARY KEY REFERENCES flows (id) ON DELETE CASCADE,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

ALTER TABLE flows ADD COLUMN reference_flow_id BLOB;
UPDATE flows SET reference_flow_id = (
        SELECT r.created_by_flow FROM biometric_references r WHERE r.user_id = flows.user_id)
    WHERE flow_type IN ('step_up', 'recovery')
      AND state IN ('pending', 'awaiting_verification', 'verified', 'in_review');

ALTER TABLE flows ADD COLUMN transaction_context_hmac TEXT;
ALTER TABLE flows ADD COLUMN transaction_context_key_id TEXT;
UPDATE flows SET transaction_context_sha256 = NULL WHERE transaction_context_sha256 IS NOT NULL;
