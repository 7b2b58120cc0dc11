-- Fencing tokens. Every grant of an instance lock (taking it, or taking it over from a
-- holder judged gone) is numbered, higher than every earlier grant of that stack instance.
-- The holder's writes that matter (saying "applying", recording a release) succeed only
-- while the lock row still carries its number: a holder whose lock was taken over while it
-- was paused or cut off cannot apply or release on top of the new holder.
CREATE TABLE lock_fences (
    stack      TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    last_fence INTEGER NOT NULL,
    PRIMARY KEY (stack, instance)
);
ALTER TABLE instance_locks ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;

-- The engine process that applies a stack run (its process group leader), next to the
-- slipway process that started it: a Terraform still applying after slipway died is alive,
-- not interrupted.
ALTER TABLE stack_runs ADD COLUMN engine_pid INTEGER;
ALTER TABLE stack_runs ADD COLUMN engine_process_started INTEGER;
ALTER TABLE stack_runs ADD COLUMN engine_host TEXT;
