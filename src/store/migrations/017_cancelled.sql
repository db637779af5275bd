-- A message can be `cancelled`: its agency was purged. It is kept, so the
-- history still shows it. SQLite cannot change a CHECK: the table is made
-- again, with the same rows, ids and indexes.
CREATE TABLE messages_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sender       TEXT NOT NULL,
    agency       TEXT NOT NULL,
    agent        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    payload      TEXT,
    state        TEXT NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'delivered', 'acked', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    origin       TEXT UNIQUE,
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    acked_at     TEXT,
    deliver_at   TEXT
);
INSERT INTO messages_new (id, sender, agency, agent, kind, body, payload, state, attempts,
                          last_error, origin, created_at, delivered_at, acked_at, deliver_at)
    SELECT id, sender, agency, agent, kind, body, payload, state, attempts,
           last_error, origin, created_at, delivered_at, acked_at, deliver_at
    FROM messages;
-- An id is never given twice: the counter goes on from where it was, also
-- past the last messages if they were deleted (a cancelled check-in).
CREATE TEMP TABLE messages_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'messages';
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
DELETE FROM sqlite_sequence WHERE name = 'messages';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'messages', max(coalesce((SELECT max(seq) FROM temp.messages_seq), 0),
                           coalesce((SELECT max(id) FROM messages), 0));
DROP TABLE temp.messages_seq;
CREATE INDEX messages_queued ON messages (agency, agent, id) WHERE state = 'queued';
CREATE INDEX messages_by_recipient ON messages (agency, agent, id);
CREATE INDEX messages_scheduled ON messages (deliver_at) WHERE deliver_at IS NOT NULL;
