-- The delivery metrics (`slipway dora`, the server's metrics) read a window of the record
-- by time: stage runs started, releases made and rollbacks or recoveries since a moment.
-- Without these, each read scans its whole table, which grows with every run.
CREATE INDEX stage_runs_by_start ON stage_runs (started_at);
CREATE INDEX releases_by_time ON releases (released_at);
CREATE INDEX audit_log_by_action_time ON audit_log (action, at);
