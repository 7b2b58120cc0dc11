-- A running job's heartbeat: the process working on it (a server or a `slipway worker`,
-- on any host) renews it while the job runs. A job on another host silent for longer than
-- the record's lease is taken as abandoned and marked interrupted.
ALTER TABLE jobs ADD COLUMN heartbeat_at BIGINT;
