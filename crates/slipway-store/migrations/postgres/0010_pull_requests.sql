-- Pull requests (merge requests): a job kind of their own, and what the server keeps of
-- each pull request it commented on: the comment it updates on every push, and the latest
-- full report (served whole when the comment had to be cut).
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('run', 'resume', 'drift', 'drill', 'pull_request'));

CREATE TABLE pull_requests (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    TEXT    NOT NULL,
    repository  TEXT    NOT NULL,
    number      BIGINT  NOT NULL,
    commit_id   TEXT    NOT NULL,
    comment_id  TEXT,
    report      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (provider, repository, number)
);
