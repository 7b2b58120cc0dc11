-- no-transaction
-- Step jobs: a worker delivering a run's stage queues each ready stack instance's apply as a
-- job of its own (`kind = 'step'`, naming the run, the stage and the stack), which any worker
-- carrying the stage's labels may take. Other jobs name no stack.
-- SQLite cannot change a CHECK constraint in place: `jobs` is rebuilt, with foreign keys
-- off while its rows move (they cannot be turned off inside a transaction, hence this
-- migration manages its own).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE jobs_rebuilt (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                  TEXT    NOT NULL
        CHECK (kind IN ('run', 'resume', 'drift', 'drill', 'pull_request', 'step')),
    repository            TEXT    NOT NULL,
    git_ref               TEXT    NOT NULL,
    commit_id             TEXT    NOT NULL,
    stage                 TEXT,
    run_id                INTEGER REFERENCES runs (id),
    delivery_id           TEXT    REFERENCES webhook_deliveries (id),
    requested_by          TEXT    NOT NULL,
    queued_at             INTEGER NOT NULL,
    status                TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'superseded', 'interrupted')),
    started_at            INTEGER,
    finished_at           INTEGER,
    superseded_by         INTEGER REFERENCES jobs (id),
    owner_pid             INTEGER,
    owner_process_started INTEGER,
    owner_host            TEXT,
    outcome               TEXT,
    heartbeat_at          INTEGER,
    labels                TEXT    NOT NULL DEFAULT '',
    stack                 TEXT
);
INSERT INTO jobs_rebuilt (id, kind, repository, git_ref, commit_id, stage, run_id, delivery_id,
        requested_by, queued_at, status, started_at, finished_at, superseded_by, owner_pid,
        owner_process_started, owner_host, outcome, heartbeat_at, labels)
    SELECT id, kind, repository, git_ref, commit_id, stage, run_id, delivery_id,
        requested_by, queued_at, status, started_at, finished_at, superseded_by, owner_pid,
        owner_process_started, owner_host, outcome, heartbeat_at, labels FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_by_status ON jobs (status, id);

COMMIT;
PRAGMA foreign_keys = ON;
