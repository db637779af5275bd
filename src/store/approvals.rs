//! Handoffs, the approval queue and its decisions.

use rusqlite::{params, Transaction};
use serde::Serialize;

use super::events::insert_event;
use super::messages::{insert_message, NewMessage};
use super::{Store, StoreResult, NOW};
use crate::model::{ApprovalStatus, Event};

/// A decision on an approval item.
#[derive(Debug, Clone)]
pub struct Decision {
    pub id: i64,
    pub agency: String,
    pub status: ApprovalStatus,
    pub by: String,
    pub note: Option<String>,
    pub feedback: Option<String>,
    pub merge_commit: Option<String>,
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
            &Event::new(&d.agency, &format!("approval.{}", d.status), detail),
        )?;
    }
    Ok(n == 1)
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
    pub status: ApprovalStatus,
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

impl ApprovalRow {
    /// Whether its tests passed: none failed and the command exited 0 (in
    /// time). What `approve` asks `--force` for, and the screens show.
    pub fn passed(&self) -> bool {
        self.tests_failed.unwrap_or(0) == 0 && self.test_exit_code == Some(0)
    }
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

impl Store {
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
            insert_event(tx, &Event::new(&h.to, "handoff", detail))?;
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
            insert_event(tx, &Event::new(&a.agency, "approval.submitted", detail))?;
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
    pub fn approvals(&self, status: Option<ApprovalStatus>) -> StoreResult<Vec<ApprovalRow>> {
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
}
