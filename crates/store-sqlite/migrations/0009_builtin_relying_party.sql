-- `builtin` possession mode: a flow's pending WebAuthn ceremony (sealed, with
-- its expiry in microseconds; cleared by the change that accepts a response),
-- and what the built-in relying party verified about each passkey it registered.
ALTER TABLE flows ADD COLUMN webauthn_ceremony_sealed BLOB;
ALTER TABLE flows ADD COLUMN webauthn_ceremony_expires_at INTEGER
    CHECK ((webauthn_ceremony_expires_at IS NULL) = (webauthn_ceremony_sealed IS NULL));

ALTER TABLE credentials ADD COLUMN passkey TEXT;
