//! What needs the human, the agencies at a glance, and what just happened:
//! gathered for `agency monitor` (its screen and its JSON), with the
//! metrics of `agency metrics` and the notifications the router sends.
//!
//! - [`scan`]: every agent's state, read incrementally from tmux.
//! - [`watch`]: the router's look at the fleet: records when agents start
//!   waiting at a prompt, stop waiting or exit, and drives [`notify`].
//! - [`notify`]: the `[notify]` command, batched and held in quiet hours.
//! - [`metrics`]: outcome metrics from the event history.

pub mod metrics;
pub mod notify;
#[doc(hidden)]
pub mod sample;
pub mod scan;
pub mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::context::Ctx;
use crate::error::Result;
use crate::model::ApprovalStatus;
use crate::store::{EventRow, TaskFilter};
use crate::workspace::invocation;
use scan::{unix, AgencyLive, AgentLive, Scanner};

/// Events the feed keeps.
pub const FEED: usize = 200;
/// Minutes the throughput sparkline spans.
pub const MINUTES: usize = 60;
/// Events read when the monitor starts (the feed and the last hour).
const BACKLOG: i64 = 10_000;

/// What kind of thing needs the human; the order is the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A pending approval.
    Approval,
    /// An agent at a permission prompt.
    Waiting,
    /// A blocked task.
    Blocked,
    /// A message that could not be delivered.
    Failed,
    /// An agent whose program ended while its agency runs.
    Exited,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Approval => "approval",
            Kind::Waiting => "waiting",
            Kind::Blocked => "blocked",
            Kind::Failed => "failed",
            Kind::Exited => "exited",
        }
    }
}

/// One thing that needs the human: what, since when, and the command that
/// acts on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeedsYou {
    pub kind: Kind,
    pub agency: String,
    pub agent: Option<String>,
    /// The approval, task or message id (none for an agent).
    pub id: Option<i64>,
    pub what: String,
    /// RFC 3339 (UTC).
    pub since: Option<String>,
    pub command: String,
    /// An approval whose tests failed: approving it takes `--force`.
    #[serde(skip)]
    pub tests_failed: bool,
}

/// One agency at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgencyLine {
    pub name: String,
    pub running: bool,
    pub idle: usize,
    pub busy: usize,
    pub waiting: usize,
    pub exited: usize,
    pub tasks_done: i64,
    /// Tasks of the agency, cancelled ones left out.
    pub tasks_total: i64,
    /// Its newest event or pane output (RFC 3339).
    pub last_activity: Option<String>,
    pub agents: Vec<AgentLive>,
}

/// Everything the monitor shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub needs_you: Vec<NeedsYou>,
    pub agencies: Vec<AgencyLine>,
    /// The newest events, oldest first.
    pub events: Vec<EventRow>,
    /// Messages delivered per minute over the last hour, oldest first.
    #[serde(skip)]
    pub throughput: Vec<u64>,
    /// Tasks done in the last hour.
    #[serde(skip)]
    pub done_last_hour: u64,
    /// The router's pid, when one runs.
    #[serde(skip)]
    pub router: Option<u32>,
}

pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_secs))
        .to_string()
}

/// Unix seconds of a stored RFC 3339 time.
pub fn parse_time(at: &str) -> Option<u64> {
    humantime::parse_rfc3339_weak(at.trim_end_matches('Z'))
        .ok()
        .map(unix)
}

/// One line, no control characters and no bidi controls: what the
/// terminal and a notification show of names, titles, errors and
/// questions (a branch name or a screen's question is nobody's cleaned
/// text).
pub fn one_line(text: &str) -> String {
    let t: String = text
        .chars()
        .filter(|&c| !crate::model::is_bidi_control(c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The recent events: the feed, and the per-minute counts behind the
/// sparkline, fed incrementally.
#[derive(Debug, Default, Clone)]
pub struct Feed {
    pub events: VecDeque<EventRow>,
    /// Minute (Unix seconds / 60) → messages delivered, tasks done.
    minutes: BTreeMap<u64, (u64, u64)>,
    pub last_id: i64,
}

impl Feed {
    pub fn ingest(&mut self, events: Vec<EventRow>) {
        for e in events {
            self.last_id = self.last_id.max(e.id);
            if let Some(t) = parse_time(&e.at) {
                let m = self.minutes.entry(t / 60).or_default();
                match e.kind.as_str() {
                    "message.delivered" => m.0 += 1,
                    "task.done" => m.1 += 1,
                    _ => {}
                }
            }
            self.events.push_back(e);
            if self.events.len() > FEED {
                self.events.pop_front();
            }
        }
    }

    /// Deliveries per minute for the last `MINUTES` minutes up to `now`,
    /// and the tasks done in them.
    pub fn throughput(&mut self, now: u64) -> (Vec<u64>, u64) {
        let last = now / 60;
        let first = last + 1 - MINUTES as u64;
        self.minutes = self.minutes.split_off(&first);
        let mut out = vec![0; MINUTES];
        let mut done = 0;
        for (m, (d, t)) in self.minutes.range(first..=last) {
            out[(m - first) as usize] = *d;
            done += t;
        }
        (out, done)
    }
}

/// The monitor's memory between refreshes: the scanner's looks and the
/// events read so far.
pub struct Monitor {
    pub scanner: Scanner,
    pub feed: Feed,
    started: bool,
    /// Per agency, its newest event's time.
    last_event: HashMap<String, String>,
}

impl Monitor {
    /// `budget`: screens captured per refresh at most (0: all that changed).
    pub fn new(budget: usize) -> Monitor {
        Monitor {
            scanner: Scanner::new(budget),
            feed: Feed::default(),
            started: false,
            last_event: HashMap::new(),
        }
    }

    /// Reads what changed since the last refresh and returns the whole
    /// picture.
    pub fn refresh(&mut self, ctx: &Ctx, now: SystemTime) -> Result<Snapshot> {
        if ctx.store.replaced() {
            // Nothing to follow in a deleted database; `Ctx` is reopened
            // by whoever owns it.
            self.started = false;
        }
        let new = if self.started {
            ctx.store.events_after(None, self.feed.last_id)?
        } else {
            self.started = true;
            self.feed = Feed::default();
            self.last_event = ctx.store.last_event_per_agency()?;
            ctx.store.events(None, BACKLOG)?
        };
        for e in &new {
            if let Some(a) = &e.agency {
                self.last_event.insert(a.clone(), e.at.clone());
            }
        }
        self.feed.ingest(new);
        let live = self.scanner.scan(ctx, now)?;
        let (throughput, done_last_hour) = self.feed.throughput(unix(now));
        Ok(Snapshot {
            needs_you: needs_you(ctx, &live)?,
            agencies: agency_lines(ctx, live, &self.last_event)?,
            events: self.feed.events.iter().cloned().collect(),
            throughput,
            done_last_hour,
            router: crate::bus::router::running_pid(&ctx.ws.registry_dir()),
        })
    }
}

fn agency_lines(
    ctx: &Ctx,
    live: Vec<AgencyLive>,
    last_event: &HashMap<String, String>,
) -> Result<Vec<AgencyLine>> {
    let mut tasks: HashMap<String, (i64, i64)> = HashMap::new();
    for c in ctx.store.task_counts()? {
        let Some(a) = c.agency else { continue };
        let e = tasks.entry(a).or_default();
        if c.state == "done" {
            e.0 += c.count;
        }
        if c.state != "cancelled" {
            e.1 += c.count;
        }
    }
    Ok(live
        .into_iter()
        .map(|a| {
            let count = |s: &str| a.agents.iter().filter(|x| x.state == s).count();
            let busy = a
                .agents
                .iter()
                .filter(|x| matches!(x.state.as_str(), "busy" | "starting" | "unknown"))
                .count();
            let (done, total) = tasks.get(&a.name).copied().unwrap_or_default();
            let event = last_event.get(&a.name).and_then(|t| parse_time(t));
            AgencyLine {
                idle: count("idle"),
                busy,
                waiting: count("waiting"),
                exited: count("exited"),
                tasks_done: done,
                tasks_total: total,
                last_activity: event.max(a.activity).map(rfc3339),
                running: a.running,
                name: a.name,
                agents: a.agents,
            }
        })
        .collect())
}

/// Everything that needs the human, ranked: by kind (approvals, waiting
/// agents, blocked tasks, failed messages, exited agents), oldest first.
pub fn needs_you(ctx: &Ctx, live: &[AgencyLive]) -> Result<Vec<NeedsYou>> {
    let me = invocation(&ctx.ws);
    let mut out = pending_approvals(ctx, &me)?;
    out.extend(stopped_agents(ctx, &me, live)?);
    out.extend(blocked_tasks(ctx, &me)?);
    out.extend(failed_messages(ctx, &me)?);
    // Stable: approvals stay in id order, the rest oldest first.
    out.sort_by(|a, b| {
        a.kind.cmp(&b.kind).then_with(|| match a.kind {
            Kind::Approval => a.id.cmp(&b.id),
            _ => a.since.cmp(&b.since),
        })
    });
    Ok(out)
}

/// Approvals waiting for the human's decision.
fn pending_approvals(ctx: &Ctx, me: &str) -> Result<Vec<NeedsYou>> {
    let mut out = Vec::new();
    for a in ctx.store.approvals(Some(ApprovalStatus::Pending))? {
        let failed = !a.passed();
        let tests = match (a.tests_passed, a.tests_failed) {
            (Some(p), Some(f)) => format!("{p}✓ {f}✗"),
            _ => format!(
                "tests exit {}",
                a.test_exit_code.map_or("-".into(), |c| c.to_string())
            ),
        };
        out.push(NeedsYou {
            kind: Kind::Approval,
            what: one_line(&format!("#{} {} ({}, {tests})", a.id, a.title, a.branch)),
            since: Some(a.created_at.clone()),
            command: format!("{me} approvals"),
            agency: a.agency,
            agent: None,
            id: Some(a.id),
            tests_failed: failed,
        });
    }
    Ok(out)
}

/// Agents of running agencies that wait at a prompt or have exited.
fn stopped_agents(ctx: &Ctx, me: &str, live: &[AgencyLive]) -> Result<Vec<NeedsYou>> {
    let mut out = Vec::new();
    for agency in live.iter().filter(|a| a.running) {
        for a in &agency.agents {
            let (kind, event) = match a.state.as_str() {
                "waiting" => (Kind::Waiting, "agent.waiting"),
                "exited" => (Kind::Exited, "agent.exited"),
                _ => continue,
            };
            // The router may have seen it first.
            let recorded = ctx
                .store
                .last_agent_event(&agency.name, &a.name, &[event])?
                .and_then(|e| parse_time(&e.at));
            let seen = a.since;
            let since = match (recorded, seen) {
                (Some(r), Some(s)) => Some(r.min(s)),
                (r, s) => r.or(s),
            };
            let (what, command) = match kind {
                Kind::Waiting => (
                    format!(
                        "asks: {}",
                        a.question.as_deref().unwrap_or("(a permission prompt)")
                    ),
                    answer_command(me, &agency.name, &a.name, a.question.as_deref()),
                ),
                _ => (
                    match &a.setup_error {
                        Some(e) => format!("not started: {e}"),
                        None if a.pane.is_some() => "its program exited".into(),
                        None => "its pane is gone".into(),
                    },
                    format!("{me} status {} --restart", agency.name),
                ),
            };
            out.push(NeedsYou {
                kind,
                agency: agency.name.clone(),
                agent: Some(a.name.clone()),
                id: None,
                what: one_line(&what),
                since: since.map(rfc3339),
                command,
                tests_failed: false,
            });
        }
    }
    Ok(out)
}

/// Tasks marked blocked.
fn blocked_tasks(ctx: &Ctx, me: &str) -> Result<Vec<NeedsYou>> {
    let mut out = Vec::new();
    for t in ctx.store.tasks(&TaskFilter {
        agency: None,
        state: Some("blocked".into()),
    })? {
        out.push(NeedsYou {
            kind: Kind::Blocked,
            agency: t.agency.clone().unwrap_or_default(),
            agent: t.agent.clone(),
            id: Some(t.id),
            what: one_line(&format!(
                "task #{} {}: {}",
                t.id,
                t.title,
                t.reason.as_deref().unwrap_or("no reason given")
            )),
            since: Some(t.updated_at.clone()),
            command: format!("{me} task show {}", t.id),
            tests_failed: false,
        });
    }
    Ok(out)
}

/// Messages the router gave up on.
fn failed_messages(ctx: &Ctx, me: &str) -> Result<Vec<NeedsYou>> {
    let mut out = Vec::new();
    for (m, at) in ctx.store.failed_messages()? {
        out.push(NeedsYou {
            kind: Kind::Failed,
            what: one_line(&format!(
                "message #{} {} from {}: {}",
                m.id,
                m.kind,
                m.from,
                m.last_error.as_deref().unwrap_or("not delivered")
            )),
            since: Some(at.unwrap_or(m.created_at.clone())),
            command: format!(
                "{me} inbox {} {}",
                crate::workspace::quote(&m.agency),
                crate::workspace::quote(&m.agent)
            ),
            agency: m.agency,
            agent: Some(m.agent),
            id: Some(m.id),
            tests_failed: false,
        });
    }
    Ok(out)
}

/// The command that answers an agent's prompt (`no` and `always` where it
/// offers them).
pub fn answer_command(me: &str, agency: &str, agent: &str, question: Option<&str>) -> String {
    use crate::workspace::quote;
    let mut cmd = format!("{me} answer {} {} yes", quote(agency), quote(agent));
    // Only while it asks what the human read here.
    if let Some(q) = question {
        cmd.push_str(&format!(" --if-asks {}", quote(q)));
    }
    cmd
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_drops_controls_and_bidi_controls() {
        let text = "approve \u{202e}gnp.exe\u{202c}\x1b[2J\nnow\u{2066}";
        assert_eq!(super::one_line(text), "approve gnp.exe [2J now");
    }
}
