//! `agency monitor` and `agency metrics`.

use std::time::{Duration, SystemTime};

use clap::Args;

use super::{print_json, print_lines};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::monitor::metrics::{self, Durations, Metrics};
use crate::monitor::{scan, Monitor};

/// What needs you, every agency at a glance, recent events; decide from there
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency monitor            the screen (in a terminal)
  agency monitor --json     the same as one JSON document

First, ranked, what needs you: pending approvals (oldest first), agents waiting
at a permission prompt (with the question), blocked tasks, failed messages,
agents that exited while their agency runs. Keys on a row: Enter details,
d diff, a then y approve, r reject with feedback (approvals); y, n or A then y
answer a prompt yes, no or always; R then y restarts an exited agent or retries
a failed message; p goes to the agent's pane (inside tmux; else the screen
closes and prints the attach command). Below: one line per agency (Enter opens
it), recent events and messages delivered per minute.")]
pub struct MonitorArgs {
    /// Print one JSON document instead of the screen
    #[arg(long)]
    pub json: bool,
}

pub fn monitor(ctx: &mut Ctx, args: &MonitorArgs) -> Result<()> {
    if !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        if let Some(cmd) = crate::tui::monitor::run(ctx)? {
            print_lines([format!("to watch it: {cmd}")])?;
        }
        return Ok(());
    }
    // One look: every screen read, however many.
    let mut m = Monitor::new(0);
    let snap = m.refresh(ctx, SystemTime::now())?;
    let events = &snap.events[snap.events.len().saturating_sub(50)..];
    print_json(&serde_json::json!({
        "needs_you": snap.needs_you,
        "agencies": snap.agencies,
        "events": events,
    }))
}

/// Outcome metrics from the event history, per agency and overall
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency metrics                    all history
  agency metrics --since 24h        the last day
  agency metrics --since 7d --agency CodeAgency --json

Tasks completed, and how many without a human decision other than the final
one; first-pass approval rate; handoff time (a handoff to the receiving
agency's first action on it); ready to done; how long approvals and prompts
waited for you; messages delivered, failed, resubmitted and retried. The README
defines each.")]
pub struct MetricsArgs {
    /// Only what happened in this last stretch of time (30m, 24h, 7d)
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// One agency only
    #[arg(long, value_name = "A")]
    pub agency: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn metrics(ctx: &Ctx, args: &MetricsArgs) -> Result<()> {
    let now = SystemTime::now();
    let since = match &args.since {
        None => None,
        Some(s) => {
            let d = humantime::parse_duration(s.trim()).map_err(|e| {
                Error::user(
                    format!("--since {s:?}: {e}"),
                    "give a duration like 30m, 24h or 7d",
                )
            })?;
            Some(now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH))
        }
    };
    if let Some(a) = &args.agency {
        crate::model::spec::validate_name("agency", a)?;
    }
    let events = ctx
        .store
        .events_by_prefix_and_kinds("task.", metrics::KINDS)?;
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let (overall, agencies) = metrics::compute(&events, since.map(secs), secs(now));
    let agencies: Vec<Metrics> = match &args.agency {
        Some(a) => vec![match agencies
            .into_iter()
            .find(|m| m.agency.as_deref() == Some(a))
        {
            Some(m) => m,
            None => unknown(ctx, a)?,
        }],
        None => agencies,
    };
    let report = metrics::Report {
        since: since.map(|t| crate::monitor::rfc3339(scan::unix(t))),
        until: crate::monitor::rfc3339(scan::unix(now)),
        overall: if args.agency.is_some() {
            agencies[0].clone()
        } else {
            overall
        },
        agencies,
    };
    if args.json {
        return print_json(&report);
    }
    let mut lines = vec![match &report.since {
        Some(s) => format!(
            "metrics since {s} ({})",
            args.since.as_deref().unwrap_or("")
        ),
        None => "metrics over all history".to_string(),
    }];
    if args.agency.is_none() {
        lines.extend(block("overall", &report.overall));
    }
    for m in &report.agencies {
        lines.extend(block(m.agency.as_deref().unwrap_or("-"), m));
    }
    print_lines(lines)
}

/// An agency with nothing in the period: empty metrics if it exists (in the
/// registry, as a folder or in the history), else an error.
fn unknown(ctx: &Ctx, a: &str) -> Result<Metrics> {
    let in_history = !ctx.store.events(Some(a), 1)?.is_empty();
    if ctx.store.agency(a)?.is_some() || ctx.ws.agency_dir(a).is_dir() || in_history {
        return Ok(Metrics {
            agency: Some(a.to_string()),
            ..Metrics::default()
        });
    }
    let names: Vec<String> = ctx.store.agencies()?.into_iter().map(|a| a.name).collect();
    let hint = match crate::error::did_you_mean(a, names.iter().map(String::as_str)) {
        Some(n) => format!("did you mean {n:?}? (see `agency list`)"),
        None => "see the agencies with `agency list`".into(),
    };
    Err(Error::user(format!("no agency {a:?}"), hint))
}

fn took(d: &Durations) -> String {
    let f = |s: Option<f64>| {
        s.map_or("-".to_string(), |s| {
            humantime::format_duration(Duration::from_secs(s.round() as u64)).to_string()
        })
    };
    match d.count {
        0 => "none".into(),
        n => format!("mean {}, median {} ({n})", f(d.mean_s), f(d.median_s)),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!(" ({:.0}%)", x * 100.0))
}

fn block(name: &str, m: &Metrics) -> Vec<String> {
    let row = |k: &str, v: String| format!("  {k:<30} {v}");
    vec![
        String::new(),
        name.to_string(),
        row("tasks completed", m.tasks_completed.to_string()),
        row(
            "  without a human decision",
            format!("{}{}", m.tasks_without_human, pct(m.without_human_share)),
        ),
        row(
            "approved on the first pass",
            format!(
                "{} of {}{} ({} rejected)",
                m.approved_first_pass,
                m.approved,
                pct(m.first_pass_rate),
                m.rejected
            ),
        ),
        row(
            "handoff to first action",
            format!("{}, {} open", took(&m.handoff), m.handoffs_open),
        ),
        row("ready to done", took(&m.ready_to_done)),
        row("approvals waited for you", took(&m.approval_wait)),
        row(
            "prompts waited for you",
            format!("{}, {} open", took(&m.prompt_wait), m.prompts_open),
        ),
        row(
            "messages",
            format!(
                "{} delivered, {} failed, {} resubmitted, {} retried",
                m.messages.delivered, m.messages.failed, m.messages.resubmitted, m.messages.retried
            ),
        ),
    ]
}
