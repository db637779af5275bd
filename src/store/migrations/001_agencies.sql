-- Agencies, their panes, and the event log.
CREATE TABLE agencies (
    name       TEXT PRIMARY KEY,
    template   TEXT NOT NULL,
    layout     TEXT NOT NULL CHECK (layout IN ('windows', 'panes')),
    session    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per pane the tool made: the agents, plus the `tools` and `sandbox`
-- utility windows (role 'tools' / 'sandbox').
CREATE TABLE agents (
    agency   TEXT NOT NULL REFERENCES agencies(name) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    role     TEXT NOT NULL CHECK (role IN ('coordinator', 'specialist', 'tools', 'sandbox')),
    position INTEGER NOT NULL,
    command  TEXT NOT NULL,
    window   TEXT NOT NULL,
    pane_id  TEXT,
    PRIMARY KEY (agency, name)
);

CREATE TABLE events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    agency TEXT,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_by_agency ON events (agency, id);
