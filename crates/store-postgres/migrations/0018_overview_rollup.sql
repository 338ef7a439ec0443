-- The overview's roll-up (domain::overview): flows counted per UTC hour of
-- creation, type and state, for the hours whose flows can no longer change.
-- The Core API's housekeeping adds hours in order; every hour before
-- `counted_to` is counted (an hour without flows has no rows), and the
-- overview reads those hours here instead of counting their flows. Rows name
-- no user, and stay when retention removes the flows they counted.
CREATE TABLE overview_flow_counts (
    hour_start  timestamptz NOT NULL,
    flow_type   text NOT NULL,
    state       text NOT NULL CHECK (state IN ('completed', 'failed', 'expired', 'cancelled')),
    flows       bigint NOT NULL CHECK (flows > 0),
    PRIMARY KEY (hour_start, flow_type, state)
);

-- Where the roll-up stands: one row, NULL until the first hour is counted.
CREATE TABLE overview_rollup (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    counted_to  timestamptz
);
INSERT INTO overview_rollup (singleton, counted_to) VALUES (true, NULL);
