-- Approvals become rows of their own, and a rejected run gets the status `rejected`.

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'rejected'));

CREATE TABLE approvals (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES runs (id),
    stage       TEXT   NOT NULL,
    actor       TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    plans       TEXT   NOT NULL,
    approved_at BIGINT NOT NULL
);
CREATE INDEX approvals_by_run ON approvals (run_id, stage);
