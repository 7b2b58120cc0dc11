-- no-transaction
-- Pull requests (merge requests): a job kind of their own, and what the server keeps of
-- each pull request it commented on: the comment it updates on every push, and the latest
-- full report (served whole when the comment had to be cut).
-- SQLite cannot change a CHECK constraint in place: `jobs` is rebuilt, with foreign keys
-- off while its rows move (they cannot be turned off inside a transaction, hence this
-- migration manages its own).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE jobs_rebuilt (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                  TEXT    NOT NULL
        CHECK (kind IN ('run', 'resume', 'drift', 'drill', 'pull_request')),
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
    outcome               TEXT
);
INSERT INTO jobs_rebuilt (id, kind, repository, git_ref, commit_id, stage, run_id, delivery_id,
        requested_by, queued_at, status, started_at, finished_at, superseded_by, owner_pid,
        owner_process_started, owner_host, outcome)
    SELECT id, kind, repository, git_ref, commit_id, stage, run_id, delivery_id,
        requested_by, queued_at, status, started_at, finished_at, superseded_by, owner_pid,
        owner_process_started, owner_host, outcome FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_by_status ON jobs (status, id);

-- One row per pull request the server planned: the forge's comment it keeps up to date
-- (NULL until the first comment was posted) and the latest full report in Markdown.
CREATE TABLE pull_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    repository  TEXT    NOT NULL,
    number      INTEGER NOT NULL,
    commit_id   TEXT    NOT NULL,
    comment_id  TEXT,
    report      TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (provider, repository, number)
);

COMMIT;
PRAGMA foreign_keys = ON;
