-- The run record, PostgreSQL flavour. Same tables and columns as the SQLite one; times are
-- BIGINT milliseconds since the Unix epoch (UTC), statuses and JSON are text.

CREATE TABLE runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commit_id   TEXT   NOT NULL,
    run_trigger TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE TABLE stage_runs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES runs (id),
    stage       TEXT   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('pending', 'running', 'awaiting_approval', 'succeeded', 'failed', 'skipped')),
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (run_id, stage)
);

CREATE TABLE artifacts (
    id         TEXT   PRIMARY KEY,
    stack      TEXT   NOT NULL,
    commit_id  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    size       BIGINT NOT NULL,
    manifest   TEXT   NOT NULL
);

CREATE TABLE stack_runs (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id                BIGINT NOT NULL REFERENCES runs (id),
    stage                 TEXT   NOT NULL,
    instance              TEXT   NOT NULL,
    stack                 TEXT   NOT NULL,
    artifact_id           TEXT   REFERENCES artifacts (id),
    status                TEXT   NOT NULL CHECK (status IN ('pending', 'applying', 'succeeded', 'failed', 'skipped', 'interrupted')),
    created_at            BIGINT NOT NULL,
    started_at            BIGINT,
    finished_at           BIGINT,
    plan_summary          TEXT,
    log_path              TEXT,
    owner_pid             BIGINT,
    owner_process_started BIGINT,
    owner_host            TEXT,
    owner_since           BIGINT,
    note                  TEXT
);
CREATE INDEX stack_runs_by_run ON stack_runs (run_id);
CREATE INDEX stack_runs_by_status ON stack_runs (status);

CREATE TABLE releases (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stage       TEXT   NOT NULL,
    stack       TEXT   NOT NULL,
    artifact_id TEXT   NOT NULL REFERENCES artifacts (id),
    commit_id   TEXT   NOT NULL,
    released_at BIGINT NOT NULL,
    released_by TEXT   NOT NULL,
    run_id      BIGINT REFERENCES runs (id)
);
CREATE INDEX releases_by_stage_stack ON releases (stage, stack, id);

CREATE TABLE audit_log (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    stage   TEXT,
    stack   TEXT,
    run_id  BIGINT,
    details TEXT   NOT NULL
);

-- The audit log is append-only: no statement may change, remove or truncate an entry.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- One row per locked stack instance; the primary key makes taking a lock atomic.
CREATE TABLE instance_locks (
    stack           TEXT   NOT NULL,
    instance        TEXT   NOT NULL,
    run_id          BIGINT NOT NULL,
    pid             BIGINT NOT NULL,
    process_started BIGINT,
    host            TEXT   NOT NULL,
    since           BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL,
    PRIMARY KEY (stack, instance)
);
