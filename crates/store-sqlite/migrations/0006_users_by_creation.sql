-- User searches by creation time, in creation order, page by page.
CREATE INDEX users_created_external_idx ON users (created_at, external_id);
DROP INDEX users_created_at_idx;
