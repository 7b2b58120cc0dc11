-- Step jobs: a worker delivering a run's stage queues each ready stack instance's apply as a
-- job of its own (`kind = 'step'`, naming the run, the stage and the stack), which any worker
-- carrying the stage's labels may take. Other jobs name no stack.
ALTER TABLE jobs ADD COLUMN stack TEXT;
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('run', 'resume', 'drift', 'drill', 'pull_request', 'step'));
