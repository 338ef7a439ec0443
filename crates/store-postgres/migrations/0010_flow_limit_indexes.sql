-- Every flow creation counts the user's open flows and the IDV runs of the
-- last day (the per-user limits). These partial indexes hold only the rows
-- those counts look at, so their cost follows what is counted (a handful of
-- rows) rather than the user's whole history of flows.
CREATE INDEX flows_open_by_user_idx ON flows (user_id, expires_at)
    WHERE state IN ('pending', 'awaiting_verification', 'verified', 'in_review');
CREATE INDEX flows_runs_by_user_idx ON flows (user_id, created_at)
    WHERE identity_status <> 'not_required';

-- A recovery revokes the user's live passkeys and a built-in sign-in offers
-- them: read without walking the revoked ones a long history leaves behind.
CREATE INDEX credentials_live_by_user_idx ON credentials (user_id, created_at)
    WHERE status <> 'revoked';
