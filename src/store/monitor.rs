//! What the monitor, the metrics and the notifier read: the event log by
//! kind, failed messages with the time they failed, every agent at once,
//! the last activity of each agency; and the few writes they make (a
//! failed message queued again, the notifier's place in the log).

use std::collections::HashMap;

use rusqlite::{params, params_from_iter, OptionalExtension};

use super::events::{event_from_row, insert_event};
use super::messages::{message_from_row, MESSAGE_COLUMNS};
use super::{AgentRow, EventRow, MessageRow, Store, StoreResult};
use crate::model::Event;

impl Store {
    /// Events of the given kinds after `after_id`, oldest first.
    pub fn events_of_kinds(&self, kinds: &[&str], after_id: i64) -> StoreResult<Vec<EventRow>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (2..kinds.len() + 2).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT id, at, agency, kind, detail FROM events
             WHERE kind IN ({}) AND id > ?1 ORDER BY id",
            marks.join(", ")
        );
        let mut args: Vec<rusqlite::types::Value> = vec![after_id.into()];
        args.extend(
            kinds
                .iter()
                .map(|k| rusqlite::types::Value::from(k.to_string())),
        );
        self.query(&sql, params_from_iter(args), event_from_row)
    }

    /// Every event whose kind starts with `prefix` or is one of `kinds`,
    /// oldest first (what `agency metrics` reads).
    pub fn events_by_prefix_and_kinds(
        &self,
        prefix: &str,
        kinds: &[&str],
    ) -> StoreResult<Vec<EventRow>> {
        let marks: Vec<String> = (3..kinds.len() + 3).map(|i| format!("?{i}")).collect();
        // A range on `kind` (not LIKE): the index serves it.
        let sql = format!(
            "SELECT id, at, agency, kind, detail FROM events
             WHERE (kind >= ?1 AND kind < ?2) OR kind IN ({}) ORDER BY id",
            marks.join(", ")
        );
        let mut upper = prefix.to_string();
        upper.push(char::MAX);
        let mut args: Vec<rusqlite::types::Value> = vec![prefix.to_string().into(), upper.into()];
        args.extend(
            kinds
                .iter()
                .map(|k| rusqlite::types::Value::from(k.to_string())),
        );
        self.query(&sql, params_from_iter(args), event_from_row)
    }

    /// The id of the newest event stamped before `at` (RFC 3339, UTC).
    pub fn last_event_before(&self, at: &str) -> StoreResult<i64> {
        self.conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM events WHERE at < ?1",
                [at],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// The id of the newest event (0 when there is none).
    pub fn last_event_id(&self) -> StoreResult<i64> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
            .map_err(self.err())
    }

    /// Per agency, the time of its newest event.
    pub fn last_event_per_agency(&self) -> StoreResult<HashMap<String, String>> {
        Ok(self
            .query(
                "SELECT agency, at FROM events WHERE id IN
                   (SELECT max(id) FROM events WHERE agency IS NOT NULL GROUP BY agency)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect())
    }

    /// The newest event of one of `kinds` about `agency`/`agent` (events
    /// whose detail names the agent).
    pub fn last_agent_event(
        &self,
        agency: &str,
        agent: &str,
        kinds: &[&str],
    ) -> StoreResult<Option<EventRow>> {
        let marks: Vec<String> = (3..kinds.len() + 3).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT id, at, agency, kind, detail FROM events
             WHERE agency = ?1 AND json_extract(detail, '$.agent') = ?2 AND kind IN ({})
             ORDER BY id DESC LIMIT 1",
            marks.join(", ")
        );
        let mut args: Vec<rusqlite::types::Value> = vec![agency.to_string().into()];
        args.push(agent.to_string().into());
        args.extend(
            kinds
                .iter()
                .map(|k| rusqlite::types::Value::from(k.to_string())),
        );
        Ok(self
            .query(&sql, params_from_iter(args), event_from_row)?
            .pop())
    }

    /// Messages that could not be delivered, oldest first, each with the
    /// time it was marked failed (its `message.failed` event).
    pub fn failed_messages(&self) -> StoreResult<Vec<(MessageRow, Option<String>)>> {
        let columns: Vec<String> = MESSAGE_COLUMNS
            .split(',')
            .map(|c| format!("m.{}", c.trim()))
            .collect();
        self.query(
            &format!(
                "SELECT {}, (SELECT max(e.at) FROM events e WHERE e.kind = 'message.failed'
                               AND e.agency = m.agency AND json_extract(e.detail, '$.id') = m.id)
                 FROM messages m WHERE m.state = 'failed' ORDER BY m.id",
                columns.join(", ")
            ),
            [],
            |r| Ok((message_from_row(r)?, r.get(12)?)),
        )
    }

    /// Every agent and utility pane of every agency, in order.
    pub fn all_agents(&self) -> StoreResult<Vec<(String, AgentRow)>> {
        self.query(
            "SELECT agency, name, role, position, command, window, pane_id, worktree, branch,
               setup_error FROM agents ORDER BY agency, position",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    AgentRow {
                        name: r.get(1)?,
                        role: r.get(2)?,
                        position: r.get(3)?,
                        command: r.get(4)?,
                        window: r.get(5)?,
                        pane_id: r.get(6)?,
                        worktree: r.get(7)?,
                        branch: r.get(8)?,
                        setup_error: r.get(9)?,
                    },
                ))
            },
        )
    }

    /// Queues a failed message again, its attempts reset, with a
    /// `message.retried` event naming `by`. `None` when it is not failed
    /// (any more).
    pub fn retry_message(&mut self, id: i64, by: &str) -> StoreResult<Option<MessageRow>> {
        self.write_tx(|tx| {
            let n = tx.execute(
                "UPDATE messages SET state = 'queued', attempts = 0, last_error = NULL
                 WHERE id = ?1 AND state = 'failed'",
                [id],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let m = tx.query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id],
                message_from_row,
            )?;
            let detail = serde_json::json!({ "id": id, "to": m.to, "agent": m.agent, "by": by });
            insert_event(tx, &Event::new(&m.agency, "message.retried", detail))?;
            Ok(Some(m))
        })
    }

    /// A named position in the event log (see `set_cursor`).
    pub fn cursor(&self, name: &str) -> StoreResult<Option<i64>> {
        self.conn
            .query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }

    pub fn set_cursor(&mut self, name: &str, value: i64) -> StoreResult<()> {
        self.write_tx(|tx| {
            tx.execute(
                "INSERT INTO cursors (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::messages::tests::note;

    fn message(s: &mut Store) -> i64 {
        s.queue_messages(&[note("x")]).unwrap()[0]
    }

    #[test]
    fn a_failed_message_is_listed_with_its_time_and_retried_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let id = message(&mut s);
        let m = s.message(id).unwrap().unwrap();
        assert!(
            s.retry_message(id, "human").unwrap().is_none(),
            "not failed"
        );
        s.record_failure(&m, "pane gone", 1).unwrap();
        let failed = s.failed_messages().unwrap();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].1.is_some(), "the time it failed");
        let again = s.retry_message(id, "human").unwrap().unwrap();
        assert_eq!((again.state.as_str(), again.attempts), ("queued", 0));
        assert!(s.retry_message(id, "human").unwrap().is_none());
        assert!(s.failed_messages().unwrap().is_empty());
        let kinds: Vec<String> = s
            .events_of_kinds(&["message.retried", "message.failed"], 0)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["message.failed", "message.retried"]);
    }

    #[test]
    fn cursors_and_agent_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.cursor("notify").unwrap(), None);
        s.set_cursor("notify", 3).unwrap();
        s.set_cursor("notify", 7).unwrap();
        assert_eq!(s.cursor("notify").unwrap(), Some(7));
        let d = |a: &str| serde_json::json!({ "agent": a });
        s.record_event(&Event::new("A", "agent.waiting", d("x")))
            .unwrap();
        s.record_event(&Event::new("A", "agent.waiting", d("y")))
            .unwrap();
        s.record_event(&Event::new("B", "agent.resumed", d("x")))
            .unwrap();
        let e = s
            .last_agent_event("A", "x", &["agent.waiting", "agent.resumed"])
            .unwrap()
            .unwrap();
        assert_eq!((e.id, e.kind.as_str()), (1, "agent.waiting"));
        assert!(s
            .last_agent_event("A", "z", &["agent.waiting"])
            .unwrap()
            .is_none());
        let last = s.last_event_per_agency().unwrap();
        assert_eq!(last.len(), 2);
        assert_eq!(s.last_event_id().unwrap(), 3);
    }
}
