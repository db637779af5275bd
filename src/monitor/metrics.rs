//! `agency metrics`: outcome metrics from the event history, per agency
//! and overall. The definitions (also in the README and docs/CLI.md):
//!
//! - **Tasks completed**: tasks with a `task.done` event in the period
//!   (counted once, for the agency that held them).
//! - **Without a human decision** (other than the final one): completed
//!   tasks whose history, from creation to done, has no event by `human`
//!   other than `created` and the final `done` (an approval's merge makes
//!   it), no rejected approval, and no permission prompt of the agent that
//!   held the task, while it held it, that was not answered by an agent.
//!   Events that follow from another (`ready` after `created`,
//!   `dispatched`, `reclaimed`, ...) are not decisions.
//! - **First-pass approval rate**: of the items approved in the period, the
//!   share whose task (agency and `--task` label) had no item rejected
//!   before.
//! - **Handoff time**: from a `handoff` to the receiving agency's first
//!   action on it: its coordinator acks the handoff message, an agent of it
//!   moves the task (a `task.*` event by `TO/agent`), it submits the task
//!   for approval, or it hands the task on. Handoffs with none yet are
//!   `open`. Counted for the receiving agency, by the handoff's time.
//! - **Ready → done**: from a completed task's first becoming `ready` to
//!   its `done`.
//! - **Waited for the human**: approvals from submission to decision (by
//!   the decision's time); permission prompts from `agent.waiting` to the
//!   answer (`answer`), or else to the moment the agent was seen working
//!   again (`agent.resumed`) or exited. Those still waiting are `open`.
//! - **Messages**: delivered, failed (after all attempts), resubmitted (the
//!   router pressed the submit key again for text left in an input box)
//!   and retried (a failed message queued again from the monitor).
//!
//! Everything is computed from the `events` table alone, in one pass.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::store::EventRow;

/// Kinds besides `task.*` that the metrics read.
pub const KINDS: &[&str] = &[
    "approval.submitted",
    "approval.approved",
    "approval.rejected",
    "handoff",
    "message.acked",
    "message.delivered",
    "message.failed",
    "message.resubmitted",
    "message.retried",
    "answer",
    "agent.waiting",
    "agent.resumed",
    "agent.exited",
];

/// How many, and how long they took (seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub mean_s: Option<f64>,
    pub median_s: Option<f64>,
}

impl Durations {
    fn of(mut v: Vec<f64>) -> Durations {
        if v.is_empty() {
            return Durations::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Durations {
            count: n,
            mean_s: Some(round(v.iter().sum::<f64>() / n as f64)),
            median_s: Some(round(median)),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| round(part as f64 / whole as f64))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Messages {
    pub delivered: u64,
    pub failed: u64,
    pub resubmitted: u64,
    pub retried: u64,
}

/// The metrics of one agency, or of all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// `null` for the whole workspace.
    pub agency: Option<String>,
    pub tasks_completed: u64,
    pub tasks_without_human: u64,
    pub without_human_share: Option<f64>,
    pub approved: u64,
    pub rejected: u64,
    pub approved_first_pass: u64,
    pub first_pass_rate: Option<f64>,
    pub handoff: Durations,
    pub handoffs_open: u64,
    pub ready_to_done: Durations,
    pub approval_wait: Durations,
    pub prompt_wait: Durations,
    pub prompts_open: u64,
    pub messages: Messages,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The period's start (RFC 3339), `null` for all history.
    pub since: Option<String>,
    pub until: String,
    pub overall: Metrics,
    pub agencies: Vec<Metrics>,
}

/// Seconds since the epoch, with milliseconds.
fn secs(at: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(at.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// Raw values per agency before they become `Metrics`.
#[derive(Default)]
struct Acc {
    completed: u64,
    autonomous: u64,
    approved: u64,
    rejected: u64,
    first_pass: u64,
    handoff: Vec<f64>,
    handoffs_open: u64,
    ready_to_done: Vec<f64>,
    approval_wait: Vec<f64>,
    prompt_wait: Vec<f64>,
    prompts_open: u64,
    messages: Messages,
}

impl Acc {
    fn metrics(self, agency: Option<String>) -> Metrics {
        Metrics {
            agency,
            tasks_completed: self.completed,
            tasks_without_human: self.autonomous,
            without_human_share: share(self.autonomous, self.completed),
            approved: self.approved,
            rejected: self.rejected,
            approved_first_pass: self.first_pass,
            first_pass_rate: share(self.first_pass, self.approved),
            handoff: Durations::of(self.handoff),
            handoffs_open: self.handoffs_open,
            ready_to_done: Durations::of(self.ready_to_done),
            approval_wait: Durations::of(self.approval_wait),
            prompt_wait: Durations::of(self.prompt_wait),
            prompts_open: self.prompts_open,
            messages: self.messages,
        }
    }
}

/// Adds to one agency's values and to the overall ones.
struct Tally {
    agencies: BTreeMap<String, Acc>,
    overall: Acc,
}

impl Tally {
    fn add(&mut self, agency: Option<&str>, f: impl Fn(&mut Acc)) {
        f(&mut self.overall);
        if let Some(a) = agency.filter(|a| !a.is_empty()) {
            f(self.agencies.entry(a.to_string()).or_default());
        }
    }
}

/// A task's story as the log tells it.
#[derive(Default)]
struct TaskLog<'e> {
    events: Vec<&'e EventRow>,
}

/// Computes the report over `events` (every event of `task.*` and `KINDS`,
/// oldest first), counting what happened at or after `since` (Unix
/// seconds; `None`: all) up to `until`.
pub fn compute(events: &[EventRow], since: Option<f64>, until: f64) -> (Metrics, Vec<Metrics>) {
    let mut r = Reading::new(Period { since, until });
    for e in events {
        r.read(e);
    }
    r.count_prompts();
    r.count_handoffs();
    r.count_tasks();
    let overall = std::mem::take(&mut r.tally.overall).metrics(None);
    let agencies = r
        .tally
        .agencies
        .into_iter()
        .map(|(name, acc)| acc.metrics(Some(name)))
        .collect();
    (overall, agencies)
}

/// When an event is counted: at or after `since` (`None`: all), up to
/// `until`.
struct Period {
    since: Option<f64>,
    until: f64,
}

impl Period {
    fn has(&self, t: f64) -> bool {
        self.since.is_none_or(|s| t >= s) && t <= self.until
    }
}

fn at(e: &EventRow) -> f64 {
    secs(&e.at).unwrap_or(0.0)
}

/// What `compute` gathers from the log, oldest event first: some events
/// are counted as read, others once the whole log is known.
struct Reading<'e> {
    period: Period,
    tally: Tally,
    tasks: BTreeMap<i64, TaskLog<'e>>,
    /// Approval id → (agency, task label, submitted at).
    submitted: HashMap<i64, (String, String, f64)>,
    /// (agency, task label) → times items were rejected.
    rejections: HashMap<(String, String), Vec<f64>>,
    /// Per agent (agency, agent): its prompts, as (waiting at, end, answered by).
    prompts: HashMap<(String, String), Vec<Prompt>>,
    handoffs: Vec<&'e EventRow>,
    acks: HashMap<i64, f64>,
    acts: HashMap<(String, String), Vec<(i64, f64)>>,
}

impl<'e> Reading<'e> {
    fn new(period: Period) -> Self {
        Reading {
            period,
            tally: Tally {
                agencies: BTreeMap::new(),
                overall: Acc::default(),
            },
            tasks: BTreeMap::new(),
            submitted: HashMap::new(),
            rejections: HashMap::new(),
            prompts: HashMap::new(),
            handoffs: Vec::new(),
            acks: HashMap::new(),
            acts: HashMap::new(),
        }
    }

    fn read(&mut self, e: &'e EventRow) {
        let t = at(e);
        let agency = e.agency.clone().unwrap_or_default();
        let d = &e.detail;
        if e.kind.starts_with("task.") {
            if let Some(id) = d["id"].as_i64() {
                self.tasks.entry(id).or_default().events.push(e);
            }
            return;
        }
        match e.kind.as_str() {
            "approval.submitted" => {
                if let Some(id) = d["id"].as_i64() {
                    let task = d["task"].as_str().unwrap_or_default().to_string();
                    self.acts
                        .entry((agency.clone(), task.clone()))
                        .or_default()
                        .push((e.id, t));
                    self.submitted.insert(id, (agency, task, t));
                }
            }
            "approval.approved" | "approval.rejected" => self.read_decision(e, t),
            "handoff" => {
                let from = d["from"].as_str().unwrap_or_default().to_string();
                let task = d["task"].as_str().unwrap_or_default().to_string();
                self.acts.entry((from, task)).or_default().push((e.id, t));
                self.handoffs.push(e);
            }
            "message.acked" => {
                if let Some(id) = d["id"].as_i64() {
                    self.acks.entry(id).or_insert(t);
                }
            }
            "message.delivered" | "message.failed" | "message.resubmitted" | "message.retried"
                if self.period.has(t) =>
            {
                let kind = e.kind.clone();
                self.tally.add(Some(&agency), |a| match kind.as_str() {
                    "message.delivered" => a.messages.delivered += 1,
                    "message.failed" => a.messages.failed += 1,
                    "message.resubmitted" => a.messages.resubmitted += 1,
                    _ => a.messages.retried += 1,
                });
            }
            "agent.waiting" | "agent.resumed" | "agent.exited" | "answer" => {
                self.read_prompt(e, t, agency)
            }
            _ => {}
        }
    }

    /// An approval approved or rejected.
    fn read_decision(&mut self, e: &EventRow, t: f64) {
        let Some(item) = e.detail["id"]
            .as_i64()
            .and_then(|id| self.submitted.get(&id))
        else {
            return;
        };
        let key = (item.0.clone(), item.1.clone());
        let rejected_before = self
            .rejections
            .get(&key)
            .is_some_and(|r| r.iter().any(|x| *x <= t));
        if e.kind == "approval.rejected" {
            self.rejections.entry(key).or_default().push(t);
        }
        if !self.period.has(t) {
            return;
        }
        let approved = e.kind == "approval.approved";
        let wait = t - item.2;
        self.tally.add(Some(&item.0), |a| {
            if approved {
                a.approved += 1;
                if !rejected_before {
                    a.first_pass += 1;
                }
            } else {
                a.rejected += 1;
            }
            a.approval_wait.push(wait);
        });
    }

    /// An agent's prompt opened, or closed by an answer, the agent going on
    /// or exiting.
    fn read_prompt(&mut self, e: &EventRow, t: f64, agency: String) {
        let d = &e.detail;
        let Some(agent) = d["agent"].as_str() else {
            return;
        };
        let list = self.prompts.entry((agency, agent.to_string())).or_default();
        let open = list.last_mut().filter(|p| p.end.is_none());
        match (e.kind.as_str(), open) {
            ("agent.waiting", Some(_)) => {}
            ("agent.waiting", None) => list.push(Prompt {
                start: t,
                end: None,
                by_agent: false,
            }),
            ("answer", Some(p)) => {
                p.end = Some(t);
                p.by_agent = d["by"].as_str().is_some_and(|b| b != "human");
            }
            (_, Some(p)) if e.kind != "answer" => p.end = Some(t),
            _ => {}
        }
    }

    fn count_prompts(&mut self) {
        for ((agency, _), list) in &self.prompts {
            for p in list {
                match p.end {
                    Some(end) if self.period.has(end) => self
                        .tally
                        .add(Some(agency), |a| a.prompt_wait.push(end - p.start)),
                    None if self.period.has(p.start) || self.period.since.is_none() => {
                        self.tally.add(Some(agency), |a| a.prompts_open += 1)
                    }
                    _ => {}
                }
            }
        }
    }

    fn count_handoffs(&mut self) {
        for h in &self.handoffs {
            let t = at(h);
            if !self.period.has(t) {
                continue;
            }
            let to = h.detail["to"].as_str().unwrap_or_default();
            match first_action(h, &self.tasks, &self.acks, &self.acts) {
                Some(end) => self.tally.add(Some(to), |a| a.handoff.push(end - t)),
                None => self.tally.add(Some(to), |a| a.handoffs_open += 1),
            }
        }
    }

    fn count_tasks(&mut self) {
        for log in self.tasks.values() {
            let Some(done) = log.events.iter().rev().find(|e| e.kind == "task.done") else {
                continue;
            };
            let t = at(done);
            if !self.period.has(t) {
                continue;
            }
            let ready = log
                .events
                .iter()
                .find(|e| e.detail["state"] == "ready")
                .map(|e| at(e));
            let autonomous = without_human(log, done, &self.prompts);
            self.tally.add(done.agency.as_deref(), |a| {
                a.completed += 1;
                if autonomous {
                    a.autonomous += 1;
                }
                if let Some(r) = ready.filter(|r| *r <= t) {
                    a.ready_to_done.push(t - r);
                }
            });
        }
    }
}

struct Prompt {
    start: f64,
    end: Option<f64>,
    /// Answered by another agent (`agency answer` run by an agent).
    by_agent: bool,
}

/// Task events that follow from another (a task made ready because it was
/// created, dispatched, waiting for a capability, reclaimed after a
/// lease): whoever's command caused them, they decide nothing.
const CONSEQUENCES: &[&str] = &[
    "created",
    "ready",
    "waiting",
    "dispatched",
    "waits",
    "reclaimed",
];

/// See the module doc: no human decision before the final `done`.
fn without_human(
    log: &TaskLog,
    done: &EventRow,
    prompts: &HashMap<(String, String), Vec<Prompt>>,
) -> bool {
    let mut holder: Option<(String, String, f64)> = None;
    let mut held: Vec<(String, String, f64, f64)> = Vec::new();
    for e in &log.events {
        if e.id > done.id {
            break;
        }
        let by = e.detail["by"].as_str().unwrap_or_default();
        let kind = e.kind.trim_start_matches("task.");
        if by == "human" && !CONSEQUENCES.contains(&kind) && e.id != done.id {
            return false;
        }
        if kind == "rejected" {
            return false;
        }
        let t = secs(&e.at).unwrap_or(0.0);
        // A holder's claim lasts until the task moves to someone else or
        // finishes.
        if matches!(
            kind,
            "claimed" | "ready" | "reclaimed" | "handoff" | "done" | "cancelled"
        ) {
            if let Some((agency, agent, from)) = holder.take() {
                held.push((agency, agent, from, t));
            }
        }
        if kind == "claimed" {
            if let Some((agency, agent)) =
                e.detail["agent"].as_str().and_then(|a| a.split_once('/'))
            {
                holder = Some((agency.to_string(), agent.to_string(), t));
            }
        }
    }
    !held.iter().any(|(agency, agent, from, to)| {
        prompts
            .get(&(agency.clone(), agent.clone()))
            .is_some_and(|ps| {
                ps.iter()
                    .any(|p| p.start >= *from && p.start <= *to && !p.by_agent)
            })
    })
}

/// When the receiving agency first acted on a handoff (see the module doc).
/// `acts`: (agency, task label) → (event id, time) of the submissions it
/// made and the handoffs it sent, oldest first.
fn first_action(
    h: &EventRow,
    tasks: &BTreeMap<i64, TaskLog>,
    acks: &HashMap<i64, f64>,
    acts: &HashMap<(String, String), Vec<(i64, f64)>>,
) -> Option<f64> {
    let t = secs(&h.at)?;
    let to = h.detail["to"].as_str()?;
    let label = h.detail["task"].as_str().unwrap_or_default();
    let mut first: Option<f64> = None;
    let mut consider = |x: f64| {
        if x >= t && first.is_none_or(|f| x < f) {
            first = Some(x);
        }
    };
    if let Some(a) = h.detail["message"].as_i64().and_then(|m| acks.get(&m)) {
        consider(*a);
    }
    if let Some(log) = crate::tasks::parse_id(label).and_then(|id| tasks.get(&id)) {
        let prefix = format!("{to}/");
        let by_them = log.events.iter().find(|e| {
            e.id > h.id
                && e.detail["by"]
                    .as_str()
                    .is_some_and(|b| b.starts_with(&prefix))
        });
        if let Some(e) = by_them {
            consider(secs(&e.at).unwrap_or(0.0));
        }
    }
    let key = (to.to_string(), label.to_string());
    if let Some((_, x)) = acts
        .get(&key)
        .and_then(|v| v.iter().find(|(id, _)| *id > h.id))
    {
        consider(*x);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Events at minutes from a fixed start, ids in order.
    struct History(Vec<EventRow>);

    impl History {
        fn at(&mut self, minute: f64, agency: &str, kind: &str, detail: serde_json::Value) {
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs_f64(1_800_000_000.0 + minute * 60.0);
            self.0.push(EventRow {
                id: self.0.len() as i64 + 1,
                at: humantime::format_rfc3339_millis(t).to_string(),
                agency: Some(agency.into()),
                kind: kind.into(),
                detail,
            });
        }
    }

    fn minute(m: f64) -> f64 {
        1_800_000_000.0 + m * 60.0
    }

    #[test]
    fn medians_of_even_and_odd_counts() {
        let d = Durations::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((d.mean_s, d.median_s), (Some(2.0), Some(2.0)));
        let d = Durations::of(vec![4.0, 1.0, 2.0, 10.0]);
        assert_eq!((d.mean_s, d.median_s), (Some(4.25), Some(3.0)));
        assert_eq!(Durations::of(vec![]), Durations::default());
    }

    #[test]
    fn a_prompt_answered_by_the_human_while_held_makes_a_task_not_autonomous() {
        let mut h = History(Vec::new());
        let task = |id: i64, state: &str, by: &str, agent: Option<&str>| {
            let mut d = json!({"id": id, "state": state, "by": by});
            if let Some(a) = agent {
                d["agent"] = a.into();
            }
            d
        };
        for id in [1, 2] {
            h.at(0.0, "A", "task.created", task(id, "waiting", "human", None));
            h.at(0.0, "A", "task.ready", task(id, "ready", "agency", None));
        }
        h.at(
            1.0,
            "A",
            "task.claimed",
            task(1, "claimed", "A/dev", Some("A/dev")),
        );
        h.at(2.0, "A", "agent.waiting", json!({"agent": "dev"}));
        h.at(3.0, "A", "agent.resumed", json!({"agent": "dev"}));
        h.at(4.0, "A", "task.done", task(1, "done", "A/dev", None));
        h.at(
            5.0,
            "A",
            "task.claimed",
            task(2, "claimed", "A/dev", Some("A/dev")),
        );
        // Answered by another agent: still no human.
        h.at(6.0, "A", "agent.waiting", json!({"agent": "dev"}));
        h.at(
            6.5,
            "A",
            "answer",
            json!({"agent": "dev", "by": "Ops/lead"}),
        );
        h.at(7.0, "A", "task.done", task(2, "done", "A/dev", None));
        let (all, _) = compute(&h.0, None, minute(100.0));
        assert_eq!((all.tasks_completed, all.tasks_without_human), (2, 1));
        assert_eq!(all.prompt_wait.count, 2);
        assert_eq!(all.prompt_wait.mean_s, Some(45.0));
        assert_eq!(all.ready_to_done.mean_s, Some(330.0));
    }
}
