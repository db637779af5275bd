//! The registry: SQLite (WAL) as the source of truth, and the JSON mirrors.
//!
//! Only this module writes SQL. Migrations are numbered, embedded in the
//! binary, and applied at open; `user_version` records how far a database is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use crate::workspace::write_atomic;

mod monitor;
mod tasks;
pub use tasks::{Claim, NewTask, TaskCount, TaskEventRow, TaskFilter, TaskRow, TaskTx};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_agencies.sql"),
    include_str!("migrations/002_messages.sql"),
    include_str!("migrations/003_approvals.sql"),
    include_str!("migrations/004_worktrees.sql"),
    include_str!("migrations/005_schedule.sql"),
    include_str!("migrations/010_tasks.sql"),
    include_str!("migrations/016_monitor.sql"),
];

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Current UTC time, as every stored timestamp is written.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("registry database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("registry database {path} is newer (version {found}) than this agency binary knows ({known})")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("cannot write registry file {path}: {message}")]
    Mirror { path: String, message: String },
}

impl StoreError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::TooNew { .. } => Some("upgrade agency".into()),
            StoreError::Sqlite { source, .. }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                Some("another agency command holds the registry; try again".into())
            }
            StoreError::Sqlite { path, source }
                if matches!(
                    source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
                ) =>
            {
                let aside = shlex::try_quote(&format!("{path}.damaged"))
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| format!("{path}.damaged"));
                let path = shlex::try_quote(path)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| path.clone());
                Some(format!(
                    "the registry database is damaged: move it aside (`mv {path} {aside}`, \
                     with its -wal and -shm files if any), then `agency create NAME` brings each \
                     agency back into a new registry; queued messages and approvals stay in the \
                     old file (`sqlite3 {aside} .recover` may save them)"
                ))
            }
            _ => None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgencyRow {
    pub name: String,
    pub template: String,
    pub layout: String,
    pub session: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub role: String,
    pub position: i64,
    pub command: String,
    pub window: String,
    pub pane_id: Option<String>,
    /// The agent's own git worktree and branch, when it has them.
    pub worktree: Option<String>,
    pub branch: Option<String>,
    /// Why the setup command failed (then the agent was not started).
    pub setup_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub agency: Option<String>,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// A decision on an approval item.
#[derive(Debug, Clone)]
pub struct Decision {
    pub id: i64,
    pub agency: String,
    pub status: &'static str,
    pub by: String,
    pub note: Option<String>,
    pub feedback: Option<String>,
    pub merge_commit: Option<String>,
}

/// A message as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageRow {
    pub id: i64,
    pub from: String,
    pub to: String,
    #[serde(skip)]
    pub agency: String,
    #[serde(skip)]
    pub agent: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    pub state: String,
    pub attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub from: String,
    pub agency: String,
    pub agent: String,
    pub kind: String,
    pub body: String,
    pub payload: Option<serde_json::Value>,
    /// Where it came from, when it must be queued at most once (outbox files).
    pub origin: Option<String>,
    /// Not delivered before this time (RFC 3339 UTC, as stored timestamps).
    pub deliver_at: Option<String>,
}

/// Inserts one message with its `message.queued` event; `None` when its
/// `origin` was queued before.
fn insert_message(tx: &Transaction<'_>, m: &NewMessage) -> rusqlite::Result<Option<i64>> {
    let payload = m.payload.as_ref().map(|p| p.to_string());
    let id: Option<i64> = tx
        .query_row(
            &format!(
                "INSERT INTO messages (sender, agency, agent, kind, body, payload, origin,
                   deliver_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW})
                 ON CONFLICT (origin) DO NOTHING RETURNING id"
            ),
            params![
                m.from,
                m.agency,
                m.agent,
                m.kind,
                m.body,
                payload,
                m.origin,
                m.deliver_at
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = id {
        let detail = serde_json::json!({
            "id": id, "from": m.from, "to": format!("{}/{}", m.agency, m.agent), "type": m.kind,
        });
        insert_event(tx, Some(&m.agency), "message.queued", &detail)?;
    }
    Ok(id)
}

/// Marks a pending item decided, with its event; `false` if it was not
/// pending any more.
fn decide_in(tx: &Transaction<'_>, d: &Decision) -> rusqlite::Result<bool> {
    let n = tx.execute(
        &format!(
            "UPDATE approvals SET status = ?2, decided_by = ?3, decision_note = ?4,
               feedback = ?5, merge_commit = ?6, decided_at = {NOW}
             WHERE id = ?1 AND status = 'pending'"
        ),
        params![d.id, d.status, d.by, d.note, d.feedback, d.merge_commit],
    )?;
    if n == 1 {
        let detail = serde_json::json!({
            "id": d.id, "status": d.status, "by": d.by, "note": d.note,
            "feedback": d.feedback, "merge_commit": d.merge_commit,
        });
        insert_event(
            tx,
            Some(&d.agency),
            &format!("approval.{}", d.status),
            &detail,
        )?;
    }
    Ok(n == 1)
}

const MESSAGE_COLUMNS: &str = "id, sender, agency, agent, kind, body, payload, state, attempts,
    last_error, created_at, delivered_at";

fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let agency: String = r.get(2)?;
    let agent: String = r.get(3)?;
    let payload: Option<String> = r.get(6)?;
    Ok(MessageRow {
        id: r.get(0)?,
        from: r.get(1)?,
        to: format!("{agency}/{agent}"),
        agency,
        agent,
        kind: r.get(4)?,
        body: r.get(5)?,
        payload: payload.and_then(|p| serde_json::from_str(&p).ok()),
        state: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        delivered_at: r.get(11)?,
    })
}

/// Why a message cannot be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckRefused {
    Missing(i64),
    /// Its state (`queued`, `failed`): it never reached its agent.
    NotDelivered(i64, String),
    /// Addressed to another agent (`AGENCY/AGENT`).
    NotYours(i64, String),
}

/// A handoff to record.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffRow {
    pub id: i64,
    pub task: String,
    pub from: String,
    pub to: String,
    pub branch: String,
    pub commit: String,
    pub artifacts: Vec<String>,
    pub notes: String,
    pub priority: String,
    pub message_id: Option<i64>,
    pub created_at: String,
}

/// An item of the approval queue.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApprovalRow {
    pub id: i64,
    pub agency: String,
    pub task: String,
    pub title: String,
    pub branch: String,
    pub commit: String,
    pub base_branch: String,
    pub status: String,
    pub tests_passed: Option<i64>,
    pub tests_failed: Option<i64>,
    pub coverage: Option<f64>,
    pub test_command: String,
    pub test_exit_code: Option<i64>,
    pub test_seconds: f64,
    pub test_log: String,
    pub files_changed: i64,
    pub insertions: i64,
    pub deletions: i64,
    pub demo: Option<String>,
    pub feedback: Option<String>,
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    pub merge_commit: Option<String>,
    pub previous_id: Option<i64>,
    pub created_at: String,
    pub decided_at: Option<String>,
}

const APPROVAL_COLUMNS: &str = "id, agency, task, title, branch, commit_id, base_branch, status,
    tests_passed, tests_failed, coverage, test_command, test_exit_code, test_seconds, test_log,
    files_changed, insertions, deletions, demo, feedback, decided_by, decision_note, merge_commit,
    previous_id, created_at, decided_at";

fn approval_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.get(0)?,
        agency: r.get(1)?,
        task: r.get(2)?,
        title: r.get(3)?,
        branch: r.get(4)?,
        commit: r.get(5)?,
        base_branch: r.get(6)?,
        status: r.get(7)?,
        tests_passed: r.get(8)?,
        tests_failed: r.get(9)?,
        coverage: r.get(10)?,
        test_command: r.get(11)?,
        test_exit_code: r.get(12)?,
        test_seconds: r.get(13)?,
        test_log: r.get(14)?,
        files_changed: r.get(15)?,
        insertions: r.get(16)?,
        deletions: r.get(17)?,
        demo: r.get(18)?,
        feedback: r.get(19)?,
        decided_by: r.get(20)?,
        decision_note: r.get(21)?,
        merge_commit: r.get(22)?,
        previous_id: r.get(23)?,
        created_at: r.get(24)?,
        decided_at: r.get(25)?,
    })
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    registry: PathBuf,
    /// Device and inode of the database file when opened.
    file_id: Option<(u64, u64)>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Store {
    /// Opens (creating if needed) `registry/agency.db`.
    pub fn open(registry: &Path) -> StoreResult<Store> {
        let path = registry.join("agency.db");
        let label = path.display().to_string();
        std::fs::create_dir_all(registry).map_err(|e| StoreError::Mirror {
            path: registry.display().to_string(),
            message: e.to_string(),
        })?;
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: label.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path,
            registry: registry.to_path_buf(),
            file_id: None,
        };
        store.configure()?;
        store.migrate()?;
        store.file_id = file_id(&store.path);
        Ok(store)
    }

    /// Whether `agency.db` was deleted or replaced since this store opened
    /// it: a long-running process then works on a file nobody else sees.
    pub fn replaced(&self) -> bool {
        file_id(&self.path) != self.file_id
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn configure(&mut self) -> StoreResult<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(self.err())?;
        // WAL lets readers run beside a writer; FULL makes each commit
        // survive a power cut, not only a crash of this process.
        self.conn
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            )
            .map_err(self.err())
    }

    fn migrate(&mut self) -> StoreResult<()> {
        let known = MIGRATIONS.len() as i64;
        let path = self.path.display().to_string();
        // Up to date (the usual case): no need to take the write lock, which
        // every other process opening the registry would queue behind.
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err())?;
        if current == known {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err)?;
        if version > known {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(sql_err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)
    }

    pub fn agency(&self, name: &str) -> StoreResult<Option<AgencyRow>> {
        self.conn
            .query_row(
                "SELECT name, template, layout, session, state, created_at, updated_at
                 FROM agencies WHERE name = ?1",
                [name],
                agency_from_row,
            )
            .optional()
            .map_err(self.err())
    }

    pub fn agencies(&self) -> StoreResult<Vec<AgencyRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, template, layout, session, state, created_at, updated_at
                 FROM agencies ORDER BY name",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], agency_from_row)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    pub fn agents(&self, agency: &str) -> StoreResult<Vec<AgentRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, role, position, command, window, pane_id, worktree, branch, setup_error
                 FROM agents WHERE agency = ?1 ORDER BY position",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([agency], |r| {
                Ok(AgentRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    position: r.get(2)?,
                    command: r.get(3)?,
                    window: r.get(4)?,
                    pane_id: r.get(5)?,
                    worktree: r.get(6)?,
                    branch: r.get(7)?,
                    setup_error: r.get(8)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Records an agency as running with exactly `agents`, plus an event, in
    /// one transaction.
    pub fn save_running(
        &mut self,
        agency: &AgencyRow,
        agents: &[AgentRow],
        event_kind: &str,
        detail: &serde_json::Value,
    ) -> StoreResult<String> {
        self.write_tx(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO agencies (name, template, layout, session, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'running', {NOW}, {NOW})
                     ON CONFLICT (name) DO UPDATE SET template = ?2, layout = ?3, session = ?4,
                         state = 'running', updated_at = {NOW}"
                ),
                params![agency.name, agency.template, agency.layout, agency.session],
            )?;
            tx.execute("DELETE FROM agents WHERE agency = ?1", [&agency.name])?;
            for a in agents {
                tx.execute(
                    "INSERT INTO agents (agency, name, role, position, command, window, pane_id,
                       worktree, branch, setup_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        agency.name,
                        a.name,
                        a.role,
                        a.position,
                        a.command,
                        a.window,
                        a.pane_id,
                        a.worktree,
                        a.branch,
                        a.setup_error
                    ],
                )?;
            }
            insert_event(tx, Some(&agency.name), event_kind, detail)
        })
    }

    /// Sets an agency's state and records an event, in one transaction.
    pub fn set_state(
        &mut self,
        agency: &str,
        state: &str,
        event_kind: &str,
        detail: &serde_json::Value,
    ) -> StoreResult<String> {
        self.write_tx(|tx| {
            tx.execute(
                &format!("UPDATE agencies SET state = ?2, updated_at = {NOW} WHERE name = ?1"),
                params![agency, state],
            )?;
            insert_event(tx, Some(agency), event_kind, detail)
        })
    }

    /// Appends one event; returns its timestamp.
    pub fn record_event(
        &mut self,
        agency: Option<&str>,
        kind: &str,
        detail: &serde_json::Value,
    ) -> StoreResult<String> {
        self.write_tx(|tx| insert_event(tx, agency, kind, detail))
    }

    /// The newest `limit` events, oldest first.
    pub fn events(&self, agency: Option<&str>, limit: i64) -> StoreResult<Vec<EventRow>> {
        self.query(
            "SELECT id, at, agency, kind, detail FROM
               (SELECT * FROM events WHERE ?1 IS NULL OR agency = ?1 ORDER BY id DESC LIMIT ?2)
             ORDER BY id",
            params![agency, limit],
            event_from_row,
        )
    }

    fn write_tx<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let path = self.path.display().to_string();
        let sql_err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let out = f(&tx).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(out)
    }

    fn query<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err())?;
        let rows = stmt
            .query_map(params, f)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Queues messages (all or none) with a `message.queued` event each;
    /// committed when this returns. Returns their ids; a message whose
    /// `origin` was queued before gets no new row and no id.
    pub fn queue_messages(&mut self, msgs: &[NewMessage]) -> StoreResult<Vec<i64>> {
        self.write_tx(|tx| {
            let mut ids = Vec::new();
            for m in msgs {
                ids.extend(insert_message(tx, m)?);
            }
            Ok(ids)
        })
    }

    /// The oldest queued message of each recipient: the router's work list.
    pub fn next_per_recipient(&self) -> StoreResult<Vec<MessageRow>> {
        self.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN
                   (SELECT min(id) FROM messages
                    WHERE state = 'queued' AND (deliver_at IS NULL OR deliver_at <= {NOW})
                    GROUP BY agency, agent)
                 ORDER BY id"
            ),
            [],
            message_from_row,
        )
    }

    /// One recipient's queued messages that are due, oldest first.
    pub fn due_for(&self, agency: &str, agent: &str) -> StoreResult<Vec<MessageRow>> {
        self.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE agency = ?1 AND agent = ?2 AND state = 'queued'
                   AND (deliver_at IS NULL OR deliver_at <= {NOW})
                 ORDER BY id"
            ),
            params![agency, agent],
            message_from_row,
        )
    }

    pub fn message(&self, id: i64) -> StoreResult<Option<MessageRow>> {
        Ok(self
            .query(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                message_from_row,
            )?
            .pop())
    }

    /// Marks messages delivered, with an event each, in one transaction.
    /// Returns the delivery time.
    pub fn mark_delivered(&mut self, msgs: &[&MessageRow]) -> StoreResult<String> {
        self.write_tx(|tx| {
            let at: String = tx.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
            for m in msgs {
                tx.execute(
                    "UPDATE messages SET state = 'delivered', delivered_at = ?2, attempts = attempts + 1
                     WHERE id = ?1 AND state = 'queued'",
                    params![m.id, at],
                )?;
                let detail = serde_json::json!({ "id": m.id, "to": m.to, "type": m.kind });
                insert_event(tx, Some(&m.agency), "message.delivered", &detail)?;
            }
            Ok(at)
        })
    }

    /// Counts a failed delivery attempt; after `max_attempts` the message is
    /// `failed`. Returns the new state.
    pub fn record_failure(
        &mut self,
        msg: &MessageRow,
        error: &str,
        max_attempts: i64,
    ) -> StoreResult<String> {
        self.write_tx(|tx| {
            let state: String = tx.query_row(
                "UPDATE messages SET attempts = attempts + 1, last_error = ?2,
                   state = CASE WHEN attempts + 1 >= ?3 THEN 'failed' ELSE state END
                 WHERE id = ?1 RETURNING state",
                params![msg.id, error, max_attempts],
                |r| r.get(0),
            )?;
            if state == "failed" {
                let detail = serde_json::json!({ "id": msg.id, "to": msg.to, "error": error });
                insert_event(tx, Some(&msg.agency), "message.failed", &detail)?;
            }
            Ok(state)
        })
    }

    /// Marks a message typed into its pane as `failed` after all (it never
    /// left the input box), with an event. `false` if it is no longer
    /// `delivered` (acked meanwhile, say).
    pub fn fail_delivered(
        &mut self,
        id: i64,
        to: &str,
        agency: &str,
        error: &str,
    ) -> StoreResult<bool> {
        self.write_tx(|tx| {
            let changed = tx.execute(
                "UPDATE messages SET state = 'failed', last_error = ?2
                 WHERE id = ?1 AND state = 'delivered'",
                params![id, error],
            )?;
            if changed == 1 {
                let detail = serde_json::json!({ "id": id, "to": to, "error": error });
                insert_event(tx, Some(agency), "message.failed", &detail)?;
            }
            Ok(changed == 1)
        })
    }

    /// Scheduled messages not yet delivered, soonest first.
    pub fn scheduled(&self) -> StoreResult<Vec<(MessageRow, String)>> {
        self.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS}, deliver_at FROM messages
                 WHERE state = 'queued' AND deliver_at IS NOT NULL ORDER BY deliver_at, id"
            ),
            [],
            |r| Ok((message_from_row(r)?, r.get(12)?)),
        )
    }

    /// Cancels a scheduled message that is still waiting; `false` if there
    /// is none with that id.
    pub fn cancel_scheduled(&mut self, id: i64) -> StoreResult<bool> {
        self.write_tx(|tx| {
            let agency: Option<String> = tx
                .query_row(
                    "DELETE FROM messages WHERE id = ?1 AND state = 'queued' AND deliver_at IS NOT NULL
                     RETURNING agency",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(a) = &agency {
                insert_event(tx, Some(a), "schedule.cancelled", &serde_json::json!({ "id": id }))?;
            }
            Ok(agency.is_some())
        })
    }

    /// Marks messages acknowledged, all or none: each must exist, have
    /// been delivered (acking twice is harmless), and be addressed to `by`
    /// when an agent acks (`None`: the human, who may ack any). Returns
    /// why some could not be; then nothing changed. (An ack of a message
    /// still queued would cancel it for good.)
    pub fn ack(&mut self, ids: &[i64], by: Option<(&str, &str)>) -> StoreResult<Vec<AckRefused>> {
        self.write_tx(|tx| {
            let mut refused = Vec::new();
            for &id in ids {
                let row: Option<(String, String, String)> = tx
                    .query_row(
                        "SELECT agency, agent, state FROM messages WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                match row {
                    None => refused.push(AckRefused::Missing(id)),
                    Some((agency, agent, _)) if by.is_some_and(|b| b != (&agency, &agent)) => {
                        refused.push(AckRefused::NotYours(id, format!("{agency}/{agent}")))
                    }
                    Some((_, _, state)) if state != "delivered" && state != "acked" => {
                        refused.push(AckRefused::NotDelivered(id, state))
                    }
                    Some(_) => {}
                }
            }
            if !refused.is_empty() {
                return Ok(refused);
            }
            for id in ids {
                let agency: String = tx.query_row(
                    &format!(
                        "UPDATE messages SET state = 'acked', acked_at = coalesce(acked_at, {NOW})
                         WHERE id = ?1 RETURNING agency"
                    ),
                    [id],
                    |r| r.get(0),
                )?;
                insert_event(
                    tx,
                    Some(&agency),
                    "message.acked",
                    &serde_json::json!({ "id": id }),
                )?;
            }
            Ok(refused)
        })
    }

    /// Messages to one agent, oldest first; without `all`, only the ones not
    /// yet acknowledged.
    pub fn inbox(&self, agency: &str, agent: &str, all: bool) -> StoreResult<Vec<MessageRow>> {
        self.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE agency = ?1 AND agent = ?2 AND (?3 OR state != 'acked') ORDER BY id"
            ),
            params![agency, agent, all],
            message_from_row,
        )
    }

    /// Queued and failed messages, oldest first.
    pub fn undelivered(&self) -> StoreResult<Vec<MessageRow>> {
        self.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE state IN ('queued', 'failed') ORDER BY id"
            ),
            [],
            message_from_row,
        )
    }

    /// Changes whenever the set of undelivered messages changes.
    pub fn queue_signature(&self) -> StoreResult<(i64, i64, i64)> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(max(id), 0), coalesce(sum(attempts), 0) FROM messages
                 WHERE state IN ('queued', 'failed')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.err())
    }

    /// Per agent of `agency`: (queued, failed) message counts.
    pub fn pending_counts(&self, agency: &str) -> StoreResult<Vec<(String, i64, i64)>> {
        self.query(
            "SELECT agent, sum(state = 'queued'), sum(state = 'failed') FROM messages
             WHERE agency = ?1 AND state IN ('queued', 'failed') GROUP BY agent",
            [agency],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Events after `after_id`, oldest first (for `log --follow`).
    pub fn events_after(&self, agency: Option<&str>, after_id: i64) -> StoreResult<Vec<EventRow>> {
        self.query(
            "SELECT id, at, agency, kind, detail FROM events
             WHERE id > ?2 AND (?1 IS NULL OR agency = ?1) ORDER BY id",
            params![agency, after_id],
            event_from_row,
        )
    }

    /// Rewrites `registry/message_queue.json`: the undelivered messages.
    pub fn write_queue_mirror(&self) -> StoreResult<()> {
        self.write_mirror("message_queue.json", &self.undelivered()?)
    }

    fn write_mirror<T: Serialize>(&self, name: &str, value: &T) -> StoreResult<()> {
        let path = self.registry.join(name);
        let mut text = serde_json::to_vec_pretty(value).expect("plain data serializes");
        text.push(b'\n');
        write_atomic(&path, &text).map_err(|e| StoreError::Mirror {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Records a handoff (with its event); returns it with id and time.
    pub fn insert_handoff(&mut self, h: &HandoffRow) -> StoreResult<HandoffRow> {
        let mut h = h.clone();
        let (id, at) = self.write_tx(|tx| {
            let (id, at): (i64, String) = tx.query_row(
                &format!(
                    "INSERT INTO handoffs (task, from_agency, to_agency, branch, commit_id, artifacts,
                       notes, priority, message_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, {NOW}) RETURNING id, created_at"
                ),
                params![
                    h.task,
                    h.from,
                    h.to,
                    h.branch,
                    h.commit,
                    serde_json::to_string(&h.artifacts).expect("strings serialize"),
                    h.notes,
                    h.priority,
                    h.message_id
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let detail = serde_json::json!({
                "id": id, "task": h.task, "from": h.from, "to": h.to, "branch": h.branch,
                "commit": h.commit, "message": h.message_id,
            });
            insert_event(tx, Some(&h.to), "handoff", &detail)?;
            Ok((id, at))
        })?;
        h.id = id;
        h.created_at = at;
        Ok(h)
    }

    /// Queues an approval item (with its event); returns it.
    pub fn insert_approval(&mut self, a: &ApprovalRow) -> StoreResult<ApprovalRow> {
        let id = self.write_tx(|tx| {
            let id: i64 = tx.query_row(
                &format!(
                    "INSERT INTO approvals (agency, task, title, branch, commit_id, base_branch,
                       tests_passed, tests_failed, coverage, test_command, test_exit_code,
                       test_seconds, test_log, files_changed, insertions, deletions, demo,
                       previous_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                       ?17, ?18, {NOW}) RETURNING id"
                ),
                params![
                    a.agency,
                    a.task,
                    a.title,
                    a.branch,
                    a.commit,
                    a.base_branch,
                    a.tests_passed,
                    a.tests_failed,
                    a.coverage,
                    a.test_command,
                    a.test_exit_code,
                    a.test_seconds,
                    a.test_log,
                    a.files_changed,
                    a.insertions,
                    a.deletions,
                    a.demo,
                    a.previous_id
                ],
                |r| r.get(0),
            )?;
            let detail = serde_json::json!({
                "id": id, "task": a.task, "branch": a.branch, "commit": a.commit,
                "tests_passed": a.tests_passed, "tests_failed": a.tests_failed,
            });
            insert_event(tx, Some(&a.agency), "approval.submitted", &detail)?;
            Ok(id)
        })?;
        Ok(self.approval(id)?.expect("just inserted"))
    }

    pub fn approval(&self, id: i64) -> StoreResult<Option<ApprovalRow>> {
        Ok(self
            .query(
                &format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?1"),
                [id],
                approval_from_row,
            )?
            .pop())
    }

    /// Items with `status` (`None`: all), oldest first.
    pub fn approvals(&self, status: Option<&str>) -> StoreResult<Vec<ApprovalRow>> {
        self.query(
            &format!(
                "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
            ),
            [status],
            approval_from_row,
        )
    }

    /// The newest earlier item of the same agency and task.
    pub fn latest_for_task(&self, agency: &str, task: &str) -> StoreResult<Option<ApprovalRow>> {
        Ok(self
            .query(
                &format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE agency = ?1 AND task = ?2
                     ORDER BY id DESC LIMIT 1"
                ),
                params![agency, task],
                approval_from_row,
            )?
            .pop())
    }

    /// Decides a pending item; `false` if it was not pending any more.
    pub fn decide(&mut self, d: &Decision) -> StoreResult<bool> {
        self.write_tx(|tx| decide_in(tx, d))
    }

    /// Decides a pending item and queues the message that tells its agency,
    /// in one transaction: both or neither. `None` if it was not pending.
    pub fn decide_and_queue(&mut self, d: &Decision, msg: &NewMessage) -> StoreResult<Option<i64>> {
        self.write_tx(|tx| {
            if !decide_in(tx, d)? {
                return Ok(None);
            }
            insert_message(tx, msg)
        })
    }

    /// Rewrites `registry/approval_queue.json`: the pending items.
    pub fn write_approvals_mirror(&self) -> StoreResult<()> {
        self.write_mirror("approval_queue.json", &self.approvals(Some("pending"))?)
    }

    /// Rewrites `registry/active_agencies.json` from the database.
    pub fn write_agencies_mirror(&self) -> StoreResult<()> {
        #[derive(Serialize)]
        struct Entry {
            #[serde(flatten)]
            agency: AgencyRow,
            agents: Vec<AgentRow>,
        }
        let mut entries = Vec::new();
        for agency in self.agencies()? {
            let agents = self.agents(&agency.name)?;
            entries.push(Entry { agency, agents });
        }
        self.write_mirror("active_agencies.json", &entries)
    }
}

fn insert_event(
    tx: &Transaction<'_>,
    agency: Option<&str>,
    kind: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<String> {
    tx.query_row(
        &format!(
            "INSERT INTO events (at, agency, kind, detail) VALUES ({NOW}, ?1, ?2, ?3) RETURNING at"
        ),
        params![agency, kind, detail.to_string()],
        |r| r.get(0),
    )
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let detail: String = r.get(4)?;
    Ok(EventRow {
        id: r.get(0)?,
        at: r.get(1)?,
        agency: r.get(2)?,
        kind: r.get(3)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

fn agency_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgencyRow> {
    Ok(AgencyRow {
        name: r.get(0)?,
        template: r.get(1)?,
        layout: r.get(2)?,
        session: r.get(3)?,
        state: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (AgencyRow, Vec<AgentRow>) {
        let agency = AgencyRow {
            name: "A".into(),
            template: "Generic".into(),
            layout: "windows".into(),
            session: "A".into(),
            state: "running".into(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let agents = vec![AgentRow {
            name: "coordinator".into(),
            role: "coordinator".into(),
            position: 0,
            command: "bash".into(),
            window: "coordinator".into(),
            pane_id: Some("%1".into()),
            worktree: None,
            branch: None,
            setup_error: None,
        }];
        (agency, agents)
    }

    #[test]
    fn migrations_apply_once_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (a, agents) = sample();
        s.save_running(&a, &agents, "create", &serde_json::json!({}))
            .unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.agencies().unwrap().len(), 1);
        assert_eq!(s.agents("A").unwrap(), agents);
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn failures_end_in_failed_and_stay_visible() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let ids = s
            .queue_messages(&[NewMessage {
                from: "human".into(),
                agency: "A".into(),
                agent: "x".into(),
                kind: "NOTE".into(),
                body: "hi".into(),
                payload: None,
                origin: None,
                deliver_at: None,
            }])
            .unwrap();
        let m = s.message(ids[0]).unwrap().unwrap();
        for attempt in 1..=3 {
            let state = s.record_failure(&m, "pane gone", 3).unwrap();
            assert_eq!(state, if attempt < 3 { "queued" } else { "failed" });
        }
        assert!(
            s.next_per_recipient().unwrap().is_empty(),
            "failed is not retried"
        );
        let inbox = s.inbox("A", "x", false).unwrap();
        assert_eq!(inbox[0].state, "failed");
        assert_eq!(inbox[0].last_error.as_deref(), Some("pane gone"));
        assert_eq!(s.undelivered().unwrap().len(), 1);
        assert_eq!(s.pending_counts("A").unwrap(), [("x".to_string(), 0, 1)]);
    }

    #[test]
    fn an_outbox_origin_is_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let m = NewMessage {
            from: "outbox".into(),
            agency: "A".into(),
            agent: "coordinator".into(),
            kind: "NOTE".into(),
            body: "hi".into(),
            payload: None,
            origin: Some("outbox:a.json:1".into()),
            deliver_at: None,
        };
        assert_eq!(s.queue_messages(std::slice::from_ref(&m)).unwrap().len(), 1);
        assert!(s
            .queue_messages(std::slice::from_ref(&m))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn state_change_records_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (a, agents) = sample();
        s.save_running(&a, &agents, "create", &serde_json::json!({}))
            .unwrap();
        s.set_state("A", "stopped", "kill", &serde_json::json!({}))
            .unwrap();
        assert_eq!(s.agency("A").unwrap().unwrap().state, "stopped");
        let kinds: Vec<String> = s
            .events(Some("A"), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["create", "kill"]);
    }
}
