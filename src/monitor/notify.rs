//! Notifications that respect attention: `[notify] command` in
//! `agency.toml` runs for what needs the human (an approval submitted, an
//! agent at a permission prompt, a task blocked, a message failed, an agent
//! exited), with a JSON document on its stdin. What comes within `batch` of
//! the first goes in one call; what comes in `quiet` hours is held and sent
//! as one call when they end; what was dealt with meanwhile is left out.
//!
//! The router runs it on its tick: spawned in the background (its own
//! process group, stdin piped, output to `registry/notify.log`), ended after
//! `timeout`. A failing command is logged and never holds up delivery. The
//! place in the event log it has reached is kept in the registry, so a
//! router that stops and starts again neither repeats nor loses a call.

use std::io::Write;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::{info, warn};

use super::{one_line, parse_time, rfc3339, scan::unix, Kind, NeedsYou};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::{ApprovalStatus, MessageState};
use crate::os::clock::local_minute;
use crate::os::process::{self, Signal};
use crate::store::EventRow;
use crate::workspace::{quote, NotifyConfig, Workspace, CONFIG_FILE};

/// The events that need the human, by the kind of need they start.
pub const KINDS: &[(&str, Kind)] = &[
    ("approval.submitted", Kind::Approval),
    ("agent.waiting", Kind::Waiting),
    ("task.blocked", Kind::Blocked),
    ("message.failed", Kind::Failed),
    ("agent.exited", Kind::Exited),
];

/// The notifier's place in the event log (`Store::cursor`).
const CURSOR: &str = "notify";
/// How far back the first look of a newly configured notifier reaches.
const FIRST_LOOK_BACK: Duration = Duration::from_secs(600);
/// What `batch` is when `agency.toml` does not say.
pub const DEFAULT_BATCH: Duration = Duration::from_secs(60);
/// What `timeout` is when `agency.toml` does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `[notify]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub command: String,
    pub batch: Duration,
    /// Minutes of the day (local time): from, to.
    pub quiet: Option<(u32, u32)>,
    pub timeout: Duration,
}

fn bad(key: &str, value: &str, e: impl std::fmt::Display, hint: &str) -> Error {
    Error::user(
        format!("[notify] {key} = {value:?} in {CONFIG_FILE}: {e}"),
        hint.to_string(),
    )
}

/// The longest `batch` or `timeout`: held a day at most, a command that
/// runs longer is hung (and sums with clock times stay far from overflow).
pub const MAX_SETTING: Duration = Duration::from_secs(24 * 3600);

fn duration(key: &str, value: Option<&str>, default: Duration) -> Result<Duration> {
    let hint = "write a duration like \"2m\" or \"30s\", at most \"1day\"";
    let Some(v) = value else {
        return Ok(default);
    };
    let d = humantime::parse_duration(v.trim()).map_err(|e| bad(key, v, e, hint))?;
    if d > MAX_SETTING {
        return Err(bad(key, v, "longer than a day", hint));
    }
    Ok(d)
}

/// `"22:00-08:00"` as minutes of the day.
pub fn parse_quiet(text: &str) -> Result<(u32, u32)> {
    let hint = "write hours as \"22:00-08:00\" (local time)";
    let minute = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (from, to) = text
        .split_once('-')
        .and_then(|(a, b)| Some((minute(a)?, minute(b)?)))
        .ok_or_else(|| bad("quiet", text, "not a time range", hint))?;
    if from == to {
        return Err(bad("quiet", text, "it starts where it ends", hint));
    }
    Ok((from, to))
}

impl Settings {
    /// `None` when no command is set.
    pub fn from_config(c: &NotifyConfig) -> Result<Option<Settings>> {
        let Some(command) = c.command.as_deref().filter(|c| !c.trim().is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Settings {
            command: command.to_string(),
            batch: duration("batch", c.batch.as_deref(), DEFAULT_BATCH)?,
            quiet: c.quiet.as_deref().map(parse_quiet).transpose()?,
            timeout: duration("timeout", c.timeout.as_deref(), DEFAULT_TIMEOUT)?,
        }))
    }

    pub fn in_quiet(&self, minute_of_day: u32) -> bool {
        match self.quiet {
            None => false,
            Some((from, to)) if from < to => (from..to).contains(&minute_of_day),
            Some((from, to)) => minute_of_day >= from || minute_of_day < to,
        }
    }
}

/// Now, for the notifier. Debug builds (the tests) may set it with
/// `AGENCY_TEST_CLOCK`, the path of a file holding an RFC 3339 time, so a
/// test can move through batch windows and quiet hours.
pub fn now() -> SystemTime {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("AGENCY_TEST_CLOCK") {
        if let Some(t) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| humantime::parse_rfc3339_weak(s.trim().trim_end_matches('Z')).ok())
        {
            return t;
        }
    }
    SystemTime::now()
}

/// Whether held items go out now: outside quiet hours, once `batch` has
/// passed since the first of them was seen.
pub fn due(s: &Settings, first_seen: u64, now: u64) -> bool {
    !s.in_quiet(local_minute(now)) && now >= first_seen.saturating_add(s.batch.as_secs())
}

/// One call's document.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub workspace: String,
    pub count: usize,
    /// One line for a desktop notification.
    pub summary: String,
    /// The screen that decides them all.
    pub monitor: String,
    pub events: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The event's id in `agency log`.
    pub event: i64,
    #[serde(flatten)]
    pub need: NeedsYou,
}

/// The binary and `--home`, always: a notification is read elsewhere, by
/// the human (whose PATH has no agent's `registry/bin`).
fn me(ws: &Workspace) -> String {
    format!(
        "{} --home {}",
        crate::workspace::program_on(ws.human_path()),
        quote(&ws.root.display().to_string())
    )
}

/// What an event asks of the human, if it still does.
pub fn item(ctx: &Ctx, e: &EventRow) -> Result<Option<Item>> {
    let Some(kind) = KINDS.iter().find(|(k, _)| *k == e.kind).map(|(_, k)| *k) else {
        return Ok(None);
    };
    let me = me(&ctx.ws);
    let agency = e.agency.clone().unwrap_or_default();
    let id = e.detail["id"].as_i64();
    let ask = match kind {
        Kind::Approval => approval_ask(ctx, &me, id)?,
        Kind::Waiting | Kind::Exited => agent_ask(ctx, &me, e, kind, &agency),
        Kind::Blocked => blocked_ask(ctx, &me, id)?,
        Kind::Failed => failed_ask(ctx, &me, id)?,
    };
    let Some(ask) = ask else {
        return Ok(None);
    };
    let need = NeedsYou {
        kind,
        agency,
        agent: ask.agent,
        id: ask.id,
        what: one_line(&ask.what),
        since: parse_time(&e.at).map(rfc3339),
        command: ask.command,
        tests_failed: false,
    };
    Ok(Some(Item { event: e.id, need }))
}

/// What one item asks, and of whom.
struct Ask {
    what: String,
    agent: Option<String>,
    id: Option<i64>,
    command: String,
}

/// Approval `id`, while it is pending.
fn approval_ask(ctx: &Ctx, me: &str, id: Option<i64>) -> Result<Option<Ask>> {
    let Some(a) = id
        .map(|i| ctx.store.approval(i))
        .transpose()?
        .flatten()
        .filter(|a| a.status == ApprovalStatus::Pending)
    else {
        return Ok(None);
    };
    Ok(Some(Ask {
        what: format!("approval #{} {} ({})", a.id, a.title, a.branch),
        agent: None,
        id: Some(a.id),
        command: format!("{me} approvals"),
    }))
}

/// An agent waiting at a prompt or exited, while that is the newest thing
/// known of it.
fn agent_ask(ctx: &Ctx, me: &str, e: &EventRow, kind: Kind, agency: &str) -> Option<Ask> {
    let lifecycle = [
        "agent.waiting",
        "agent.resumed",
        "agent.exited",
        "agent.restarted",
    ];
    let still_latest = |name: &str| -> Result<bool> {
        Ok(ctx
            .store
            .last_agent_event(agency, name, &lifecycle)?
            .is_some_and(|l| l.id == e.id))
    };
    let name = e.detail["agent"]
        .as_str()
        .map(str::to_string)
        .filter(|n| still_latest(n).unwrap_or(false))?;
    let (what, command) = if kind == Kind::Waiting {
        let asks = e.detail["question"].as_str();
        let q = asks.unwrap_or("(a permission prompt)");
        (
            format!("{agency}/{name} asks: {q}"),
            super::answer_command(me, agency, &name, asks),
        )
    } else {
        (
            format!("{agency}/{name} exited"),
            format!("{me} status {} --restart", quote(agency)),
        )
    };
    Some(Ask {
        what,
        agent: Some(name),
        id: None,
        command,
    })
}

/// Task `id`, while it is blocked.
fn blocked_ask(ctx: &Ctx, me: &str, id: Option<i64>) -> Result<Option<Ask>> {
    let Some(t) = id
        .map(|i| ctx.store.task(i))
        .transpose()?
        .flatten()
        .filter(|t| t.state == "blocked")
    else {
        return Ok(None);
    };
    Ok(Some(Ask {
        what: format!(
            "task #{} {} blocked: {}",
            t.id,
            t.title,
            t.reason.as_deref().unwrap_or("no reason given")
        ),
        agent: t.agent.clone(),
        id: Some(t.id),
        command: format!("{me} task show {}", t.id),
    }))
}

/// Message `id`, while it stays failed.
fn failed_ask(ctx: &Ctx, me: &str, id: Option<i64>) -> Result<Option<Ask>> {
    let Some(m) = id
        .map(|i| ctx.store.message(i))
        .transpose()?
        .flatten()
        .filter(|m| m.state == MessageState::Failed)
    else {
        return Ok(None);
    };
    Ok(Some(Ask {
        what: format!(
            "message #{} to {} failed: {}",
            m.id,
            m.to,
            m.last_error.as_deref().unwrap_or("not delivered")
        ),
        agent: Some(m.agent.clone()),
        id: Some(m.id),
        command: format!("{me} inbox {} {}", quote(&m.agency), quote(&m.agent)),
    }))
}

pub fn document(ws: &Workspace, items: Vec<Item>) -> Document {
    let mut summary = match items.len() {
        1 => "agency: 1 item needs you: ".to_string(),
        n => format!("agency: {n} items need you: "),
    };
    summary.push_str(
        &items
            .iter()
            .take(3)
            .map(|i| i.need.what.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    );
    if items.len() > 3 {
        summary.push_str("; ...");
    }
    Document {
        workspace: ws.root.display().to_string(),
        count: items.len(),
        summary,
        monitor: format!("{} monitor", me(ws)),
        events: items,
    }
}

/// A call under way.
struct Running {
    child: Child,
    deadline: Instant,
}

/// The router's notifier.
#[derive(Default)]
pub struct Notifier {
    /// `agency.toml` as last read (its modification time), and its
    /// `[notify]`.
    stamp: Option<SystemTime>,
    settings: Option<Settings>,
    /// When the oldest item held was first seen (Unix seconds, `now()`).
    first_seen: Option<u64>,
    /// Held items last logged (so the log says it once).
    held_logged: usize,
    running: Vec<Running>,
}

impl Notifier {
    /// Reads `[notify]` again when `agency.toml` changed; a broken section
    /// is logged and notifies nothing until fixed.
    fn reload(&mut self, ws: &Workspace) {
        let path = ws.root.join(CONFIG_FILE);
        let stamp = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        if stamp == self.stamp && self.stamp.is_some() {
            return;
        }
        self.stamp = stamp;
        let config = match Workspace::open(ws.root.clone()) {
            Ok(w) => w.config.notify,
            Err(e) => {
                warn!("notify: {e}");
                return;
            }
        };
        self.settings = match Settings::from_config(&config) {
            Ok(s) => s,
            Err(e) => {
                warn!(
                    "notify: {e}{}",
                    e.hint().map(|h| format!(" ({h})")).unwrap_or_default()
                );
                None
            }
        };
    }

    /// One tick: finished calls reaped, overdue ones ended, held items sent
    /// when due.
    pub fn tick(&mut self, ctx: &mut Ctx, now: SystemTime) {
        self.reap();
        self.reload(&ctx.ws);
        let Some(s) = self.settings.clone() else {
            return;
        };
        if let Err(e) = self.send_due(ctx, &s, unix(now)) {
            warn!("notify: {e}");
        }
    }

    fn send_due(&mut self, ctx: &mut Ctx, s: &Settings, now: u64) -> Result<()> {
        let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        let cursor = match ctx.store.cursor(CURSOR)? {
            Some(c) => c,
            None => {
                // Newly configured: what is recent, not the whole history
                // (what was dealt with meanwhile is left out anyway).
                let since = SystemTime::now() - FIRST_LOOK_BACK;
                let from = ctx
                    .store
                    .last_event_before(&humantime::format_rfc3339_millis(since).to_string())?;
                ctx.store.set_cursor(CURSOR, from)?;
                from
            }
        };
        let held = ctx.store.events_of_kinds(&kinds, cursor)?;
        let Some(last) = held.last().map(|e| e.id) else {
            self.first_seen = None;
            return Ok(());
        };
        let first = *self.first_seen.get_or_insert(now);
        if !due(s, first, now) {
            if held.len() != self.held_logged {
                self.held_logged = held.len();
                let why = if s.in_quiet(local_minute(now)) {
                    "quiet hours".to_string()
                } else {
                    format!(
                        "batch until {}",
                        rfc3339(first.saturating_add(s.batch.as_secs()))
                    )
                };
                info!("notify: {} item(s) held ({why})", held.len());
            }
            return Ok(());
        }
        let mut items = Vec::new();
        for e in &held {
            items.extend(item(ctx, e)?);
        }
        // Past these, whatever happens to the call: a failing command is
        // logged, never repeated in a loop.
        ctx.store.set_cursor(CURSOR, last)?;
        self.first_seen = None;
        self.held_logged = 0;
        if items.is_empty() {
            info!(
                "notify: {} item(s) dealt with before their call",
                held.len()
            );
            return Ok(());
        }
        let doc = document(&ctx.ws, items);
        match self.spawn(&ctx.ws, s, &doc) {
            Ok(pid) => info!("notify: {} item(s) sent (pid {pid})", doc.count),
            Err(e) => warn!("notify: cannot run {:?}: {e}", s.command),
        }
        Ok(())
    }

    /// Starts the command with the document on its stdin, written by a
    /// thread of its own so a command that does not read never blocks us.
    fn spawn(&mut self, ws: &Workspace, s: &Settings, doc: &Document) -> std::io::Result<u32> {
        let log = ws.registry_dir().join("notify.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        // The human's command, even under a router started by hand in an
        // agent's pane.
        let (path, remove) = ws.human_env();
        let mut env = process::Env {
            set: vec![("AGENCY_HOME", ws.root.as_os_str())],
            remove,
        };
        env.set.extend(path.as_deref().map(|p| ("PATH", p)));
        let mut child = process::spawn_shell_piped(&s.command, &ws.root, &env, out)?;
        let pid = child.id();
        if let Some(mut stdin) = child.stdin.take() {
            let mut text = serde_json::to_vec_pretty(doc).expect("plain data serializes");
            text.push(b'\n');
            std::thread::spawn(move || {
                // A command that exits without reading is no error of ours.
                let _ = stdin.write_all(&text);
            });
        }
        self.running.push(Running {
            child,
            deadline: Instant::now()
                .checked_add(s.timeout.min(MAX_SETTING))
                .unwrap_or_else(Instant::now),
        });
        Ok(pid)
    }

    /// Collects finished calls (logging failures) and ends overdue ones.
    fn reap(&mut self) {
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    warn!("notify: the command (pid {}) failed: {status}; its output is in registry/notify.log", r.child.id());
                }
                false
            }
            Ok(None) if Instant::now() >= r.deadline => {
                let pid = r.child.id();
                // The process group the command leads.
                process::signal_group(pid, Signal::KILL);
                let _ = r.child.wait();
                warn!("notify: the command (pid {pid}) ran past its timeout; ended");
                false
            }
            Ok(None) => true,
            Err(e) => {
                warn!("notify: {e}");
                false
            }
        });
    }

    /// Calls still running (for tests and a clean stop).
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(batch: u64, quiet: Option<&str>) -> Settings {
        Settings {
            command: "true".into(),
            batch: Duration::from_secs(batch),
            quiet: quiet.map(|q| parse_quiet(q).unwrap()),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    #[test]
    fn quiet_hours_wrap_midnight_or_not() {
        let night = settings(0, Some("22:00-08:00"));
        for (m, quiet) in [
            (21 * 60 + 59, false),
            (22 * 60, true),
            (0, true),
            (7 * 60 + 59, true),
            (8 * 60, false),
            (12 * 60, false),
        ] {
            assert_eq!(night.in_quiet(m), quiet, "minute {m}");
        }
        let lunch = settings(0, Some("12:00-13:30"));
        assert!(lunch.in_quiet(12 * 60 + 10));
        assert!(!lunch.in_quiet(13 * 60 + 30));
        assert!(!lunch.in_quiet(23 * 60));
        assert!(!settings(0, None).in_quiet(0));
    }

    #[test]
    fn bad_settings_say_what_to_write() {
        for q in ["22-08", "25:00-08:00", "10:00-10:00", "", "22:00"] {
            let e = parse_quiet(q).unwrap_err();
            assert!(e.hint().unwrap().contains("22:00-08:00"), "{q}: {e}");
        }
        let c = NotifyConfig {
            command: Some("notify-send".into()),
            batch: Some("soon".into()),
            ..Default::default()
        };
        let e = Settings::from_config(&c).unwrap_err();
        assert!(e.to_string().contains("[notify] batch = \"soon\""), "{e}");
        assert_eq!(
            Settings::from_config(&NotifyConfig::default()).unwrap(),
            None
        );
        let ok = Settings::from_config(&NotifyConfig {
            command: Some("cat".into()),
            batch: Some("2m".into()),
            quiet: Some("22:00-08:00".into()),
            timeout: None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(ok.batch, Duration::from_secs(120));
        assert_eq!(ok.quiet, Some((1320, 480)));
        // Too long to add to a clock (it crashed the router), or just long.
        for (batch, timeout) in [(None, "500000000000y"), (Some("2days"), "1m")] {
            let c = NotifyConfig {
                command: Some("cat".into()),
                batch: batch.map(str::to_string),
                quiet: None,
                timeout: Some(timeout.into()),
            };
            let e = Settings::from_config(&c).unwrap_err();
            assert!(e.to_string().contains("longer than a day"), "{e}");
            assert!(e.hint().unwrap().contains("at most"), "{e}");
        }
        // Even unchecked settings never overflow.
        assert!(!due(&settings(u64::MAX, None), 10, 20));
    }

    #[test]
    fn items_wait_for_the_batch_and_for_quiet_hours_to_end() {
        // TZ is not set in tests: local_minute follows the process's zone,
        // so times are picked by their local minute.
        let base = 1_800_000_000u64;
        let minute = |t: u64| local_minute(t);
        let s = settings(120, None);
        assert!(!due(&s, base, base));
        assert!(!due(&s, base, base + 119));
        assert!(due(&s, base, base + 120));
        // Find a moment inside 22:00-08:00 local and one after it ends.
        let quiet = settings(120, Some("22:00-08:00"));
        let night = (0..1440u64)
            .map(|m| base + m * 60)
            .find(|t| minute(*t) == 23 * 60)
            .unwrap();
        assert!(!due(&quiet, night - 3600, night), "held in quiet hours");
        let morning = night + 9 * 3600 + 60;
        assert_eq!(minute(morning), 8 * 60 + 1);
        assert!(due(&quiet, night - 3600, morning), "sent when they end");
    }
}
