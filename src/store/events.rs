//! The event log: one row of `events` per event, and its mirror, a line
//! per event in the agency's `agencies/<NAME>/logs/activity.log`.
//!
//! Every event is written by `insert_event`, inside the transaction of the
//! change it tells of; once that commits, the same events get their lines.
//! A line is the row in one shape:
//!
//! ```text
//! AT KIND DETAIL
//! 2030-01-01T09:00:00.123Z message.delivered {"id":7,"to":"CodeAgency/dev","type":"TASK"}
//! ```
//!
//! `AT` is the row's time (UTC, milliseconds), `KIND` its kind, `DETAIL`
//! its JSON detail on one line. Lines are for people (`tail -f`); the rows
//! are the truth (`agency log`): a line that cannot be written (a full
//! disk, a purged folder) costs the line, never the change or the command.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::{Store, StoreResult, NOW};
use crate::model::Event;

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub agency: Option<String>,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// Writes one event's row (its line follows the commit); returns its time.
pub(super) fn insert_event(tx: &Transaction<'_>, e: &Event) -> rusqlite::Result<String> {
    tx.query_row(
        &format!(
            "INSERT INTO events (at, agency, kind, detail) VALUES ({NOW}, ?1, ?2, ?3) RETURNING at"
        ),
        params![e.agency, e.kind, e.detail.to_string()],
        |r| r.get(0),
    )
}

pub(super) fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let detail: String = r.get(4)?;
    Ok(EventRow {
        id: r.get(0)?,
        at: r.get(1)?,
        agency: r.get(2)?,
        kind: r.get(3)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

/// The newest event's id: what a write transaction inserts comes after it
/// (it holds the write lock, so nobody else inserts meanwhile).
pub(super) fn last_id(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
}

/// The events after `id`, oldest first.
pub(super) fn since(tx: &Transaction<'_>, id: i64) -> rusqlite::Result<Vec<EventRow>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, at, agency, kind, detail FROM events WHERE id > ?1 AND agency IS NOT NULL
         ORDER BY id",
    )?;
    let rows = stmt.query_map([id], event_from_row)?;
    rows.collect()
}

/// Where the activity logs are: `agencies/`, one folder per agency.
#[derive(Debug, Clone)]
pub(super) struct ActivityLogs {
    pub agencies: PathBuf,
}

impl ActivityLogs {
    /// Appends each event's line to its agency's log. An agency without a
    /// folder (purged) gets none.
    pub(super) fn append(&self, events: &[EventRow]) {
        let mut by_agency: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
        for e in events {
            if let Some(a) = &e.agency {
                by_agency.entry(a).or_default().push(e);
            }
        }
        for (agency, events) in by_agency {
            if let Err(e) = append_lines(&self.agencies.join(agency), &events) {
                tracing::warn!("the activity log of {agency}: {e}");
            }
        }
    }
}

fn append_lines(agency_dir: &Path, events: &[&EventRow]) -> std::io::Result<()> {
    if !agency_dir.is_dir() {
        return Ok(());
    }
    let dir = agency_dir.join("logs");
    fs::create_dir_all(&dir)?;
    let mut text = String::new();
    for e in events {
        text.push_str(&format!("{} {} {}\n", e.at, e.kind, e.detail));
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("activity.log"))?
        .write_all(text.as_bytes())
}

impl Store {
    /// Records one event (its row, then its line); returns its time.
    pub fn record_event(&mut self, e: &Event) -> StoreResult<String> {
        self.write_tx(|tx| insert_event(tx, e))
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

    /// Events after `after_id`, oldest first (for `log --follow`).
    pub fn events_after(&self, agency: Option<&str>, after_id: i64) -> StoreResult<Vec<EventRow>> {
        self.query(
            "SELECT id, at, agency, kind, detail FROM events
             WHERE id > ?2 AND (?1 IS NULL OR agency = ?1) ORDER BY id",
            params![agency, after_id],
            event_from_row,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::tests::note;

    #[test]
    fn every_event_is_a_row_and_the_same_line() {
        let dir = tempfile::tempdir().unwrap();
        let agencies = dir.path().join("agencies");
        fs::create_dir_all(agencies.join("A")).unwrap();
        let mut s = Store::open(&dir.path().join("registry"))
            .unwrap()
            .with_activity_logs(agencies.clone());
        // One on its own, one inside another change's transaction, one for
        // an agency without a folder (no line), one tasks' transaction.
        s.record_event(&Event::new(
            "A",
            "kill",
            serde_json::json!({"purge": false}),
        ))
        .unwrap();
        s.queue_messages(&[note("coordinator")]).unwrap();
        s.record_event(&Event::new("Gone", "kill", serde_json::json!({})))
            .unwrap();
        let rows: Vec<String> = s
            .events(Some("A"), 10)
            .unwrap()
            .iter()
            .map(|e| format!("{} {} {}", e.at, e.kind, e.detail))
            .collect();
        assert_eq!(rows.len(), 2);
        let log = fs::read_to_string(agencies.join("A/logs/activity.log")).unwrap();
        assert_eq!(log.lines().collect::<Vec<_>>(), rows);
        assert!(!agencies.join("Gone").exists());
    }

    #[test]
    fn a_line_that_cannot_be_written_costs_the_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let agencies = dir.path().join("agencies");
        fs::create_dir_all(agencies.join("A")).unwrap();
        // `logs` is a file: no log can be made there.
        fs::write(agencies.join("A/logs"), "").unwrap();
        let mut s = Store::open(&dir.path().join("registry"))
            .unwrap()
            .with_activity_logs(agencies);
        s.record_event(&Event::new("A", "kill", serde_json::json!({})))
            .unwrap();
        assert_eq!(s.events(Some("A"), 10).unwrap().len(), 1);
    }
}
