-- The monitor, metrics and notifications read the event log by kind.
CREATE INDEX events_by_kind ON events (kind, id);
-- Named positions in the event log (the notifier's: the last event it
-- has dealt with), kept across router restarts.
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
