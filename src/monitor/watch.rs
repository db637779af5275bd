//! The router's look at the fleet, every few seconds: it records in the
//! event log when an agent comes to a permission prompt (`agent.waiting`,
//! with the question), leaves it (`agent.resumed`), exits while its agency
//! runs (`agent.exited`) or comes back (`agent.restarted`); keeps the count
//! of what needs the human in the tmux server's `@agency-needs-you` option
//! (for status lines); and drives the notifier. The history these events
//! make is what `agency metrics` reads for prompts.

use std::collections::HashMap;
use std::fs::{OpenOptions, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tracing::warn;

use super::notify::{self, Notifier};
use super::scan::{unix, AgentLive, Scanner, BUDGET};
use crate::context::Ctx;
use crate::error::Result;
use crate::model::{AgencyState, Event};

/// How often the router looks at the panes.
const EVERY: Duration = Duration::from_secs(2);
/// How often the notifier runs.
const NOTIFY_EVERY: Duration = Duration::from_millis(500);
/// The events that tell an agent's story, newest last.
pub const LIFECYCLE: &[&str] = &[
    "agent.waiting",
    "agent.resumed",
    "agent.exited",
    "agent.restarted",
];
/// The tmux user option that holds how many items need the human.
pub const STATUS_OPTION: &str = "@agency-needs-you";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    Waiting,
    Exited,
}

fn life_of(kind: &str) -> Life {
    match kind {
        "agent.waiting" => Life::Waiting,
        "agent.exited" => Life::Exited,
        _ => Life::Running,
    }
}

#[derive(Default)]
pub struct Watch {
    scanner: Scanner,
    looked: Option<Instant>,
    notified: Option<Instant>,
    /// (agency, agent) → what the event log says of it now, and since when
    /// (Unix seconds).
    known: HashMap<(String, String), (Life, u64)>,
    notifier: Notifier,
    shown: Option<usize>,
}

/// Whether `create`, `restore` or `kill` of the agency is under way (it
/// holds the agency's lock): its panes come and go on purpose.
fn being_changed(ctx: &Ctx, agency: &str) -> bool {
    let path = ctx
        .ws
        .registry_dir()
        .join("locks")
        .join(format!("{agency}.lock"));
    let Ok(f) = OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    matches!(f.try_lock(), Err(TryLockError::WouldBlock))
}

/// Whether the registry still says the agency runs, read after checking
/// nobody changes it (see `being_changed`): a `kill` that ended its panes
/// after our look has said so by now, and one under way holds the lock.
fn still_running(ctx: &Ctx, agency: &str) -> bool {
    ctx.store
        .agency(agency)
        .ok()
        .flatten()
        .is_some_and(|a| a.state == AgencyState::Running)
}

impl Watch {
    pub fn new() -> Watch {
        Watch {
            scanner: Scanner::new(BUDGET),
            ..Watch::default()
        }
    }

    /// Called on every router tick; does its work at its own pace.
    pub fn tick(&mut self, ctx: &mut Ctx) {
        if self.looked.is_none_or(|t| t.elapsed() >= EVERY) {
            self.looked = Some(Instant::now());
            if let Err(e) = self.look(ctx) {
                warn!("watch: {e}");
            }
        }
        if self.notified.is_none_or(|t| t.elapsed() >= NOTIFY_EVERY) {
            self.notified = Some(Instant::now());
            self.notifier.tick(ctx, notify::now());
        }
    }

    fn look(&mut self, ctx: &mut Ctx) -> Result<()> {
        let now = SystemTime::now();
        let live = self.scanner.scan(ctx, now)?;
        for agency in live.iter().filter(|a| a.running) {
            if being_changed(ctx, &agency.name) {
                continue;
            }
            for a in agency.agents.iter().filter(|a| !a.unread) {
                let key = (agency.name.clone(), a.name.clone());
                let was = match self.known.get(&key) {
                    Some(k) => *k,
                    None => match ctx
                        .store
                        .last_agent_event(&agency.name, &a.name, LIFECYCLE)?
                    {
                        Some(e) => (life_of(&e.kind), super::parse_time(&e.at).unwrap_or(0)),
                        None => (Life::Running, unix(now)),
                    },
                };
                let is = match a.state.as_str() {
                    "waiting" => Life::Waiting,
                    "exited" => Life::Exited,
                    _ => Life::Running,
                };
                if is == Life::Exited && was.0 != Life::Exited && !still_running(ctx, &agency.name)
                {
                    // Killed between the look and now: not an exit of its own.
                    continue;
                }
                let now_s = unix(now);
                self.record(ctx, &agency.name, a, was, is, now_s)?;
                let since = if was.0 == is { was.1 } else { now_s };
                self.known.insert(key, (is, since));
            }
        }
        self.show_count(ctx, &live);
        Ok(())
    }

    /// The events for a change from `was` to `is`.
    fn record(
        &self,
        ctx: &mut Ctx,
        agency: &str,
        a: &AgentLive,
        was: (Life, u64),
        is: Life,
        now: u64,
    ) -> Result<()> {
        let waited = now.saturating_sub(was.1);
        match (was.0, is) {
            (x, y) if x == y => {}
            (Life::Waiting, Life::Running) => {
                ctx.record(Event::new(
                    agency,
                    "agent.resumed",
                    json!({"agent": a.name, "waited_s": waited}),
                ))?;
            }
            (Life::Exited, _) => {
                ctx.record(Event::new(
                    agency,
                    "agent.restarted",
                    json!({"agent": a.name}),
                ))?;
                if is == Life::Waiting {
                    self.waiting(ctx, agency, a)?;
                }
            }
            (_, Life::Waiting) => self.waiting(ctx, agency, a)?,
            (_, Life::Exited) => {
                ctx.record(Event::new(
                    agency,
                    "agent.exited",
                    json!({"agent": a.name, "pane": a.pane, "waited_s": (was.0 == Life::Waiting).then_some(waited)}),
                ))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn waiting(&self, ctx: &mut Ctx, agency: &str, a: &AgentLive) -> Result<()> {
        ctx.record(Event::new(
            agency,
            "agent.waiting",
            json!({"agent": a.name, "pane": a.pane, "question": a.question}),
        ))?;
        Ok(())
    }

    /// Sets the server's `@agency-needs-you` to the count (unset at 0)
    /// when it changed.
    fn show_count(&mut self, ctx: &Ctx, live: &[super::scan::AgencyLive]) {
        let Ok(items) = super::needs_you(ctx, live) else {
            return;
        };
        if self.shown == Some(items.len()) {
            return;
        }
        let value = match items.len() {
            0 => String::new(),
            n => n.to_string(),
        };
        match ctx.tmux.set_global_option(STATUS_OPTION, &value) {
            Ok(()) => self.shown = Some(items.len()),
            Err(e) => warn!("watch: {e}"),
        }
    }
}
