-- Idempotency records name the user their response concerns (a flow's
-- user), so that deleting the user deletes them in the same transaction; the
-- Core API purges records past their replay window in small batches. A
-- customer's user id in a scope is stored as a keyed digest from now on
-- (records written before keep theirs until the purge removes them, within a
-- day).
ALTER TABLE idempotency_keys ADD COLUMN user_id uuid;
CREATE INDEX idempotency_keys_user_idx ON idempotency_keys (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX idempotency_keys_purge_idx ON idempotency_keys ((COALESCE(expires_at, locked_until)));
