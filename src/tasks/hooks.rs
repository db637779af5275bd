//! The git path carries task ids: `submit --task ID` puts the task in
//! review, `approve` makes it done (freeing what waited for it), `reject`
//! gives it back with the feedback, `handoff --task ID` moves it to the
//! receiving agency. A `--task` that names no task stays a free-text label.
//!
//! Each `before_*` runs before the approval code does its work (so a task
//! that cannot move stops it early); the others run after that work is
//! committed.

use serde_json::json;

use super::{actor, after, state_of, transact, Action, Graph, Routing, State};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{ApprovalRow, TaskRow};

/// The task a `--task` value names: an id (`12`, `#12`) of an existing task.
pub fn named(ctx: &Ctx, label: &str) -> Result<Option<TaskRow>> {
    let Some(id) = super::parse_id(label) else {
        return Ok(None);
    };
    let t = ctx.store.task(id)?;
    if t.is_none() {
        eprintln!("note: there is no task {id}; --task {label} is kept as a label");
    }
    Ok(t)
}

/// Refuses early when `action` may not move the task `label` names.
fn check(ctx: &mut Ctx, label: &str, action: Action) -> Result<Option<TaskRow>> {
    let Some(t) = named(ctx, label)? else {
        return Ok(None);
    };
    let routing = Routing::default();
    let who = actor();
    ctx.store.tasks_tx(false, |tx| {
        Graph::new(tx, &routing, &who).target(&t, action)?;
        Ok::<_, Error>(())
    })?;
    Ok(Some(t))
}

/// Before `agency submit`.
pub fn before_submit(ctx: &mut Ctx, label: &str) -> Result<Option<TaskRow>> {
    check(ctx, label, Action::Submit)
}

/// After `agency submit` queued `item`: the task is in review under it.
pub fn submitted(ctx: &mut Ctx, task: i64, item: &ApprovalRow) -> Result<()> {
    transact(ctx, |g| {
        let mut t = g.get(task)?;
        let to = g.target(&t, Action::Submit)?;
        t.approval_id = Some(item.id);
        t.branch = Some(item.branch.clone());
        t.agency.get_or_insert_with(|| item.agency.clone());
        let note = format!(
            "approval #{} ({} at {})",
            item.id,
            item.branch,
            short(&item.commit)
        );
        g.move_to(&mut t, to, "review", Some(&note))
    })?;
    Ok(())
}

/// After `agency approve` merged `item`: its tasks are done.
pub fn approved(ctx: &mut Ctx, item: &ApprovalRow, merge_commit: &str) -> Result<Vec<i64>> {
    let (_, fx) = transact(ctx, |g| {
        for id in g.tx.under_approval(item.id)? {
            let mut t = g.get(id)?;
            if state_of(&t) == State::Done {
                continue; // an interrupted approve already got this far
            }
            let note = format!("approval #{} merged as {}", item.id, short(merge_commit));
            g.move_to(&mut t, State::Done, "done", Some(&note))?;
        }
        Ok(())
    })?;
    Ok(fx.ready)
}

/// After `agency reject`: its tasks go back to their claimer (or to ready)
/// with the feedback in their history, and the claimer is told.
pub fn rejected(ctx: &mut Ctx, item: &ApprovalRow, feedback: &str) -> Result<()> {
    let feedback = super::clean_body(feedback)?;
    transact(ctx, |g| {
        for id in g.tx.under_approval(item.id)? {
            let mut t = g.get(id)?;
            let to = g.target(&t, Action::Reject)?;
            g.move_to(&mut t, to, "rejected", Some(&feedback))?;
            if let (State::Claimed, Some(agency), Some(agent)) =
                (to, t.agency.clone(), t.agent.clone())
            {
                let head = format!(
                    "task #{} rejected in review (approval #{}): {} (agency task show {})",
                    t.id,
                    item.id,
                    feedback.lines().next().unwrap_or(""),
                    t.id
                );
                let body = if feedback.contains('\n') {
                    &feedback
                } else {
                    ""
                };
                let who = super::actor();
                g.message(&agency, &agent, &who, "TASK", head, body)?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Before `agency handoff`.
pub fn before_handoff(ctx: &mut Ctx, label: &str) -> Result<Option<TaskRow>> {
    check(ctx, label, Action::Handoff)
}

/// After `agency handoff` told `to`'s coordinator (message `message`): the
/// task belongs to `to`; a claim on it ends. The handoff message is its
/// announcement there, so no `TASK` message follows.
pub fn handed_off(ctx: &mut Ctx, task: i64, to: &str, message: Option<i64>) -> Result<()> {
    let routing = Routing::load(ctx)?;
    let who = actor();
    let fx = ctx.store.tasks_tx(true, |tx| {
        let mut g = Graph::new(tx, &routing, &who);
        let mut t = g.get(task)?;
        let from = state_of(&t);
        let target = g.target(&t, Action::Handoff)?;
        let note = format!(
            "handed off from {} to {to}",
            t.agency.as_deref().unwrap_or("-")
        );
        t.agency = Some(to.to_string());
        t.capability = None;
        t.reason = None;
        t.state = target.as_str().into();
        if target == State::Ready {
            t.agent = None;
            t.dispatch_id = message;
        }
        g.record(
            &mut t,
            target,
            "handoff",
            Some(&note),
            json!({"from": from.as_str(), "to": to, "message": message}),
        )?;
        g.finish()
    })?;
    after(ctx, &fx)
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}
