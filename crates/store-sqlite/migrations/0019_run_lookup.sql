-- A failed flow whose run's creation was ambiguous (a timeout, a 5xx): the
-- provider may hold a run for it, which the reconciler looks for.
ALTER TABLE flows ADD COLUMN run_lookup_pending INTEGER NOT NULL DEFAULT 0;

CREATE INDEX flows_run_lookup_idx ON flows (updated_at) WHERE run_lookup_pending;
