-- Workers and labels. A job may ask for worker labels (`tier=prod,region=eu`, sorted by
-- name; empty: any worker): only a worker carrying each of them takes it. Each `slipway
-- worker` (and each server that runs jobs) registers itself in `workers` on start, renews
-- its heartbeat while it runs and marks itself stopped on the way out, so the API and the
-- metrics can show who works on the queue; the jobs it holds name it by host and pid.
ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '';

CREATE TABLE workers (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    host            TEXT    NOT NULL,
    pid             INTEGER  NOT NULL,
    process_started INTEGER,
    labels          TEXT    NOT NULL,
    max_jobs        INTEGER  NOT NULL,
    version         TEXT    NOT NULL,
    started_at      INTEGER  NOT NULL,
    heartbeat_at    INTEGER  NOT NULL,
    draining        INTEGER  NOT NULL DEFAULT 0,
    stopped_at      INTEGER
);
CREATE INDEX workers_by_stop ON workers (stopped_at, id);
