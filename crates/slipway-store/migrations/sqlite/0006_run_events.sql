-- The events of each run, as its front end saw them (one JSON object each, the schema of
-- docs/events.md), in order: what a server streams to a client that joins late, and what
-- `slipway events RUN` prints.
CREATE TABLE run_events (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    event  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
