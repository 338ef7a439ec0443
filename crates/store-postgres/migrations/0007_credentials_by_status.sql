-- User searches by credential status (e.g. everyone with a suspended passkey).
CREATE INDEX credentials_status_user_idx ON credentials (status, user_id);
