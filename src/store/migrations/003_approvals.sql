-- Handoffs between agencies, and the approval queue.
CREATE TABLE handoffs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task        TEXT NOT NULL,
    from_agency TEXT NOT NULL,
    to_agency   TEXT NOT NULL,
    branch      TEXT NOT NULL,
    commit_id   TEXT NOT NULL,
    artifacts   TEXT NOT NULL,
    notes       TEXT NOT NULL,
    priority    TEXT NOT NULL,
    message_id  INTEGER,
    created_at  TEXT NOT NULL
);

CREATE TABLE approvals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agency         TEXT NOT NULL,
    task           TEXT NOT NULL,
    title          TEXT NOT NULL,
    branch         TEXT NOT NULL,
    commit_id      TEXT NOT NULL,
    base_branch    TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'rejected')),
    tests_passed   INTEGER,
    tests_failed   INTEGER,
    coverage       REAL,
    test_command   TEXT NOT NULL,
    test_exit_code INTEGER,
    test_seconds   REAL NOT NULL,
    test_log       TEXT NOT NULL,
    files_changed  INTEGER NOT NULL,
    insertions     INTEGER NOT NULL,
    deletions      INTEGER NOT NULL,
    demo           TEXT,
    feedback       TEXT,
    decided_by     TEXT,
    decision_note  TEXT,
    merge_commit   TEXT,
    previous_id    INTEGER REFERENCES approvals(id),
    created_at     TEXT NOT NULL,
    decided_at     TEXT
);
CREATE INDEX approvals_by_status ON approvals (status, id);
CREATE INDEX approvals_by_task ON approvals (agency, task, id);
