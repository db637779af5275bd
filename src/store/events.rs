//! The event log: one row per event.

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::{Store, StoreResult, NOW};

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: String,
    pub agency: Option<String>,
    pub kind: String,
    pub detail: serde_json::Value,
}

pub(super) fn insert_event(
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

impl Store {
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
