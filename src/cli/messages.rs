//! `agency send`, `send-inter`, `broadcast`, `inbox`, `ack`, `log`, `router`.

use std::time::Duration;

use clap::Args;

use super::{print_json, print_lines};
use crate::agency::Presence;
use crate::bus;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::IntraType;
use crate::workspace::Workspace;

/// Send a message to an agent of an agency (`coordinator` or a specialist)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency send CodeAgency python-agent \"TASK-042: Implement OAuth2 using authlib\"
  agency send CodeAgency coordinator \"STATUS python-agent: auth 60% done\"
  agency send CodeAgency code-coordinator --type question \"Which OAuth2 library?\"
  git diff | agency send CodeAgency dev -            the message from stdin
  id=$(agency send -q CodeAgency dev \"TASK ...\")     the id alone, for scripts

The message is queued at once (it survives crashes) and typed into the agent's
pane by the router when the agent's prompt is ready. Nothing is ever typed into
a shell: a shell agent is shown the message in its pane, and it waits in
`agency inbox AGENCY AGENT`.")]
pub struct SendArgs {
    /// The agency (see `agency list`)
    pub agency: String,
    /// The agent: `coordinator` (or its own name), or a specialist
    pub agent: String,
    /// The text; `-` reads it from stdin
    #[arg(allow_hyphen_values = true)]
    pub message: String,
    /// The message type (default: the text's leading word if it is one, else NOTE)
    #[arg(long = "type", value_enum, ignore_case = true)]
    pub kind: Option<IntraType>,
    /// Sender as AGENCY/AGENT (default: AGENCY_NAME/AGENCY_AGENT, else human)
    #[arg(long, value_name = "AGENCY/AGENT")]
    pub from: Option<String>,
    #[command(flatten)]
    pub out: IdOutput,
}

/// How a command that queues something reports it.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct IdOutput {
    /// Print only the id(s), one per line (for scripts)
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print JSON: {"id": N} ({"ids": [...]} for several)
    #[arg(long)]
    pub json: bool,
}

/// Prints what was queued: a human line, the ids alone (`-q`) or JSON.
fn report_ids(out: IdOutput, ids: &[i64], human: impl FnOnce() -> Vec<String>) -> Result<()> {
    if out.json {
        return match ids {
            [id] => print_json(&serde_json::json!({ "id": id })),
            _ => print_json(&serde_json::json!({ "ids": ids })),
        };
    }
    if out.quiet {
        return print_lines(ids.iter().map(i64::to_string));
    }
    print_lines(human())
}

/// Tells on stderr where a message for `agent` will wait, and what brings
/// it on: a stopped agency or exited agent (warnings), a shell (a note).
/// The message is queued already: a tmux that cannot be asked (a server
/// going down) is worth a warning, never a failed command.
fn warn_where_it_waits(ctx: &Ctx, agency: &str, agent: &str, id: i64, quiet: bool) -> Result<()> {
    let me = super::invocation(&ctx.ws);
    let presence = match crate::agency::presence(ctx, agency, agent) {
        Ok(p) => p,
        Err(e) => {
            super::eprint_lines([format!("warning: message #{id} is queued, but tmux could not say whether {agency} runs: {e}")]);
            return Ok(());
        }
    };
    let line = match presence {
        Presence::AgencyDown => format!(
            "warning: {agency} is not running; the message waits until it is. Start it: {me} create {agency}"
        ),
        Presence::Exited => format!(
            "warning: {agent} of {agency} has exited; the message waits until it runs again: {me} status {agency} --restart"
        ),
        Presence::Shell if !quiet => format!(
            "note: {agent} runs a shell, and nothing is ever typed into a shell: the message is shown in its pane (that counts as delivered) and stays in `{me} inbox {agency} {agent}` until acknowledged: `{me} ack {id}`"
        ),
        Presence::Shell | Presence::Program => return Ok(()),
    };
    super::eprint_lines([line]);
    Ok(())
}

pub fn send(ctx: &mut Ctx, args: &SendArgs) -> Result<()> {
    let body = bus::read_body(&args.message)?;
    let agent = ctx.resolve(&args.agency, &args.agent)?.agent;
    let id = bus::send(
        ctx,
        &args.agency,
        &agent,
        &body,
        args.kind.map(IntraType::as_str),
        args.from.as_deref(),
    )?;
    if !args.out.json {
        warn_where_it_waits(ctx, &args.agency, &agent, id, args.out.quiet)?;
    }
    let kind = ctx.store.message(id)?.map(|m| m.kind).unwrap_or_default();
    report_ids(args.out, &[id], || {
        vec![format!(
            "queued message #{id} ({kind}) for {}/{agent}",
            args.agency
        )]
    })
}

/// Send a JSON message from one agency to another's coordinator
#[derive(Debug, Args)]
#[command(after_help = r#"Examples:
  agency send-inter CodeAgency QAAgency '{"type": "handoff", "branch": "feature/x"}'
  agency send-inter QAAgency CodeAgency '{"type": "results", "task": "T-1", "status": "passed"}'
  agency send-inter -q CodeAgency DevOpsAgency '{"type": "alert", "message": "deploy frozen"}'

For handing over a branch, `agency handoff` records its commit as well."#)]
pub struct SendInterArgs {
    /// The sending agency (or AGENCY/AGENT)
    pub from: String,
    /// The receiving agency: its coordinator gets the message
    pub to: String,
    /// A JSON object with a string "type" (handoff, results, alert, ...); `-` reads stdin
    #[arg(allow_hyphen_values = true)]
    pub json_message: String,
    #[command(flatten)]
    pub out: IdOutput,
}

pub fn send_inter(ctx: &mut Ctx, args: &SendInterArgs) -> Result<()> {
    let body = bus::read_body(&args.json_message)?;
    let id = bus::send_inter(ctx, &args.from, &args.to, &body)?;
    if !args.out.json {
        warn_where_it_waits(ctx, &args.to, "coordinator", id, args.out.quiet)?;
    }
    let kind = ctx.store.message(id)?.map(|m| m.kind).unwrap_or_default();
    report_ids(args.out, &[id], || {
        vec![format!(
            "queued message #{id} ({kind}) from {} for {}'s coordinator",
            args.from, args.to
        )]
    })
}

/// Send a message to the coordinator of every running agency
#[derive(Debug, Args)]
#[command(after_help = r#"Examples:
  agency broadcast MetaOrchestrator "STATUS freeze: commit your work"
  agency broadcast MetaOrchestrator '{"type": "alert", "message": "main is red"}'
  agency broadcast human "NOTE standup in 5 minutes" --all-agents"#)]
pub struct BroadcastArgs {
    /// The sender (an agency, AGENCY/AGENT, or a name like `human`)
    pub from: String,
    /// Text, or a JSON object with a "type"; `-` reads stdin
    #[arg(allow_hyphen_values = true)]
    pub message: String,
    /// To every agent, not only coordinators
    #[arg(long)]
    pub all_agents: bool,
    #[command(flatten)]
    pub out: IdOutput,
}

pub fn broadcast(ctx: &mut Ctx, args: &BroadcastArgs) -> Result<()> {
    let body = bus::read_body(&args.message)?;
    let ids = bus::broadcast(ctx, &args.from, &body, args.all_agents)?;
    if args.out.json {
        return print_json(&serde_json::json!({ "ids": ids }));
    }
    let mut to = Vec::new();
    let mut kind = String::new();
    for id in &ids {
        if let Some(m) = ctx.store.message(*id)? {
            to.push(format!("{}/{}", m.agency, m.agent));
            kind = m.kind;
        }
    }
    report_ids(args.out, &ids, || {
        let list: Vec<String> = ids.iter().map(|i| format!("#{i}")).collect();
        vec![format!(
            "queued {} message(s) ({kind}) for {}: {}",
            ids.len(),
            to.join(", "),
            list.join(" ")
        )]
    })
}

/// Messages to an agent, oldest first (not yet acknowledged, or all)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency inbox CodeAgency python-agent          what waits for it
  agency inbox CodeAgency coordinator --all     acknowledged ones too
  agency ack 3 4                                 done with #3 and #4

A message shows as queued (not yet typed into the pane: a shell agent, an agent
busy or stopped), delivered, acked or failed.")]
pub struct InboxArgs {
    /// The agency
    pub agency: String,
    /// The agent: `coordinator` (or its own name), or a specialist
    pub agent: String,
    /// Include acknowledged (and cancelled) messages
    #[arg(long)]
    pub all: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn inbox(ctx: &Ctx, args: &InboxArgs) -> Result<()> {
    let agent = ctx.resolve(&args.agency, &args.agent)?.agent;
    let msgs = ctx.store.inbox(&args.agency, &agent, args.all)?;
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

/// Mark delivered messages acknowledged (in an agent's pane: only its own)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency ack 3
  agency ack 3 4 5

The ids are in `agency inbox AGENCY AGENT`. Agents ack what they have handled;
so does a person reading a shell agent's inbox.")]
pub struct AckArgs {
    /// Message ids
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<i64>,
}

pub fn ack(ctx: &mut Ctx, args: &AckArgs) -> Result<()> {
    use crate::store::AckRefused;
    // In an agent's pane, that agent; else (the tools and sandbox windows
    // included) the human.
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let agent = env("AGENCY_NAME")
        .zip(env("AGENCY_AGENT"))
        .filter(|(a, b)| ctx.agent_names(a).is_ok_and(|names| names.contains(b)));
    let by = agent.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
    let refused = ctx.store.ack(&args.ids, by)?;
    let Some(first) = refused.first() else {
        return Ok(());
    };
    let lines: Vec<String> = refused
        .iter()
        .map(|r| match r {
            AckRefused::Missing(id) => format!("no message #{id}"),
            AckRefused::NotDelivered(id, state) => {
                format!("message #{id} is {state}: it has not reached its agent")
            }
            AckRefused::NotYours(id, to) => format!(
                "message #{id} is for {to}, not for {}",
                by.map_or("you".into(), |(a, b)| format!("{a}/{b}"))
            ),
        })
        .collect();
    let hint = match first {
        AckRefused::Missing(_) => "see the ids with `agency inbox AGENCY AGENT`",
        AckRefused::NotDelivered(..) => {
            "a message is acknowledged once it was delivered; see `agency inbox AGENCY AGENT`"
        }
        AckRefused::NotYours(..) => "an agent acknowledges only the messages sent to it",
    };
    Err(Error::user(
        format!("{}; nothing was acknowledged", lines.join("; ")),
        hint,
    ))
}

/// The event log: messages, deliveries, agencies, handoffs, approvals
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency log
  agency log --agency CodeAgency --limit 20
  agency log --follow                        new events as they happen (Ctrl-C ends)
  agency log --json | jq '.[] | select(.kind == \"message.failed\")'")]
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
        crate::model::spec::validate_name("agency", a)?;
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
    let mut reopened: Option<crate::store::Store> = None;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if reopened.as_ref().unwrap_or(&ctx.store).replaced() {
            // The registry was deleted or replaced: follow the new one from
            // its start. The old connection is left open, not closed (see
            // the router's `reopen`).
            let store = crate::store::Store::open(&ctx.ws.registry_dir())?;
            std::mem::forget(reopened.replace(store));
            last = 0;
        }
        let store = reopened.as_ref().unwrap_or(&ctx.store);
        let new = store.events_after(args.agency.as_deref(), last)?;
        if let Some(e) = new.last() {
            last = e.id;
        }
        show(&new)?;
    }
}

/// The delivery process (started automatically; this runs or stops it by hand)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency router --status        is one running, and its pid
  agency router --stop          stop it (the next message or `create` starts it again)
  agency router --foreground    run it here, its log on this terminal

Any command that brings an agency up, or queues a message while one runs, starts
the router when none runs; it stops by itself once no agency of the workspace is
running. Its
log is registry/router.log.")]
pub struct RouterArgs {
    /// Run in this terminal instead of in the background
    #[arg(long, conflicts_with_all = ["status", "stop"])]
    pub foreground: bool,
    /// Print the running router's process id, if any
    #[arg(long, conflicts_with = "stop")]
    pub status: bool,
    /// Stop the running router (queued messages stay queued)
    #[arg(long)]
    pub stop: bool,
}

pub fn router(ws: Workspace, args: &RouterArgs) -> Result<()> {
    if args.foreground {
        return bus::router::run_with(ws.clone(), task_upkeep(&ws));
    }
    if args.stop {
        return match bus::router::stop(&ws.registry_dir())? {
            Some(pid) => print_lines([format!("router stopped (pid {pid})")]),
            None => print_lines(["no router running".to_string()]),
        };
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

/// The router's tick checks task leases, keeps `task_graph.json` (see
/// `tasks::lease`, `tasks::mirror`), and looks at the agents for what needs
/// the human (`monitor::watch`: prompts, exits, notifications).
fn task_upkeep(ws: &Workspace) -> impl FnMut(&mut Ctx) {
    let lease = ws.task_lease().unwrap_or_else(|e| {
        let default = crate::workspace::DEFAULT_LEASE;
        eprintln!("router: {e}; using {}", humantime::format_duration(default));
        default
    });
    let mut leases = crate::tasks::lease::Leases::new(lease);
    let mut mirror = crate::tasks::mirror::Mirror::default();
    let mut watch = crate::monitor::watch::Watch::new();
    move |ctx| {
        if let Err(e) = leases.tick(ctx) {
            eprintln!("router: task leases: {e}");
        }
        if let Err(e) = mirror.tick(ctx) {
            eprintln!("router: task_graph.json: {e}");
        }
        watch.tick(ctx);
    }
}

/// `--at`: RFC 3339 in UTC (`Z` or none), or with an offset `+HH:MM` /
/// `-HH:MM`, which is taken off to give UTC.
fn parse_at(t: &str) -> std::result::Result<std::time::SystemTime, String> {
    let t = t.trim();
    let tail = t
        .len()
        .checked_sub(6)
        .filter(|&i| t.is_char_boundary(i))
        .map(|i| t.split_at(i));
    let (local, offset) = match tail {
        Some((local, off))
            if off.is_ascii()
                && (off.starts_with('+') || off.starts_with('-'))
                && off.as_bytes()[3] == b':' =>
        {
            let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad offset {off:?}"));
            let (h, m) = (num(&off[1..3])?, num(&off[4..6])?);
            if h > 23 || m > 59 {
                return Err(format!("bad offset {off:?}"));
            }
            let secs = std::time::Duration::from_secs(h * 3600 + m * 60);
            (local, Some((off.starts_with('+'), secs)))
        }
        _ => (t.trim_end_matches('Z'), None),
    };
    let at = humantime::parse_rfc3339_weak(local).map_err(|e| e.to_string())?;
    let utc = match offset {
        None => Some(at),
        // 17:00+02:00 is 15:00 UTC.
        Some((true, d)) => at.checked_sub(d),
        Some((false, d)) => at.checked_add(d),
    };
    utc.ok_or_else(|| "out of range".to_string())
}

/// Check-ins: a message delivered later (`--in 30m`, `--at TIME`), listed
/// with `--list`, cancelled with `--cancel ID`
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency schedule CodeAgency coordinator --in 30m \"STATUS check-in: how far?\"
  agency schedule CodeAgency python-agent --at 2026-11-22T15:00:00Z \"TASK start the release\"
  agency schedule --list
  agency schedule --cancel 7

Check-ins are durable: the router delivers each when it is due, never before.")]
pub struct ScheduleArgs {
    /// The agency
    pub agency: Option<String>,
    /// The agent: `coordinator` (or its own name), or a specialist
    pub agent: Option<String>,
    /// The text; `-` reads it from stdin
    #[arg(allow_hyphen_values = true)]
    pub message: Option<String>,
    /// After this long: `90s`, `30m`, `2h`
    #[arg(long = "in", value_name = "DURATION", conflicts_with = "at")]
    pub after: Option<String>,
    /// At this time, in UTC (`2026-11-22T15:00:00Z`, `2026-11-22 15:00:00`) or with its offset (`2026-11-22T17:00:00+02:00`)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The message type (default: the text's leading word if it is one, else NOTE)
    #[arg(long = "type", value_enum, ignore_case = true)]
    pub kind: Option<IntraType>,
    /// List the check-ins still waiting
    #[arg(long, conflicts_with_all = ["cancel", "agency"])]
    pub list: bool,
    /// Cancel a waiting check-in
    #[arg(long, value_name = "ID", conflicts_with = "agency")]
    pub cancel: Option<i64>,
    /// Print only the new check-in's id
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print JSON
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
            std::time::SystemTime::now()
                .checked_add(d)
                .ok_or_else(bus::too_far)?
        }
        (None, Some(t)) => parse_at(t).map_err(|e| {
            Error::user(
                format!("bad time {t:?}: {e}"),
                "use UTC like 2026-11-22T15:00:00Z, or give the offset: 2026-11-22T17:00:00+02:00",
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
    let agent = &ctx.resolve(agency, agent)?.agent;
    let id = bus::schedule(ctx, agency, agent, &body, a.kind.map(IntraType::as_str), at)?;
    let when = humantime::format_rfc3339_seconds(at).to_string();
    if a.json {
        return print_json(&serde_json::json!({
            "id": id,
            "deliver_at": humantime::format_rfc3339_millis(at).to_string()
        }));
    }
    if a.quiet {
        return print_lines([id.to_string()]);
    }
    print_lines([format!(
        "check-in #{id} for {agency}/{agent} at {when}; cancel it with `{} schedule --cancel {id}`",
        super::invocation(&ctx.ws)
    )])
}

/// Bring back every agency that should be running (after a reboot or a tmux
/// crash) and resume delivery
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency restore               every agency that was running before
  agency restore CodeAgency    just this one (even if it was killed)")]
pub struct RestoreArgs {
    /// Only this agency
    pub name: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn restore(ctx: &mut Ctx, a: &RestoreArgs) -> Result<()> {
    let reports = crate::agency::restore(ctx, a.name.as_deref())?;
    super::eprint_lines(reports.iter().flat_map(|r| {
        r.warnings
            .iter()
            .map(move |w| format!("warning: {}: {w}", r.name))
    }));
    crate::tasks::route_waiting(ctx)?;
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
