//! The registry: SQLite (WAL) as the source of truth, and the JSON mirrors.
//!
//! Only this module writes SQL. Migrations are numbered, embedded in the
//! binary, and applied at open; `user_version` records how far a database is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, Transaction};

use crate::model::{AgencyState, ApprovalStatus, Invalid, Layout, MessageState, Role};
use crate::workspace::quote;

mod agencies;
mod approvals;
mod events;
mod messages;
mod mirrors;
mod monitor;
mod tasks;
pub use agencies::{AgencyRow, AgentRow};
pub use approvals::{ApprovalRow, Decision, HandoffRow};
pub use events::EventRow;
pub use messages::{AckRefused, MessageRow, NewMessage};
pub use tasks::{Claim, NewTask, TaskCount, TaskEventRow, TaskFilter, TaskRow, TaskTx};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_agencies.sql"),
    include_str!("migrations/002_messages.sql"),
    include_str!("migrations/003_approvals.sql"),
    include_str!("migrations/004_worktrees.sql"),
    include_str!("migrations/005_schedule.sql"),
    include_str!("migrations/010_tasks.sql"),
    include_str!("migrations/016_monitor.sql"),
    include_str!("migrations/017_cancelled.sql"),
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
                let aside = quote(&format!("{path}.damaged"));
                let path = quote(path);
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

/// Where a write transaction's events will start, when they get lines.
fn events_before(
    logs: Option<&events::ActivityLogs>,
    tx: &Transaction<'_>,
) -> rusqlite::Result<Option<i64>> {
    logs.map(|_| events::last_id(tx)).transpose()
}

/// The events a transaction wrote since `before` (see `events_before`).
fn events_after(tx: &Transaction<'_>, before: Option<i64>) -> rusqlite::Result<Vec<EventRow>> {
    before.map_or(Ok(Vec::new()), |id| events::since(tx, id))
}

/// The domain's closed sets are stored as their words.
macro_rules! stored_as_words {
    ($($t:ty),+) => {$(
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: Invalid| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

stored_as_words!(AgencyState, Layout, Role, MessageState, ApprovalStatus);

/// What a SQLite error becomes: the error, with the database it came from.
fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// A write transaction holding the write lock from its start: a second
/// writer waits its turn (the busy timeout) instead of failing when it
/// first writes.
fn immediate<'c>(conn: &'c mut Connection, path: &Path) -> StoreResult<Transaction<'c>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err(path))
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    registry: PathBuf,
    /// Device and inode of the database file when opened.
    file_id: Option<(u64, u64)>,
    /// Where events get their lines too (a workspace's store has them).
    activity: Option<events::ActivityLogs>,
}

/// `agency.db` is gone but its `-wal` and `-shm` stay: they belong to the
/// deleted database (a router may still hold it open), and a new file
/// started on them reads the old pages or fails with "disk I/O error".
/// They are moved aside, never removed. Returns the lock every process
/// creating the file holds, so none moves another's live files.
fn set_orphans_aside(registry: &Path, db: &Path) -> StoreResult<std::fs::File> {
    let io_err = |path: &Path, e: std::io::Error| StoreError::Mirror {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let lock_path = registry.join("agency.db.creating");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, e))?;
    lock.lock().map_err(|e| io_err(&lock_path, e))?;
    if db.exists() {
        return Ok(lock); // another process made it meanwhile
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for suffix in ["-wal", "-shm"] {
        let file = registry.join(format!("agency.db{suffix}"));
        if file.exists() {
            let aside = registry.join(format!("agency.db{suffix}.orphaned-{stamp}"));
            std::fs::rename(&file, &aside).map_err(|e| io_err(&file, e))?;
            tracing::warn!(
                "{} had no database; moved aside to {}",
                file.display(),
                aside.display()
            );
        }
    }
    Ok(lock)
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
        // Held until the new file is set up (see `set_orphans_aside`).
        let _creating = if path.exists() {
            None
        } else {
            Some(set_orphans_aside(registry, &path)?)
        };
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite {
            path: label.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path,
            registry: registry.to_path_buf(),
            file_id: None,
            activity: None,
        };
        store.configure()?;
        store.migrate()?;
        store.file_id = file_id(&store.path);
        Ok(store)
    }

    /// Gives each agency's event a line in `agencies/<NAME>/logs/activity.log`
    /// too (see `events`).
    pub fn with_activity_logs(mut self, agencies: PathBuf) -> Store {
        self.activity = Some(events::ActivityLogs { agencies });
        self
    }

    /// Whether `agency.db` was deleted or replaced since this store opened
    /// it: a long-running process then works on a file nobody else sees.
    pub fn replaced(&self) -> bool {
        file_id(&self.path) != self.file_id
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.path)
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
        let db = self.path.clone();
        let sql_err = sql_err(&db);
        let tx = immediate(&mut self.conn, &db)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(&sql_err)?;
        if version > known {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(&sql_err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(&sql_err)?;
        }
        tx.commit().map_err(sql_err)
    }

    fn write_tx<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let db = self.path.clone();
        let sql_err = sql_err(&db);
        let tx = immediate(&mut self.conn, &db)?;
        let before = events_before(self.activity.as_ref(), &tx).map_err(&sql_err)?;
        let out = f(&tx).map_err(&sql_err)?;
        let recorded = events_after(&tx, before).map_err(&sql_err)?;
        tx.commit().map_err(&sql_err)?;
        self.log_activity(&recorded);
        Ok(out)
    }

    /// The lines of events just committed.
    fn log_activity(&self, recorded: &[EventRow]) {
        if let Some(logs) = &self.activity {
            logs.append(recorded);
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::agencies::tests::{created, sample};

    #[test]
    fn migrations_apply_once_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        drop(created(dir.path()));
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.agencies().unwrap().len(), 1);
        assert_eq!(s.agents("A").unwrap(), sample().1);
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    // 017 makes the messages table again (for the `cancelled` state): the
    // rows, their ids and the id counter are what they were.
    #[test]
    fn the_cancelled_state_migration_keeps_messages_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agency.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..7] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 7).unwrap();
            for i in 1..=3 {
                conn.execute(
                    "INSERT INTO messages (sender, agency, agent, kind, body, state, created_at, deliver_at)
                     VALUES ('human', 'A', 'dev', 'NOTE', ?1, 'delivered', 'then', ?2)",
                    rusqlite::params![format!("m{i}"), (i == 2).then_some("later")],
                )
                .unwrap();
            }
            // The last one was a check-in, cancelled: its id is not free.
            conn.execute("DELETE FROM messages WHERE id = 3", [])
                .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let rows: Vec<(i64, String, Option<String>)> = s
            .conn
            .prepare("SELECT id, body, deliver_at FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (1, "m1".into(), None),
                (2, "m2".into(), Some("later".into()))
            ]
        );
        let ids = s
            .queue_messages(&[messages::NewMessage {
                from: "human".into(),
                agency: "A".into(),
                agent: "dev".into(),
                kind: "NOTE".into(),
                body: "m4".into(),
                payload: None,
                origin: None,
                deliver_at: None,
            }])
            .unwrap();
        assert_eq!(ids, [4]);
        s.conn
            .execute("UPDATE messages SET state = 'cancelled' WHERE id = 1", [])
            .unwrap();
        assert_eq!(
            s.message(1).unwrap().unwrap().state,
            crate::model::MessageState::Cancelled
        );
    }

    // A process (the router) still holds a deleted database: a new one
    // must start empty and usable, not on the old one's -wal and -shm.
    #[test]
    fn a_new_database_never_starts_on_a_deleted_ones_wal() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Store::open(dir.path()).unwrap();
        let (a, agents) = sample();
        let created = crate::model::Event::new("A", "create", serde_json::json!({}));
        old.save_running(&a, &agents, &created).unwrap();
        std::fs::remove_file(dir.path().join("agency.db")).unwrap();
        let mut new = Store::open(dir.path()).unwrap();
        assert!(new.agencies().unwrap().is_empty(), "the old rows came back");
        new.save_running(&a, &agents, &created).unwrap();
        // The old holder writes on; the new file is untouched by it.
        old.save_running(&a, &agents, &created).unwrap();
        assert_eq!(new.agencies().unwrap().len(), 1);
        drop(new);
        assert_eq!(
            Store::open(dir.path()).unwrap().agencies().unwrap().len(),
            1
        );
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".orphaned-")
            })
            .count();
        assert_eq!(aside, 2, "the -wal and -shm kept aside");
    }
}
