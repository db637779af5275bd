//! The task graph's SQL: tasks, their needs and history, the queries
//! `task list`/`next` and the router's lease check ask, and the
//! `task_graph.json` mirror. The rules live in `crate::tasks`; this file only
//! reads and writes.

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};
use serde::Serialize;

use super::events::insert_event;
use super::messages::insert_message;
use super::{
    events_after, events_before, immediate, sql_err, NewMessage, Store, StoreError, StoreResult,
    NOW,
};
use crate::model::Event;

/// A task as stored, with what it needs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRow {
    pub id: i64,
    pub title: String,
    pub state: String,
    pub agency: Option<String>,
    pub agent: Option<String>,
    pub needs: Vec<i64>,
    pub parent: Option<i64>,
    pub priority: String,
    pub branch: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Asked for instead of an agency, until routed.
    pub capability: Option<String>,
    /// Why it is blocked, or why it has no agency yet.
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    pub dispatch_id: Option<i64>,
}

/// A task to insert.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub body: String,
    pub agency: Option<String>,
    pub capability: Option<String>,
    pub priority: String,
    pub rank: i64,
    pub parent: Option<i64>,
    pub needs: Vec<i64>,
    pub plan: Option<String>,
    pub key: Option<String>,
}

/// One entry of a task's history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskEventRow {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub note: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub agency: Option<String>,
    pub state: Option<String>,
}

/// How many tasks an agency (none: not routed yet) has in a state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TaskCount {
    pub agency: Option<String>,
    pub state: String,
    pub count: i64,
}

/// A claimed task as the lease check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: i64,
    pub agency: String,
    pub agent: String,
    pub gone_since: Option<String>,
}

const TASK_COLUMNS: &str = "id, title, state, agency, agent, parent, priority, branch, created_at,
    updated_at, capability, reason, approval_id, plan, key, claimed_at, body, dispatch_id";

fn task_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: r.get(0)?,
        title: r.get(1)?,
        state: r.get(2)?,
        agency: r.get(3)?,
        agent: r.get(4)?,
        needs: Vec::new(),
        parent: r.get(5)?,
        priority: r.get(6)?,
        branch: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        capability: r.get(10)?,
        reason: r.get(11)?,
        approval_id: r.get(12)?,
        plan: r.get(13)?,
        key: r.get(14)?,
        claimed_at: r.get(15)?,
        body: r.get(16)?,
        dispatch_id: r.get(17)?,
    })
}

fn ids(
    conn: &rusqlite::Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| r.get(0))?;
    rows.collect()
}

fn get_task(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<TaskRow>> {
    let row = conn
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row([id], task_from_row)
        .optional()?;
    let Some(mut row) = row else { return Ok(None) };
    row.needs = ids(
        conn,
        "SELECT need FROM task_needs WHERE task = ?1 ORDER BY need",
        [id],
    )?;
    Ok(Some(row))
}

/// The write side, inside one `BEGIN IMMEDIATE` transaction: nobody else
/// writes between a read here and the write that follows it.
pub struct TaskTx<'a> {
    tx: Transaction<'a>,
    path: std::path::PathBuf,
}

impl TaskTx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.path)
    }

    /// Inserts a task and its needs in `state`; returns its id.
    pub fn insert(&self, t: &NewTask, state: &str) -> StoreResult<i64> {
        let id: i64 = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO tasks (title, body, agency, capability, priority, rank, parent, state,
                   plan, key, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {NOW}, {NOW}) RETURNING id"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![
                        t.title,
                        t.body,
                        t.agency,
                        t.capability,
                        t.priority,
                        t.rank,
                        t.parent,
                        state,
                        t.plan,
                        t.key
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(self.err())?;
        self.set_needs(id, &t.needs)?;
        Ok(id)
    }

    pub fn get(&self, id: i64) -> StoreResult<Option<TaskRow>> {
        get_task(&self.tx, id).map_err(self.err())
    }

    /// Which of `wanted` exist.
    pub fn existing(&self, wanted: &[i64]) -> StoreResult<Vec<i64>> {
        let mut found = Vec::new();
        for &id in wanted {
            let hit: Option<i64> = self
                .tx
                .prepare_cached("SELECT id FROM tasks WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(self.err())?;
            found.extend(hit);
        }
        Ok(found)
    }

    pub fn needs_of(&self, id: i64) -> StoreResult<Vec<i64>> {
        ids(
            &self.tx,
            "SELECT need FROM task_needs WHERE task = ?1 ORDER BY need",
            [id],
        )
        .map_err(self.err())
    }

    /// Replaces what `id` needs.
    pub fn set_needs(&self, id: i64, needs: &[i64]) -> StoreResult<()> {
        self.tx
            .prepare_cached("DELETE FROM task_needs WHERE task = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(self.err())?;
        let mut ins = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO task_needs (task, need) VALUES (?1, ?2)")
            .map_err(self.err())?;
        for n in needs {
            ins.execute([id, *n]).map_err(self.err())?;
        }
        Ok(())
    }

    /// The states of what `id` needs.
    pub fn need_states(&self, id: i64) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT t.state FROM task_needs n JOIN tasks t ON t.id = n.need WHERE n.task = ?1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([id], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Tasks still waiting that need `id`.
    pub fn waiting_dependents(&self, id: i64) -> StoreResult<Vec<i64>> {
        ids(
            &self.tx,
            "SELECT n.task FROM task_needs n JOIN tasks t ON t.id = n.task
             WHERE n.need = ?1 AND t.state = 'waiting' ORDER BY n.task",
            [id],
        )
        .map_err(self.err())
    }

    /// Writes back a task's fields. The claim time is set when it becomes
    /// claimed; the lease clock restarts whenever state or agent change.
    pub fn save(&self, t: &TaskRow, rank: i64) -> StoreResult<()> {
        self.tx
            .prepare_cached(&format!(
                "UPDATE tasks SET title = ?2, body = ?3, agency = ?4, capability = ?5, agent = ?6,
                   priority = ?7, rank = ?8, parent = ?9, branch = ?10, reason = ?12,
                   approval_id = ?13, dispatch_id = ?14, plan = ?15, key = ?16,
                   claimed_at = CASE WHEN ?11 <> 'claimed' THEN NULL
                                     WHEN state = 'claimed' AND agent IS ?6 THEN claimed_at
                                     ELSE {NOW} END,
                   gone_since = CASE WHEN state = ?11 AND agent IS ?6 THEN gone_since END,
                   state = ?11, updated_at = {NOW}
                 WHERE id = ?1"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    t.id,
                    t.title,
                    t.body,
                    t.agency,
                    t.capability,
                    t.agent,
                    t.priority,
                    rank,
                    t.parent,
                    t.branch,
                    t.state,
                    t.reason,
                    t.approval_id,
                    t.dispatch_id,
                    t.plan,
                    t.key
                ])
            })
            .map_err(self.err())?;
        Ok(())
    }

    /// Records the message that announced a task's readiness.
    pub fn set_dispatch(&self, id: i64, message: i64) -> StoreResult<()> {
        self.tx
            .prepare_cached("UPDATE tasks SET dispatch_id = ?2 WHERE id = ?1")
            .and_then(|mut s| s.execute([id, message]))
            .map_err(self.err())?;
        Ok(())
    }

    /// Appends to a task's history and to the event log (`task.<kind>`);
    /// returns the time.
    pub fn event(
        &self,
        t: &TaskRow,
        kind: &str,
        actor: &str,
        note: Option<&str>,
        detail: serde_json::Value,
    ) -> StoreResult<String> {
        let at: String = self
            .tx
            .prepare_cached(&format!(
                "INSERT INTO task_events (task, at, kind, actor, note, detail)
                 VALUES (?1, {NOW}, ?2, ?3, ?4, ?5) RETURNING at"
            ))
            .and_then(|mut s| {
                s.query_row(params![t.id, kind, actor, note, detail.to_string()], |r| {
                    r.get(0)
                })
            })
            .map_err(self.err())?;
        let mut log = serde_json::json!({
            "id": t.id, "title": t.title, "state": t.state, "by": actor,
        });
        if let Some(n) = note {
            log["note"] = n.into();
        }
        if let (Some(o), serde_json::Value::Object(d)) = (log.as_object_mut(), detail) {
            o.extend(d);
        }
        let event = Event {
            agency: t.agency.clone(),
            kind: format!("task.{kind}"),
            detail: log,
        };
        insert_event(&self.tx, &event).map_err(self.err())?;
        Ok(at)
    }

    /// Queues a message in this same transaction (see `Store::queue_messages`).
    pub fn queue_message(&self, m: &NewMessage) -> StoreResult<Option<i64>> {
        insert_message(&self.tx, m).map_err(self.err())
    }

    /// Agencies the registry has as running.
    pub fn running_agencies(&self) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT name FROM agencies WHERE state = 'running' ORDER BY name")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Open tasks per agency.
    pub fn open_counts(&self) -> StoreResult<HashMap<String, i64>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT agency, count(*) FROM tasks
                 WHERE agency IS NOT NULL AND state NOT IN ('done', 'cancelled') GROUP BY agency",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|r| r.collect())
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Ready tasks an agency may take: its own, and those asking for one of
    /// `capabilities` not yet routed: (id, rank, open dependents).
    pub fn candidates(
        &self,
        agency: &str,
        capabilities: &[String],
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        let marks = vec!["?"; capabilities.len()].join(", ");
        let sql = format!(
            "SELECT t.id, t.rank,
               (SELECT count(*) FROM task_needs n JOIN tasks d ON d.id = n.task
                WHERE n.need = t.id AND d.state NOT IN ('done', 'cancelled'))
             FROM tasks t
             WHERE t.state = 'ready' AND (t.agency = ?1 {})",
            if capabilities.is_empty() {
                String::new()
            } else {
                format!("OR (t.agency IS NULL AND t.capability IN ({marks}))")
            }
        );
        let mut args: Vec<&str> = vec![agency];
        args.extend(capabilities.iter().map(String::as_str));
        let mut stmt = self.tx.prepare_cached(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(|r| r.collect())
            .map_err(self.err())?;
        Ok(rows)
    }

    /// The oldest task `agency/agent` holds as claimed.
    pub fn held_by(&self, agency: &str, agent: &str) -> StoreResult<Option<i64>> {
        self.tx
            .prepare_cached(
                "SELECT id FROM tasks WHERE state = 'claimed' AND agency = ?1 AND agent = ?2
                 ORDER BY claimed_at, id LIMIT 1",
            )
            .and_then(|mut s| s.query_row([agency, agent], |r| r.get(0)).optional())
            .map_err(self.err())
    }

    /// Ready tasks that wait for an agency with their capability.
    pub fn unrouted(&self) -> StoreResult<Vec<i64>> {
        ids(
            &self.tx,
            "SELECT id FROM tasks WHERE state = 'ready' AND agency IS NULL ORDER BY rank DESC, id",
            [],
        )
        .map_err(self.err())
    }

    /// Tasks in review under approval item `approval`.
    pub fn under_approval(&self, approval: i64) -> StoreResult<Vec<i64>> {
        ids(
            &self.tx,
            "SELECT id FROM tasks WHERE approval_id = ?1 AND state = 'review' ORDER BY id",
            [approval],
        )
        .map_err(self.err())
    }

    /// The tasks of a plan.
    pub fn plan_tasks(&self, plan: &str) -> StoreResult<Vec<TaskRow>> {
        let ids = ids(
            &self.tx,
            "SELECT id FROM tasks WHERE plan = ?1 ORDER BY id",
            [plan],
        )
        .map_err(self.err())?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.get(id)?);
        }
        Ok(out)
    }

    /// Starts or stops the lease clock of claimed tasks: `gone` ones get
    /// `gone_since = now` unless already set, `alive` ones lose it.
    pub fn mark_gone(&self, gone: &[i64], alive: &[i64]) -> StoreResult<()> {
        for id in gone {
            self.tx
                .prepare_cached(&format!(
                    "UPDATE tasks SET gone_since = {NOW}
                     WHERE id = ?1 AND state = 'claimed' AND gone_since IS NULL"
                ))
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
        }
        for id in alive {
            self.tx
                .prepare_cached("UPDATE tasks SET gone_since = NULL WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Claimed tasks whose claimer has been gone at least `lease_secs`.
    pub fn lapsed(&self, lease_secs: f64) -> StoreResult<Vec<i64>> {
        ids(
            &self.tx,
            "SELECT id FROM tasks WHERE state = 'claimed' AND gone_since IS NOT NULL
               AND gone_since <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1) ORDER BY id",
            [format!("-{lease_secs:.3} seconds")],
        )
        .map_err(self.err())
    }
}

impl Store {
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed when it
    /// returns `Ok` and `commit` is set, rolled back otherwise (so a refused
    /// change writes nothing, and `commit = false` is a dry run).
    pub fn tasks_tx<T, E: From<StoreError>>(
        &mut self,
        commit: bool,
        f: impl FnOnce(&TaskTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.path.clone();
        let tx = immediate(&mut self.conn, &path)?;
        let before = events_before(self.activity.as_ref(), &tx).map_err(sql_err(&path))?;
        let ttx = TaskTx { tx, path };
        let out = f(&ttx)?;
        if commit {
            let TaskTx { tx, path } = ttx;
            let recorded = events_after(&tx, before).map_err(sql_err(&path))?;
            tx.commit().map_err(sql_err(&path))?;
            if let Some(logs) = &self.activity {
                logs.append(&recorded);
            }
        }
        Ok(out)
    }

    pub fn task(&self, id: i64) -> StoreResult<Option<TaskRow>> {
        get_task(&self.conn, id).map_err(self.err())
    }

    /// Tasks matching `f`, by id, each with its needs.
    pub fn tasks(&self, f: &TaskFilter) -> StoreResult<Vec<TaskRow>> {
        // Only the filters given, so SQLite can use the state index.
        let mut conds = Vec::new();
        let mut args: Vec<&str> = Vec::new();
        if let Some(a) = &f.agency {
            args.push(a);
            conds.push(format!("t.agency = ?{}", args.len()));
        }
        if let Some(s) = &f.state {
            args.push(s);
            conds.push(format!("t.state = ?{}", args.len()));
        }
        let filter = if conds.is_empty() {
            "1".to_string()
        } else {
            conds.join(" AND ")
        };
        let columns: Vec<String> = TASK_COLUMNS
            .split(',')
            .map(|c| format!("t.{}", c.trim()))
            .collect();
        let mut rows = self.query(
            &format!(
                "SELECT {} FROM tasks t WHERE {filter} ORDER BY t.id",
                columns.join(", ")
            ),
            params_from_iter(&args),
            task_from_row,
        )?;
        let edges: Vec<(i64, i64)> = self.query(
            &format!(
                "SELECT n.task, n.need FROM tasks t JOIN task_needs n ON n.task = t.id
                 WHERE {filter} ORDER BY n.task, n.need"
            ),
            params_from_iter(&args),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut at = 0;
        for (task, need) in edges {
            while rows.get(at).is_some_and(|r| r.id < task) {
                at += 1;
            }
            if let Some(r) = rows.get_mut(at).filter(|r| r.id == task) {
                r.needs.push(need);
            }
        }
        Ok(rows)
    }

    /// Every task's state by id.
    pub fn task_states(&self) -> StoreResult<HashMap<i64, String>> {
        Ok(self
            .query("SELECT id, state FROM tasks", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .into_iter()
            .collect())
    }

    /// Tasks that need `id`.
    pub fn task_dependents(&self, id: i64) -> StoreResult<Vec<i64>> {
        ids(
            &self.conn,
            "SELECT task FROM task_needs WHERE need = ?1 ORDER BY task",
            [id],
        )
        .map_err(self.err())
    }

    /// A task's history, oldest first.
    pub fn task_history(&self, id: i64) -> StoreResult<Vec<TaskEventRow>> {
        self.query(
            "SELECT at, kind, actor, note, detail FROM task_events WHERE task = ?1 ORDER BY id",
            [id],
            |r| {
                let detail: String = r.get(4)?;
                Ok(TaskEventRow {
                    at: r.get(0)?,
                    kind: r.get(1)?,
                    actor: r.get(2)?,
                    note: r.get(3)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            },
        )
    }

    /// Tasks per agency and state (for the monitor: done/total, blocked).
    pub fn task_counts(&self) -> StoreResult<Vec<TaskCount>> {
        self.query(
            "SELECT agency, state, count(*) FROM tasks GROUP BY agency, state
             ORDER BY agency, state",
            [],
            |r| {
                Ok(TaskCount {
                    agency: r.get(0)?,
                    state: r.get(1)?,
                    count: r.get(2)?,
                })
            },
        )
    }

    /// Every claimed task, for the lease check.
    pub fn claims(&self) -> StoreResult<Vec<Claim>> {
        self.query(
            "SELECT id, agency, agent, gone_since FROM tasks
             WHERE state = 'claimed' AND agency IS NOT NULL AND agent IS NOT NULL ORDER BY id",
            [],
            |r| {
                Ok(Claim {
                    id: r.get(0)?,
                    agency: r.get(1)?,
                    agent: r.get(2)?,
                    gone_since: r.get(3)?,
                })
            },
        )
    }

    /// Tasks an agent of `agency` holds (claimed, in review, or blocked by
    /// it): (agent, id, title, state).
    pub fn held_tasks(&self, agency: &str) -> StoreResult<Vec<(String, i64, String, String)>> {
        self.query(
            "SELECT agent, id, title, state FROM tasks
             WHERE agency = ?1 AND agent IS NOT NULL AND state IN ('claimed', 'review', 'blocked')
             ORDER BY id",
            [agency],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// Changes whenever a task changes: every change to a task records
    /// an event in its history.
    pub fn task_signature(&self) -> StoreResult<i64> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM task_events", [], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    /// Rewrites `registry/task_graph.json`: every task with what it needs.
    pub fn write_task_mirror(&self) -> StoreResult<()> {
        #[derive(Serialize)]
        struct Graph {
            tasks: Vec<TaskRow>,
        }
        let tasks = self.tasks(&TaskFilter::default())?;
        self.write_mirror("task_graph.json", &Graph { tasks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(title: &str, agency: Option<&str>, needs: Vec<i64>) -> NewTask {
        NewTask {
            title: title.into(),
            agency: agency.map(str::to_string),
            priority: "normal".into(),
            rank: 1,
            needs,
            ..NewTask::default()
        }
    }

    #[test]
    fn counts_per_agency_and_state_for_the_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .tasks_tx(true, |tx| {
                tx.insert(&new("a", Some("Code"), vec![]), "done")?;
                tx.insert(&new("b", Some("Code"), vec![1]), "ready")?;
                tx.insert(&new("c", Some("Code"), vec![1, 2]), "waiting")?;
                tx.insert(&new("d", Some("Qa"), vec![]), "blocked")?;
                tx.insert(&new("e", None, vec![]), "ready")?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let count = |agency: Option<&str>, state: &str| {
            store
                .task_counts()
                .unwrap()
                .iter()
                .find(|c| c.agency.as_deref() == agency && c.state == state)
                .map_or(0, |c| c.count)
        };
        assert_eq!(count(Some("Code"), "done"), 1);
        assert_eq!(count(Some("Code"), "ready"), 1);
        assert_eq!(count(Some("Qa"), "blocked"), 1);
        assert_eq!(count(None, "ready"), 1);
        assert_eq!(count(Some("Qa"), "done"), 0);
        // And the list carries each task's needs, filtered or not.
        let all = store.tasks(&TaskFilter::default()).unwrap();
        assert_eq!(all[2].needs, [1, 2]);
        let ready = store
            .tasks(&TaskFilter {
                agency: Some("Code".into()),
                state: Some("ready".into()),
            })
            .unwrap();
        assert_eq!((ready.len(), ready[0].needs.clone()), (1, vec![1]));
    }

    #[test]
    fn a_refused_transaction_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let r: Result<(), StoreError> = store.tasks_tx(true, |tx| {
            tx.insert(&new("a", Some("Code"), vec![]), "ready")?;
            Err(StoreError::Mirror {
                path: "-".into(),
                message: "refused".into(),
            })
        });
        assert!(r.is_err());
        assert!(store.tasks(&TaskFilter::default()).unwrap().is_empty());
        // A needs row to a missing task is refused by the schema too.
        let r = store.tasks_tx(true, |tx| tx.insert(&new("b", None, vec![99]), "waiting"));
        assert!(r.is_err());
        assert!(store.tasks(&TaskFilter::default()).unwrap().is_empty());
    }
}
