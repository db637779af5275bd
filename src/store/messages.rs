//! Messages: queued, delivered, failed, acknowledged; check-ins.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::events::insert_event;
use super::{Store, StoreResult, NOW};
use crate::model::{Event, MessageState};

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
    pub state: MessageState,
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
pub(super) fn insert_message(
    tx: &Transaction<'_>,
    m: &NewMessage,
) -> rusqlite::Result<Option<i64>> {
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
        let mut detail = serde_json::json!({
            "id": id, "from": m.from, "to": format!("{}/{}", m.agency, m.agent), "type": m.kind,
        });
        // Where it came from, when not a command (an outbox file).
        if let Some(o) = &m.origin {
            detail["origin"] = o.as_str().into();
        }
        insert_event(tx, &Event::new(&m.agency, "message.queued", detail))?;
    }
    Ok(id)
}

pub(super) const MESSAGE_COLUMNS: &str =
    "id, sender, agency, agent, kind, body, payload, state, attempts,
    last_error, created_at, delivered_at";

pub(super) fn message_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
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
    NotDelivered(i64, MessageState),
    /// Addressed to another agent (`AGENCY/AGENT`).
    NotYours(i64, String),
}

impl Store {
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
                insert_event(tx, &Event::new(&m.agency, "message.delivered", detail))?;
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
    ) -> StoreResult<MessageState> {
        self.write_tx(|tx| {
            let state: MessageState = tx.query_row(
                "UPDATE messages SET attempts = attempts + 1, last_error = ?2,
                   state = CASE WHEN attempts + 1 >= ?3 THEN 'failed' ELSE state END
                 WHERE id = ?1 RETURNING state",
                params![msg.id, error, max_attempts],
                |r| r.get(0),
            )?;
            if state == MessageState::Failed {
                let detail = serde_json::json!({ "id": msg.id, "to": msg.to, "error": error });
                insert_event(tx, &Event::new(&msg.agency, "message.failed", detail))?;
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
                insert_event(tx, &Event::new(agency, "message.failed", detail))?;
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
                insert_event(
                    tx,
                    &Event::new(a, "schedule.cancelled", serde_json::json!({ "id": id })),
                )?;
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
                let row: Option<(String, String, MessageState)> = tx
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
                    Some((_, _, state))
                        if !matches!(state, MessageState::Delivered | MessageState::Acked) =>
                    {
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
                    &Event::new(&agency, "message.acked", serde_json::json!({ "id": id })),
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
                 WHERE agency = ?1 AND agent = ?2 AND (?3 OR state NOT IN ('acked', 'cancelled'))
                 ORDER BY id"
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
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A `NOTE` "hi" from the human to `A/<agent>`.
    pub(crate) fn note(agent: &str) -> NewMessage {
        NewMessage {
            from: "human".into(),
            agency: "A".into(),
            agent: agent.into(),
            kind: "NOTE".into(),
            body: "hi".into(),
            payload: None,
            origin: None,
            deliver_at: None,
        }
    }

    #[test]
    fn failures_end_in_failed_and_stay_visible() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let ids = s.queue_messages(&[note("x")]).unwrap();
        let m = s.message(ids[0]).unwrap().unwrap();
        for attempt in 1..=3 {
            let state = s.record_failure(&m, "pane gone", 3).unwrap();
            assert_eq!(
                state,
                if attempt < 3 {
                    MessageState::Queued
                } else {
                    MessageState::Failed
                }
            );
        }
        assert!(
            s.next_per_recipient().unwrap().is_empty(),
            "failed is not retried"
        );
        let inbox = s.inbox("A", "x", false).unwrap();
        assert_eq!(inbox[0].state, MessageState::Failed);
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
            origin: Some("outbox:a.json:1".into()),
            ..note("coordinator")
        };
        assert_eq!(s.queue_messages(std::slice::from_ref(&m)).unwrap().len(), 1);
        assert!(s
            .queue_messages(std::slice::from_ref(&m))
            .unwrap()
            .is_empty());
    }
}
