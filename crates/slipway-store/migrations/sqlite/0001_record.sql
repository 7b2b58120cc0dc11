-- The run record, SQLite flavour. Times are integer milliseconds since the Unix epoch (UTC).
-- Statuses and actions are lower-case text; JSON is kept as text.

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id   TEXT    NOT NULL,
    run_trigger TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE TABLE stage_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    stage       TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'awaiting_approval', 'succeeded', 'failed', 'skipped')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    UNIQUE (run_id, stage)
);

CREATE TABLE artifacts (
    id         TEXT    PRIMARY KEY,
    stack      TEXT    NOT NULL,
    commit_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    manifest   TEXT    NOT NULL
);

CREATE TABLE stack_runs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id                INTEGER NOT NULL REFERENCES runs (id),
    stage                 TEXT    NOT NULL,
    instance              TEXT    NOT NULL,
    stack                 TEXT    NOT NULL,
    artifact_id           TEXT    REFERENCES artifacts (id),
    status                TEXT    NOT NULL CHECK (status IN ('pending', 'applying', 'succeeded', 'failed', 'skipped', 'interrupted')),
    created_at            INTEGER NOT NULL,
    started_at            INTEGER,
    finished_at           INTEGER,
    plan_summary          TEXT,
    log_path              TEXT,
    owner_pid             INTEGER,
    owner_process_started INTEGER,
    owner_host            TEXT,
    owner_since           INTEGER,
    note                  TEXT
);
CREATE INDEX stack_runs_by_run ON stack_runs (run_id);
CREATE INDEX stack_runs_by_status ON stack_runs (status);

CREATE TABLE releases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    stage       TEXT    NOT NULL,
    stack       TEXT    NOT NULL,
    artifact_id TEXT    NOT NULL REFERENCES artifacts (id),
    commit_id   TEXT    NOT NULL,
    released_at INTEGER NOT NULL,
    released_by TEXT    NOT NULL,
    run_id      INTEGER REFERENCES runs (id)
);
CREATE INDEX releases_by_stage_stack ON releases (stage, stack, id);

CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    stage   TEXT,
    stack   TEXT,
    run_id  INTEGER,
    details TEXT    NOT NULL
);

-- The audit log is append-only: no statement may change or remove an entry.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- One row per locked stack instance; the primary key makes taking a lock atomic.
CREATE TABLE instance_locks (
    stack           TEXT    NOT NULL,
    instance        TEXT    NOT NULL,
    run_id          INTEGER NOT NULL,
    pid             INTEGER NOT NULL,
    process_started INTEGER,
    host            TEXT    NOT NULL,
    since           INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL,
    PRIMARY KEY (stack, instance)
);
