//! `agency send`, `send-inter`, `broadcast`, `inbox`, `ack`, `log`, `router`.

use std::time::Duration;

use clap::Args;

use super::{print_json, print_lines};
use crate::agency::Ctx;
use crate::bus;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Send a message to an agent of an agency (`coordinator` or a specialist)
#[derive(Debug, Args)]
pub struct SendArgs {
    pub agency: String,
    pub agent: String,
    /// The text; `-` reads it from stdin
    #[arg(allow_hyphen_values = true)]
    pub message: String,
    /// STATUS, TASK, QUESTION, COMPLETE, BLOCKED or NOTE (default: the leading word, else NOTE)
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
    /// Sender as AGENCY/AGENT (default: AGENCY_NAME/AGENCY_AGENT, else human)
    #[arg(long, value_name = "AGENCY/AGENT")]
    pub from: Option<String>,
    /// Print {"id": N}
    #[arg(long)]
    pub json: bool,
}

fn print_id(id: i64, json: bool) -> Result<()> {
    if json {
        print_json(&serde_json::json!({ "id": id }))
    } else {
        print_lines([id.to_string()])
    }
}

pub fn send(ctx: &mut Ctx, args: &SendArgs) -> Result<()> {
    let body = bus::read_body(&args.message)?;
    let id = bus::send(
        ctx,
        &args.agency,
        &args.agent,
        &body,
        args.kind.as_deref(),
        args.from.as_deref(),
    )?;
    print_id(id, args.json)
}

/// Send a JSON message from one agency to another's coordinator
#[derive(Debug, Args)]
pub struct SendInterArgs {
    pub from: String,
    pub to: String,
    /// A JSON object with a string "type" (handoff, results, alert, ...); `-` reads stdin
    #[arg(allow_hyphen_values = true)]
    pub json_message: String,
    /// Print {"id": N}
    #[arg(long)]
    pub json: bool,
}

pub fn send_inter(ctx: &mut Ctx, args: &SendInterArgs) -> Result<()> {
    let body = bus::read_body(&args.json_message)?;
    let id = bus::send_inter(ctx, &args.from, &args.to, &body)?;
    print_id(id, args.json)
}

/// Send a message to the coordinator of every running agency
#[derive(Debug, Args)]
pub struct BroadcastArgs {
    pub from: String,
    /// Text, or a JSON object with a "type"; `-` reads stdin
    #[arg(allow_hyphen_values = true)]
    pub message: String,
    /// To every agent, not only coordinators
    #[arg(long)]
    pub all_agents: bool,
    /// Print {"ids": [...]}
    #[arg(long)]
    pub json: bool,
}

pub fn broadcast(ctx: &mut Ctx, args: &BroadcastArgs) -> Result<()> {
    let body = bus::read_body(&args.message)?;
    let ids = bus::broadcast(ctx, &args.from, &body, args.all_agents)?;
    if args.json {
        print_json(&serde_json::json!({ "ids": ids }))
    } else {
        print_lines(ids.iter().map(i64::to_string))
    }
}

/// Messages to an agent, oldest first (not yet acknowledged, or all)
#[derive(Debug, Args)]
pub struct InboxArgs {
    pub agency: String,
    pub agent: String,
    /// Include acknowledged messages
    #[arg(long)]
    pub all: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn inbox(ctx: &Ctx, args: &InboxArgs) -> Result<()> {
    let agents = crate::agency::agent_names(ctx, &args.agency)?;
    if !agents.contains(&args.agent) {
        return Err(Error::user(
            format!("agency {:?} has no agent {:?}", args.agency, args.agent),
            format!("agents: {}", agents.join(", ")),
        ));
    }
    let msgs = ctx.store.inbox(&args.agency, &args.agent, args.all)?;
    if args.json {
        return print_json(&msgs);
    }
    if msgs.is_empty() {
        return print_lines(["no messages".to_string()]);
    }
    let mut lines = Vec::new();
    for m in &msgs {
        let err = m
            .last_error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        lines.push(format!(
            "#{} {} {} from {} at {}{err}",
            m.id, m.state, m.kind, m.from, m.created_at
        ));
        lines.extend(m.body.lines().map(|l| format!("    {l}")));
    }
    print_lines(lines)
}

/// Mark messages acknowledged
#[derive(Debug, Args)]
pub struct AckArgs {
    #[arg(required = true)]
    pub ids: Vec<i64>,
}

pub fn ack(ctx: &mut Ctx, args: &AckArgs) -> Result<()> {
    let missing = ctx.store.ack(&args.ids)?;
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| format!("#{i}")).collect();
        return Err(Error::user(
            format!("no message {}", list.join(", ")),
            "see the ids with `agency inbox AGENCY AGENT`",
        ));
    }
    Ok(())
}

/// The event log: messages, deliveries, agencies, handoffs, approvals
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this agency's events
    #[arg(long)]
    pub agency: Option<String>,
    /// How many of the newest events
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Keep printing new events as they happen
    #[arg(long)]
    pub follow: bool,
    /// Print JSON (one array; with --follow, one object per line)
    #[arg(long)]
    pub json: bool,
}

pub fn log(ctx: &Ctx, args: &LogArgs) -> Result<()> {
    if let Some(a) = &args.agency {
        crate::agency::spec::validate_name("agency", a)?;
    }
    let events = ctx.store.events(args.agency.as_deref(), args.limit)?;
    let line = |e: &crate::store::EventRow| {
        format!(
            "{} {:18} {:14} {}",
            e.at,
            e.kind,
            e.agency.as_deref().unwrap_or("-"),
            e.detail
        )
    };
    if args.json && !args.follow {
        return print_json(&events);
    }
    let mut last = events.last().map(|e| e.id).unwrap_or(0);
    let show = |evs: &[crate::store::EventRow]| -> Result<()> {
        if args.json {
            print_lines(
                evs.iter()
                    .map(|e| serde_json::to_string(e).expect("serializes")),
            )
        } else {
            print_lines(evs.iter().map(line))
        }
    };
    show(&events)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let new = ctx.store.events_after(args.agency.as_deref(), last)?;
        if let Some(e) = new.last() {
            last = e.id;
        }
        show(&new)?;
    }
}

/// The delivery process (started automatically; this runs or stops it by hand)
#[derive(Debug, Args)]
pub struct RouterArgs {
    /// Run in this terminal instead of in the background
    #[arg(long)]
    pub foreground: bool,
    /// Print the running router's process id, if any
    #[arg(long, conflicts_with = "foreground")]
    pub status: bool,
}

pub fn router(ws: Workspace, args: &RouterArgs) -> Result<()> {
    if args.foreground {
        return bus::router::run(ws);
    }
    if !args.status {
        bus::router::ensure_running(&ws)?;
    }
    // A freshly started router takes a moment to write its pid.
    let registry = ws.registry_dir();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match bus::router::running_pid(&registry) {
            Some(pid) => return print_lines([format!("router running, pid {pid}")]),
            None if args.status || std::time::Instant::now() > deadline => {
                return print_lines(["no router running".to_string()])
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Check-ins: a message delivered later (`--in 30m`, `--at TIME`), listed
/// with `--list`, cancelled with `--cancel ID`
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    pub agency: Option<String>,
    pub agent: Option<String>,
    #[arg(allow_hyphen_values = true)]
    pub message: Option<String>,
    /// After this long: `90s`, `30m`, `2h`
    #[arg(long = "in", value_name = "DURATION", conflicts_with = "at")]
    pub after: Option<String>,
    /// At this UTC time: `2026-11-22T15:00:00Z` or `2026-11-22 15:00:00`
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
    /// List the check-ins still waiting
    #[arg(long, conflicts_with_all = ["cancel", "agency"])]
    pub list: bool,
    /// Cancel a waiting check-in
    #[arg(long, value_name = "ID", conflicts_with = "agency")]
    pub cancel: Option<i64>,
    #[arg(long)]
    pub json: bool,
}

pub fn schedule(ctx: &mut Ctx, a: &ScheduleArgs) -> Result<()> {
    if a.list {
        let items = ctx.store.scheduled()?;
        if a.json {
            let v: Vec<serde_json::Value> = items
                .iter()
                .map(|(m, at)| {
                    let mut v = serde_json::to_value(m).expect("serializes");
                    v["deliver_at"] = serde_json::Value::String(at.clone());
                    v
                })
                .collect();
            return print_json(&v);
        }
        if items.is_empty() {
            return print_lines(["no check-ins waiting".to_string()]);
        }
        return print_lines(
            items
                .iter()
                .map(|(m, at)| format!("#{} at {at} to {}: {} {}", m.id, m.to, m.kind, m.body)),
        );
    }
    if let Some(id) = a.cancel {
        return if ctx.store.cancel_scheduled(id)? {
            print_lines([format!("cancelled #{id}")])
        } else {
            Err(Error::user(
                format!("no waiting check-in #{id}"),
                "see them with `agency schedule --list`",
            ))
        };
    }
    let (Some(agency), Some(agent), Some(message)) = (&a.agency, &a.agent, &a.message) else {
        return Err(Error::user(
            "schedule needs AGENCY AGENT MESSAGE",
            "e.g. agency schedule CodeAgency coordinator --in 30m \"STATUS check-in: how far?\"",
        ));
    };
    let at = match (&a.after, &a.at) {
        (Some(d), None) => {
            let d = humantime::parse_duration(d).map_err(|e| {
                Error::user(format!("bad duration {d:?}: {e}"), "use e.g. 90s, 30m, 2h")
            })?;
            std::time::SystemTime::now() + d
        }
        (None, Some(t)) => humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).map_err(|e| {
            Error::user(
                format!("bad time {t:?}: {e}"),
                "use UTC like 2026-11-22T15:00:00Z",
            )
        })?,
        _ => {
            return Err(Error::user(
                "say when: --in DURATION or --at TIME",
                "e.g. --in 30m",
            ))
        }
    };
    let body = bus::read_body(message)?;
    let id = bus::schedule(ctx, agency, agent, &body, a.kind.as_deref(), at)?;
    if a.json {
        return print_json(&serde_json::json!({
            "id": id,
            "deliver_at": humantime::format_rfc3339_millis(at).to_string()
        }));
    }
    print_lines([id.to_string()])
}

/// Bring back every agency that should be running (after a reboot or a tmux
/// crash) and resume delivery
#[derive(Debug, Args)]
pub struct RestoreArgs {
    pub name: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn restore(ctx: &mut Ctx, a: &RestoreArgs) -> Result<()> {
    let reports = crate::agency::restore(ctx, a.name.as_deref())?;
    for r in &reports {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.name);
        }
    }
    if a.json {
        return print_json(&reports);
    }
    if reports.is_empty() {
        return print_lines(["no agency should be running: nothing to restore".to_string()]);
    }
    print_lines(reports.iter().map(|r| {
        if r.created.is_empty() {
            format!("{}: running, nothing missing", r.name)
        } else {
            format!("{}: brought back {}", r.name, r.created.join(", "))
        }
    }))
}
