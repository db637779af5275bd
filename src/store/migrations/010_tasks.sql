-- The task graph: tasks, what each needs, and each task's history.
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL DEFAULT '',
    -- Where it goes: an agency, or (until routed) a capability.
    agency      TEXT,
    capability  TEXT,
    -- The agent (of `agency`) that claimed it.
    agent       TEXT,
    priority    TEXT NOT NULL DEFAULT 'normal'
                CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    -- 0 low .. 3 urgent: what `task next` orders by.
    rank        INTEGER NOT NULL DEFAULT 1,
    parent      INTEGER REFERENCES tasks(id),
    branch      TEXT,
    state       TEXT NOT NULL
                CHECK (state IN ('waiting', 'ready', 'claimed', 'review', 'done', 'blocked', 'cancelled')),
    -- Why it is blocked, or why a ready task has no agency yet.
    reason      TEXT,
    -- The approval item it is in review under.
    approval_id INTEGER,
    -- The TASK message that announced its current readiness.
    dispatch_id INTEGER,
    -- When the router first saw the claimer's pane dead or gone.
    gone_since  TEXT,
    -- `plan apply`: the plan and the task's key in it (stable across applies).
    plan        TEXT,
    key         TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    claimed_at  TEXT,
    UNIQUE (plan, key)
);
-- `task next`: ready tasks of an agency (or of a capability), best first.
CREATE INDEX tasks_by_state ON tasks (state, agency, rank DESC, id);
CREATE INDEX tasks_by_capability ON tasks (state, capability) WHERE agency IS NULL;
CREATE INDEX tasks_by_parent ON tasks (parent);

CREATE TABLE task_needs (
    task INTEGER NOT NULL REFERENCES tasks(id),
    need INTEGER NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (task, need),
    CHECK (task <> need)
) WITHOUT ROWID;
-- Unblocking: who needed the task that just finished.
CREATE INDEX task_needs_by_need ON task_needs (need, task);

CREATE TABLE task_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    task   INTEGER NOT NULL REFERENCES tasks(id),
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    actor  TEXT NOT NULL,
    note   TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX task_events_by_task ON task_events (task, id);
