-- Workers and labels. A job may ask for worker labels (`tier=prod,region=eu`, sorted by
-- name; empty: any worker): only a worker carrying each of them takes it. Each `slipway
-- worker` (and each server that runs jobs) registers itself in `workers` on start, renews
-- its heartbeat while it runs and marks itself stopped on the way out, so the API and the
-- metrics can show who works on the queue; the jobs it holds name it by host and pid.
ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '';

CREATE TABLE workers (
    id              BIGSERIAL PRIMARY KEY,
    host            TEXT    NOT NULL,
    pid             BIGINT  NOT NULL,
    process_started BIGINT,
    labels          TEXT    NOT NULL,
    max_jobs        BIGINT  NOT NULL,
    version         TEXT    NOT NULL,
    started_at      BIGINT  NOT NULL,
    heartbeat_at    BIGINT  NOT NULL,
    draining        BIGINT  NOT NULL DEFAULT 0,
    stopped_at      BIGINT
);
CREATE INDEX workers_by_stop ON workers (stopped_at, id);
