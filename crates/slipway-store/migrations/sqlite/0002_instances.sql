-- Ephemeral instances, drills and drift checks, SQLite flavour. Times are integer
-- milliseconds since the Unix epoch (UTC); JSON is kept as text.

-- One row per ephemeral instance (from-zero and from-latest verification, drills). A row
-- whose `destroyed_at` is NULL is infrastructure that may still exist: `slipway gc`
-- destroys it once the process that made it is gone.
CREATE TABLE instances (
    name         TEXT    PRIMARY KEY,
    purpose      TEXT    NOT NULL,
    stage        TEXT    NOT NULL,
    run_id       INTEGER,
    owner_pid    INTEGER NOT NULL,
    owner_host   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER
);
CREATE INDEX instances_alive ON instances (destroyed_at);

-- One row per drill: a timed rebuild of a stage into an ephemeral instance.
CREATE TABLE drills (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    stage       TEXT    NOT NULL,
    instance    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    total_ms    INTEGER,
    details     TEXT    NOT NULL
);

-- One row per drift check of a stage.
CREATE TABLE drift_checks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stage      TEXT    NOT NULL,
    checked_at INTEGER NOT NULL,
    drifted    INTEGER NOT NULL,
    details    TEXT    NOT NULL
);
