-- The server's queue and who may use its API.
--
-- A job is a run to start (from a webhook delivery or an API request), an approved run to
-- resume, or a scheduled drift check or drill of a stage. Jobs are taken oldest first; a
-- newer run job for the same repository and branch supersedes the queued ones before it,
-- which stay on record with the job that replaced them. The process working on a job is
-- recorded, so a server started after a crash can tell its own abandoned jobs from
-- another's live ones.
CREATE TABLE jobs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                  TEXT    NOT NULL CHECK (kind IN ('run', 'resume', 'drift', 'drill')),
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
CREATE INDEX jobs_by_status ON jobs (status, id);

-- API tokens: only a hash of each is kept (the token itself is shown once, when made). A
-- token acts as `actor`, with `role` over every stage or over `stage` alone.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('viewer', 'deployer', 'approver', 'admin')),
    stage       TEXT,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    revoked_at  INTEGER
);

-- Each schedule's last time that was acted on (its job queued), so that a server that was
-- down queues one job for the times it missed, and two servers queue each time once.
CREATE TABLE schedules (
    name     TEXT    PRIMARY KEY,
    last_due INTEGER  NOT NULL
);
