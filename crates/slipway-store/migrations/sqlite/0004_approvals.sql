-- no-transaction
-- Approvals become rows of their own, and a rejected run gets the status `rejected`.
-- SQLite cannot change a CHECK constraint in place: `runs` is rebuilt, with foreign keys
-- off while its rows move (they cannot be turned off inside a transaction, hence this
-- migration manages its own).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE runs_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id   TEXT    NOT NULL,
    run_trigger TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'rejected')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
INSERT INTO runs_rebuilt (id, commit_id, run_trigger, actor, status, started_at, finished_at)
    SELECT id, commit_id, run_trigger, actor, status, started_at, finished_at FROM runs;
DROP TABLE runs;
ALTER TABLE runs_rebuilt RENAME TO runs;

CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    stage       TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    plans       TEXT    NOT NULL,
    approved_at INTEGER NOT NULL
);
CREATE INDEX approvals_by_run ON approvals (run_id, stage);

COMMIT;
PRAGMA foreign_keys = ON;
