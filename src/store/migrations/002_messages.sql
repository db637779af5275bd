-- The message bus: every message is a row before `send` returns.
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sender       TEXT NOT NULL,
    agency       TEXT NOT NULL,
    agent        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    payload      TEXT,
    state        TEXT NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'delivered', 'acked', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    origin       TEXT UNIQUE,
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    acked_at     TEXT
);
-- The router's question: the oldest queued message of each recipient.
CREATE INDEX messages_queued ON messages (agency, agent, id) WHERE state = 'queued';
CREATE INDEX messages_by_recipient ON messages (agency, agent, id);
