-- Timelines of flows and histories of credentials, from the audit trail.
CREATE INDEX audit_events_flow_idx ON audit_events (flow_id, seq) WHERE flow_id IS NOT NULL;
CREATE INDEX audit_events_credential_idx ON audit_events (credential_id, seq) WHERE credential_id IS NOT NULL;
