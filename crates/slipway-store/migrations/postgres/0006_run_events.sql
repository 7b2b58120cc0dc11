-- The events of each run, as its front end saw them (one JSON object each, the schema of
-- docs/events.md), in order: what a server streams to a client that joins late, and what
-- `slipway events RUN` prints.
CREATE TABLE run_events (
    run_id BIGINT  NOT NULL REFERENCES runs (id),
    seq    BIGINT  NOT NULL,
    at     BIGINT  NOT NULL,
    event  TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
