-- The Core API's housekeeping: flows past their expiry lose their SDK token
-- and WebAuthn ceremony, and are removed some time later (with their hand-off
-- and what they staged); webhook de-duplication records are removed after
-- their retention. These indexes keep each batch's search small.
CREATE INDEX flows_expiry_idx ON flows (expires_at);
CREATE INDEX flows_expired_secrets_idx ON flows (expires_at)
    WHERE sdk_token_sealed IS NOT NULL OR webauthn_ceremony_sealed IS NOT NULL;
CREATE INDEX provider_events_received_idx ON provider_events (received_at);

-- Ended flows keep no SDK token or ceremony (the write that ends a flow
-- clears them from now on).
UPDATE flows SET sdk_token_sealed = NULL, webauthn_ceremony_sealed = NULL,
    webauthn_ceremony_expires_at = NULL
    WHERE state IN ('completed', 'failed', 'cancelled', 'expired')
      AND (sdk_token_sealed IS NOT NULL OR webauthn_ceremony_sealed IS NOT NULL);
