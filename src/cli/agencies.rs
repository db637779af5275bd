//! `agency create`, `list`, `status`, `attach`, `kill`.

use std::collections::HashMap;

use clap::{Args, ValueEnum};

use super::{print_json, print_lines, split_list};
use crate::agency::{self, templates::Overrides, AgencyStatus, Bringing, CreateOptions};
use crate::context::Ctx;
use crate::error::Result;
use crate::model::{Layout, Permissions};
use crate::runtime::profile::Choice;

/// Make an agency from a template and bring its tmux session up (again: repair it)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency create CodeAgency
  agency create CodeAgency --agents python-agent,js-agent --coordinator code-coordinator
  agency create Reviewers --template Generic --agent-command claude --layout panes
  agency create CodeAgency            again: brings back what is missing, duplicates nothing

Templates: `agency templates`. Each specialist works in its own git worktree
when the project is a git repository.")]
pub struct CreateArgs {
    /// Agency name: a letter, then letters, digits, `_` or `-`
    #[arg(allow_hyphen_values = true)]
    pub name: String,
    /// Template (default: the one named like the agency, else Generic)
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// Specialists, comma-separated; replaces the template's
    #[arg(long, value_name = "a,b,c")]
    pub agents: Option<String>,
    /// The coordinator's name
    #[arg(long, value_name = "NAME")]
    pub coordinator: Option<String>,
    /// Capabilities, comma-separated
    #[arg(long, value_name = "x,y")]
    pub capabilities: Option<String>,
    /// Command every agent runs (e.g. `claude`), instead of the template's
    #[arg(long, value_name = "CMD")]
    pub agent_command: Option<String>,
    /// One window per agent, or the agents as panes of one window
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Restart agents still running in a folder they no longer work in, even busy ones
    #[arg(long = "move")]
    pub move_agents: bool,
    /// Print a JSON report
    #[arg(long)]
    pub json: bool,
}

pub fn create(ctx: &mut Ctx, args: &CreateArgs) -> Result<()> {
    let opts = CreateOptions {
        name: args.name.clone(),
        template: args.template.clone(),
        overrides: Overrides {
            agents: args.agents.as_deref().map(split_list),
            coordinator: args.coordinator.clone(),
            capabilities: args.capabilities.as_deref().map(split_list),
            agent_command: args.agent_command.clone(),
            layout: args.layout,
        },
        move_agents: args.move_agents,
    };
    let mut report = agency::create(ctx, &opts)?;
    report
        .warnings
        .extend(crate::runtime::profile::warnings(&ctx.ws.root));
    // Tasks waiting for a capability it has go to it now.
    crate::tasks::route_waiting(ctx)?;
    // Said in every output: also with --json, where they are in the report.
    super::eprint_lines(report.warnings.iter().map(|w| format!("warning: {w}")));
    if !report.ignored.is_empty() {
        super::eprint_lines([format!(
            "warning: agency {} already exists; ignored {} (edit agencies/{}/agency.json instead)",
            report.name,
            report.ignored.join(", "),
            report.name
        )]);
    }
    if args.json {
        return print_json(&report);
    }
    let verb = match report.action {
        Bringing::Create => "created",
        Bringing::Start => "started",
        Bringing::Reconcile => "reconciled",
    };
    let mut done = Vec::new();
    if !report.created.is_empty() {
        done.push(format!("made {}", report.created.join(", ")));
    }
    if !report.restarted.is_empty() {
        done.push(format!("restarted {}", report.restarted.join(", ")));
    }
    if !report.moved.is_empty() {
        done.push(format!(
            "moved {} into its new folder (restarted there)",
            report.moved.join(", ")
        ));
    }
    let made = if done.is_empty() && report.stale.is_empty() {
        "nothing was missing".to_string()
    } else if done.is_empty() {
        "nothing made".to_string()
    } else {
        done.join("; ")
    };
    let me = super::invocation(&ctx.ws);
    let mut lines = vec![format!(
        "{verb} {} (template {}, layout {}): {made}",
        report.name, report.template, report.layout
    )];
    for s in &report.stale {
        lines.push(format!(
            "{} still runs `{}` in {}, not in {} (where it works now); restart it there when it is free: {me} create {} --move",
            s.agent, s.running, s.from, s.to, report.name
        ));
    }
    lines.push(format!("watch it: {me} attach {}", report.name));
    print_lines(lines)
}

/// List every agency
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency list
  agency list --json | jq -r '.[] | select(.running) | .name'")]
pub struct ListArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn list(ctx: &Ctx, args: &ListArgs) -> Result<()> {
    let all = agency::list(ctx)?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Agent<'a> {
            name: &'a str,
            role: &'a str,
            pane: Option<&'a str>,
            state: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            name: &'a str,
            running: bool,
            session: &'a str,
            agents: Vec<Agent<'a>>,
        }
        let out: Vec<Entry> = all
            .iter()
            .map(|a| Entry {
                name: &a.name,
                running: a.running,
                session: &a.session,
                agents: a
                    .agents
                    .iter()
                    .map(|s| Agent {
                        name: &s.name,
                        role: s.role.as_str(),
                        pane: s.pane.as_deref(),
                        state: &s.state,
                    })
                    .collect(),
            })
            .collect();
        return print_json(&out);
    }
    if all.is_empty() {
        return print_lines([format!(
            "no agencies yet: try `{} create CodeAgency`",
            super::invocation(&ctx.ws)
        )]);
    }
    let width = all.iter().map(|a| a.name.len()).max().unwrap_or(4).max(6);
    let mut lines = vec![format!("{:width$}  {:7}  AGENTS", "AGENCY", "RUNNING")];
    for a in &all {
        let agents: Vec<String> = a
            .agents
            .iter()
            .map(|s| format!("{} ({})", s.name, s.state))
            .collect();
        lines.push(format!(
            "{:width$}  {:7}  {}",
            a.name,
            if a.running { "yes" } else { "no" },
            agents.join(", ")
        ));
    }
    print_lines(lines)
}

/// Show each agent's pane and state
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency status                      every agency
  agency status CodeAgency           one agency: panes, states, queues, branches
  agency status CodeAgency --restart bring exited agents back first
  agency status --json

States: starting, idle, busy, waiting (at a permission prompt: attach and answer),
exited, unknown. QUEUED counts messages not yet typed into the pane; the lines
under an agent say why they wait and what to do.")]
pub struct StatusArgs {
    /// One agency (default: all)
    pub name: Option<String>,
    /// First bring back exited agents (and missing windows), as `agency restore` does
    #[arg(long)]
    pub restart: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn status(ctx: &mut Ctx, args: &StatusArgs) -> Result<()> {
    if args.restart {
        agency::restore(ctx, args.name.as_deref())?;
        crate::tasks::route_waiting(ctx)?;
    }
    let all: Vec<AgencyStatus> = match &args.name {
        Some(n) => vec![agency::status(ctx, n)?],
        None => agency::list(ctx)?,
    };
    let held = held_tasks(ctx, &all)?;
    // An agent `starting` for good is most often this.
    super::eprint_lines(
        crate::runtime::profile::warnings(&ctx.ws.root)
            .into_iter()
            .map(|w| format!("warning: {w}")),
    );
    if args.json {
        return status_json(&all, &held, args.name.is_some());
    }
    let me = super::invocation(&ctx.ws);
    let mut lines = Vec::new();
    for (i, a) in all.iter().enumerate() {
        let w = agency_head(a, &me, &mut lines);
        for s in &a.agents {
            agent_lines(ctx, a, s, &held[i], w, &me, &mut lines);
        }
    }
    lines.extend(unrouted_lines(ctx)?);
    print_lines(lines)
}

/// An agent's line in `status`, and the lines under it: its branch, why it
/// did not start or exited, what it asks, its warning, tasks and waiting
/// messages.
fn agent_lines(
    ctx: &Ctx,
    a: &AgencyStatus,
    s: &agency::AgentStatus,
    held: &HashMap<String, Vec<Held>>,
    w: usize,
    me: &str,
    lines: &mut Vec<String>,
) {
    lines.push(format!(
        "  {:w$}  {:11}  {:5}  {:8}  {:6}  {:6}  {}",
        s.name,
        s.role,
        s.pane.as_deref().unwrap_or("-"),
        s.state,
        s.queued,
        s.failed,
        s.command
    ));
    if let Some(g) = &s.git {
        lines.push(format!(
            "  {:w$}  branch {}: {} commit(s) ahead of {}, {} behind; {} uncommitted file(s)",
            "",
            g.branch.as_deref().unwrap_or("(detached)"),
            g.ahead,
            ctx.ws.base_branch(),
            g.behind,
            g.uncommitted
        ));
    }
    if let Some(e) = &s.setup_error {
        lines.push(format!("  {:w$}  not started: {e}", ""));
    }
    if s.state == "exited" && a.running && s.setup_error.is_none() {
        // A kept pane shows what the program said as it ended.
        let seen = match &s.pane {
            Some(_) => format!("its last screen: {me} attach {} {} · ", a.name, s.name),
            None => String::new(),
        };
        lines.push(format!(
            "  {:w$}  {seen}start it again: {me} status {} --restart",
            "", a.name
        ));
    }
    if s.state == "waiting" {
        if let Some(q) = &s.question {
            lines.push(format!("  {:w$}  asks: {q}", ""));
        }
        lines.push(format!("  {:w$}  {}", "", answer_hint(a, s, me)));
    }
    if s.permissions == Permissions::All {
        lines.push(format!(
            "  {:w$}  warning: {}",
            "",
            agency::all_warning(&s.name)
        ));
    }
    for t in held.get(&s.name).into_iter().flatten() {
        lines.push(format!(
            "  {:w$}  task {} ({}): {}",
            "", t.id, t.state, t.title
        ));
    }
    if let Some(why) = why_queued(a, s, me) {
        lines.push(format!("  {:w$}  {why}", ""));
    }
}

/// What a human can do about an agent waiting at a prompt: the answers
/// that prompt offers, given only while it asks what status showed; else
/// its pane.
fn answer_hint(a: &AgencyStatus, s: &agency::AgentStatus, me: &str) -> String {
    use crate::workspace::quote;
    let (agency, agent) = (quote(&a.name), quote(&s.name));
    let look = format!("{me} attach {agency} {agent}");
    let Some((first, rest)) = s.choices.split_first() else {
        return format!(
            "waits for you at a prompt agency cannot answer: answer it in its pane: {look}"
        );
    };
    let if_asks = quote(s.question.as_deref().unwrap_or(""));
    let others = match rest {
        [] => String::new(),
        _ => {
            let names: Vec<&str> = rest.iter().map(|c| c.as_str()).collect();
            format!(" (or {})", names.join(", "))
        }
    };
    format!(
        "waits for you at a prompt: {me} answer {agency} {agent} {} --if-asks {if_asks}{others}, or look: {look}",
        first.as_str()
    )
}

/// `status --json`: the agencies (one, for `status NAME`), each agent with
/// the tasks it holds.
fn status_json(all: &[AgencyStatus], held: &[HashMap<String, Vec<Held>>], one: bool) -> Result<()> {
    let mut v = serde_json::to_value(all).expect("plain data serializes");
    for (a, agency) in v.as_array_mut().into_iter().flatten().zip(held) {
        for agent in a["agents"].as_array_mut().into_iter().flatten() {
            let name = agent["name"].as_str().unwrap_or_default().to_string();
            agent["tasks"] = serde_json::json!(agency.get(&name).cloned().unwrap_or_default());
        }
    }
    if one {
        print_json(&v[0])
    } else {
        print_json(&v)
    }
}

/// An agency's lines above its agents: its state, how to start it when
/// stopped, the column headings. Returns the agent column's width.
fn agency_head(a: &AgencyStatus, me: &str, lines: &mut Vec<String>) -> usize {
    lines.push(format!(
        "{} — {} (template {}, layout {})",
        a.name,
        if a.running { "running" } else { "stopped" },
        a.template,
        a.layout
    ));
    if !a.running {
        let queued: i64 = a.agents.iter().map(|s| s.queued).sum();
        let waiting = match queued {
            0 => String::new(),
            n => format!("{n} message(s) wait for it; "),
        };
        lines.push(format!("  {waiting}start it again: {me} create {}", a.name));
    }
    let w = a
        .agents
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    lines.push(format!(
        "  {:w$}  {:11}  {:5}  {:8}  {:6}  {:6}  COMMAND",
        "AGENT", "ROLE", "PANE", "STATE", "QUEUED", "FAILED"
    ));
    w
}

/// Why a running agent's messages wait, and what to do, when they do.
fn why_queued(a: &AgencyStatus, s: &agency::AgentStatus, me: &str) -> Option<String> {
    let inbox = format!("{me} inbox {} {}", a.name, s.name);
    let failed = (s.failed > 0).then(|| {
        format!(
            "{} message(s) could not be typed in: `{inbox}` shows them and why",
            s.failed
        )
    });
    if s.queued == 0 || !a.running || s.state == "exited" {
        return failed;
    }
    let shell = s
        .current_command
        .as_deref()
        .is_some_and(|c| crate::runtime::SHELLS.contains(&c));
    let why = if shell {
        format!(
            "{} message(s) wait to be shown in its pane: it runs a shell, and nothing is typed into a shell (a message shown counts as delivered); read them with `{inbox}`, then `{me} ack ID`",
            s.queued
        )
    } else if s.state == "waiting" {
        format!("{} message(s) wait until you answer its prompt", s.queued)
    } else {
        format!(
            "{} message(s) wait for its prompt: they are typed in when it is idle (`{inbox}` lists them)",
            s.queued
        )
    };
    Some(match failed {
        Some(f) => format!("{why}; {f}"),
        None => why,
    })
}

/// A task an agent holds, as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
struct Held {
    id: i64,
    title: String,
    state: String,
}

/// Per agency (in `all`'s order), per agent: the tasks it holds.
fn held_tasks(ctx: &Ctx, all: &[AgencyStatus]) -> Result<Vec<HashMap<String, Vec<Held>>>> {
    all.iter()
        .map(|a| {
            let mut m: HashMap<String, Vec<Held>> = HashMap::new();
            for (agent, id, title, state) in ctx.store.held_tasks(&a.name)? {
                m.entry(agent).or_default().push(Held { id, title, state });
            }
            Ok(m)
        })
        .collect()
}

/// Ready tasks no running agency can take, and why.
fn unrouted_lines(ctx: &Ctx) -> Result<Vec<String>> {
    let ready = ctx.store.tasks(&crate::store::TaskFilter {
        agency: None,
        state: Some("ready".into()),
    })?;
    Ok(ready
        .iter()
        .filter(|t| t.agency.is_none())
        .map(|t| {
            format!(
                "task {} waits: {} ({})",
                t.id,
                t.reason.as_deref().unwrap_or("no agency yet"),
                t.title
            )
        })
        .collect())
}

/// Attach to an agency's tmux session (switch to it when inside tmux)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency attach CodeAgency
  agency attach CodeAgency python-agent     at that agent's window

Detach again with tmux's prefix key, then d (Ctrl-b d by default).")]
pub struct AttachArgs {
    /// The agency
    pub name: String,
    /// Open at this agent's window
    pub agent: Option<String>,
}

pub fn attach(ctx: &Ctx, args: &AttachArgs) -> Result<()> {
    let target = agency::attach_target(ctx, &args.name, args.agent.as_deref())?;
    ctx.tmux.attach(&target)?;
    Ok(())
}

/// End an agency's session; its files and queued messages stay
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency kill CodeAgency               end it; `agency create CodeAgency` starts it again
  agency kill CodeAgency --purge       also delete its folder, worktrees and branches")]
pub struct KillArgs {
    /// The agency
    #[arg(allow_hyphen_values = true)]
    pub name: String,
    /// Also delete the agency's folder, and its agents' worktrees and branches
    /// (refused while they hold uncommitted or unmerged work)
    #[arg(long)]
    pub purge: bool,
    /// With --purge: delete even uncommitted and unmerged work
    #[arg(long, requires = "purge")]
    pub force: bool,
    /// Print a JSON report
    #[arg(long)]
    pub json: bool,
}

pub fn kill(ctx: &mut Ctx, args: &KillArgs) -> Result<()> {
    let report = agency::kill(ctx, &args.name, args.purge, args.force)?;
    if args.json {
        return print_json(&report);
    }
    let what = if report.ended_session {
        "session ended"
    } else {
        "it was not running"
    };
    let files = if report.purged {
        match report.cancelled.len() {
            0 => "its files and its place in the registry were removed".to_string(),
            n => format!(
                "its files and its place in the registry were removed; {n} message(s) that had not reached it were cancelled (kept in `{} log`)",
                super::invocation(&ctx.ws)
            ),
        }
    } else {
        format!(
            "its files are kept (start it again: {} create {})",
            super::invocation(&ctx.ws),
            report.name
        )
    };
    print_lines([format!("killed {}: {what}; {files}", report.name)])
}

/// Answer an agent's permission prompt without attaching (see `agency status`)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency answer CodeAgency dev yes       allow what it asks, this once
  agency answer CodeAgency dev always    allow it and stop asking (the CLI's own \"don't ask again\")
  agency answer CodeAgency dev no
  agency answer CodeAgency dev yes --if-asks 'Bash command: npm test'
                                         only while it still asks that

Nothing is typed unless the agent shows a permission prompt offering that
choice; `agency status` shows what it asks, and the command to answer it
with --if-asks, so that a prompt that changed meanwhile is not answered.
The answer is recorded in the log.")]
pub struct AnswerArgs {
    /// The agency
    pub agency: String,
    /// The agent at the prompt
    pub agent: String,
    /// `yes` (this once), `no`, or `always` (the CLI's "don't ask again")
    #[arg(value_enum)]
    pub choice: AnswerChoice,
    /// Only if the prompt still asks TEXT (what `agency status` showed);
    /// else nothing is typed
    #[arg(long, value_name = "TEXT")]
    pub if_asks: Option<String>,
    /// Print a JSON report
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnswerChoice {
    Yes,
    No,
    Always,
}

pub fn answer(ctx: &mut Ctx, args: &AnswerArgs) -> Result<()> {
    let choice = match args.choice {
        AnswerChoice::Yes => Choice::Yes,
        AnswerChoice::No => Choice::No,
        AnswerChoice::Always => Choice::Always,
    };
    let by = crate::bus::sender(None)?;
    let done = agency::answer::answer(
        ctx,
        &args.agency,
        &args.agent,
        choice,
        &by,
        args.if_asks.as_deref(),
    )?;
    if args.json {
        return print_json(&done);
    }
    print_lines([format!(
        "answered {} for {}/{}: {}",
        choice.as_str(),
        done.agency,
        done.agent,
        done.question.as_deref().unwrap_or("(its prompt)")
    )])
}
