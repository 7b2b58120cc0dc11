-- People who sign in to the web pages of `slipway serve` (docs/web.md), and their sessions.
--
-- A user has a name (what the audit log records as the actor) and one role over every
-- stage. Only an Argon2id hash of the password is kept (a PHC string). A session is kept as
-- the SHA-256 of its random id (the cookie holds the id itself), with the time it ends;
-- removing a user ends their sessions.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'deployer', 'approver', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT    NOT NULL
);

CREATE TABLE web_sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
