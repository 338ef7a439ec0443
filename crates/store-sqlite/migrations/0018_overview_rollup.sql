-- The overview's roll-up (domain::overview): flows counted per UTC hour of
-- creation, type and state, for the hours whose flows can no longer change.
-- The Core API's housekeeping adds hours in order; every hour before
-- `counted_to` is counted (an hour without flows has no rows), and the
-- overview reads those hours here instead of counting their flows. Rows name
-- no user, and stay when retention removes the flows they counted. Times are
-- microseconds since the epoch, as everywhere in this store.
CREATE TABLE overview_flow_counts (
    hour_start  INTEGER NOT NULL,
    flow_type   TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('completed', 'failed', 'expired', 'cancelled')),
    flows       INTEGER NOT NULL CHECK (flows > 0),
    PRIMARY KEY (hour_start, flow_type, state)
) WITHOUT ROWID;

-- Where the roll-up stands: one row, NULL until the first hour is counted.
CREATE TABLE overview_rollup (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    counted_to  INTEGER
);
INSERT INTO overview_rollup (singleton, counted_to) VALUES (1, NULL);
