-- Webhook deliveries, kept before they are answered: the server's durable intake. A
-- delivery is known by the provider's own id (a redelivery of it is a duplicate) and by the
-- repository, kind and commit it announces (the same push delivered twice is one). Ignored
-- deliveries are kept too, with the reason.
CREATE TABLE webhook_deliveries (
    id          TEXT    PRIMARY KEY,
    provider    TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    repository  TEXT    NOT NULL,
    git_ref     TEXT    NOT NULL,
    commit_id   TEXT    NOT NULL,
    pull_number INTEGER,
    received_at INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'ignored')),
    reason      TEXT
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (repository, kind, commit_id)
    WHERE status = 'queued';
