-- The provider clean-up queue retries each item with backoff and gives up on
-- an item after a configured number of attempts: the item is then marked
-- dead (kept, and listed to operators) instead of being retried forever.
ALTER TABLE provider_cleanups ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE provider_cleanups ADD COLUMN dead_at INTEGER;
