-- Why a stack run failed, in the engine's words (the summary of its `Error:` block and
-- the start of the detail, redacted like the log it was read from).
ALTER TABLE stack_runs ADD COLUMN failure_reason TEXT;
