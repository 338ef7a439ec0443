-- When the reconciler last re-read a flow's run from the IDV provider.
ALTER TABLE flows ADD COLUMN provider_checked_at INTEGER;

CREATE INDEX flows_awaiting_provider_idx ON flows (coalesce(provider_checked_at, updated_at))
    WHERE state IN ('awaiting_verification', 'in_review') AND idv_run_id IS NOT NULL;
