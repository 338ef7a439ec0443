-- The Management API's overview counts a period's flows by type and state,
-- and a few kinds of audit events by outcome and reason, per hour or day.
-- Both indexes hold every column the counting reads, so it scans only the
-- period's entries of the index. The audit index is partial on exactly the
-- event types of domain::overview::OVERVIEW_EVENTS (its query names the same
-- list), which are a small share of the trail.
CREATE INDEX flows_overview_idx ON flows (created_at) INCLUDE (flow_type, state, expires_at);
CREATE INDEX audit_events_overview_idx ON audit_events (occurred_at)
    INCLUDE (event_type, outcome, reason)
    WHERE event_type IN ('flow.in_review', 'flow.failed', 'flow.request_rejected',
        'credential.counter_regression', 'credential.backup_eligibility_changed',
        'credential.suspended', 'credential.activated', 'credential.revoked');
