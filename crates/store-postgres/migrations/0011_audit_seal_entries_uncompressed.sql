-- A seal's entries are per-event HMAC tags: PostgreSQL's compression cannot
-- shrink them, and trying cost the sealer a burst of CPU on every seal
-- (about 20 KiB for a thousand events). Store them out of line, uncompressed.
-- Metadata only: existing rows stay as they are.
ALTER TABLE audit_seals ALTER COLUMN entries SET STORAGE EXTERNAL;
