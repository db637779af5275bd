//! `agency task ...` and `agency plan apply`.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{print_json, print_lines};
use crate::bus;
use crate::context::Ctx;
use crate::error::Result;
use crate::store::{TaskFilter, TaskRow};
use crate::tasks::{self, graph, plan, Action, Priority, State};

/// Work as tasks with dependencies: add, list, claim, finish
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task add \"Design the API\" --agency CodeAgency --priority high
  agency task add \"Build the API\" --capability backend --needs 1
  agency task list
  agency task next CodeAgency python-agent
  agency task done 2 --note \"merged\"")]
pub struct TaskArgs {
    #[command(subcommand)]
    pub command: TaskCommand,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    Add(AddArgs),
    List(ListArgs),
    Show(ShowArgs),
    Claim(ClaimArgs),
    Next(NextArgs),
    /// Mark a task done; the tasks that needed it become ready
    #[command(after_help = "Examples:\n  agency task done 12 --note \"tests pass\"")]
    Done(NoteArgs),
    /// Stop a task, saying why (its coordinator is told)
    #[command(after_help = "Examples:\n  agency task block 12 --note \"needs an API key\"")]
    Block(NoteArgs),
    /// Drop a task; the tasks that needed it go on without it
    #[command(after_help = "Examples:\n  agency task cancel 12 --note \"not needed any more\"")]
    Cancel(NoteArgs),
    /// Make a done, cancelled, blocked or claimed task waiting/ready again
    #[command(
        after_help = "Examples:\n  agency task reopen 12 --note \"the fix broke the build\""
    )]
    Reopen(NoteArgs),
    Edit(EditArgs),
}

/// A task id: `12` or `#12`.
fn task_id(s: &str) -> std::result::Result<i64, String> {
    tasks::parse_id(s).ok_or_else(|| format!("{s:?} is not a task id (a number like 12)"))
}

/// Task ids, comma-separated.
fn task_ids(s: &str) -> std::result::Result<Ids, String> {
    super::split_list(s)
        .iter()
        .map(|x| task_id(x))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Ids)
}

#[derive(Debug, Clone)]
pub struct Ids(pub Vec<i64>);

/// Add a task; says where it went (`-q`: its id alone)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task add \"Design the API\" --agency CodeAgency --priority high
  agency task add \"Integration tests\" --capability testing --needs 2,3 --parent 1
  echo \"details\" | agency task add \"Deploy\" --agency DevOpsAgency --body -

A task with unfinished needs waits; once ready, its agency's coordinator is sent
a TASK message naming it. With --capability, the running agency that has the
capability and the fewest open tasks gets it.")]
pub struct AddArgs {
    /// One line: what is to be done
    pub title: String,
    /// The agency that does it (default: AGENCY_NAME, in an agent's pane)
    #[arg(long, conflicts_with = "capability")]
    pub agency: Option<String>,
    /// Instead of an agency: any running agency with this capability
    #[arg(long)]
    pub capability: Option<String>,
    /// Tasks it needs done first, comma-separated ids
    #[arg(long, value_name = "ID,...", value_parser = task_ids)]
    pub needs: Option<Ids>,
    /// The task it is part of (for the tree)
    #[arg(long, value_name = "ID", value_parser = task_id)]
    pub parent: Option<i64>,
    /// Which ready task an agent takes first
    #[arg(long, value_enum, default_value_t = Priority::Normal)]
    pub priority: Priority,
    /// What to do and when it is done; `-` reads stdin
    #[arg(long, allow_hyphen_values = true)]
    pub body: Option<String>,
    /// Print only the id (for scripts)
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print {"id": N}
    #[arg(long)]
    pub json: bool,
}

/// List tasks: a tree by parent, or JSON
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task list
  agency task list --agency CodeAgency --state waiting
  agency task list --ready --json")]
pub struct ListArgs {
    /// Only this agency's tasks
    #[arg(long)]
    pub agency: Option<String>,
    /// Only tasks in this state
    #[arg(long, value_enum, conflicts_with = "ready")]
    pub state: Option<State>,
    /// Only tasks that can be claimed now
    #[arg(long)]
    pub ready: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// One task, with what it needs and its history
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  agency task show 12 --json")]
pub struct ShowArgs {
    /// The task's id
    #[arg(value_parser = task_id)]
    pub id: i64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Claim a ready task for an agent (a coordinator assigns with --agent)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task claim 12                                  (inside an agent's pane: for that agent)
  agency task claim 12 --agent CodeAgency/python-agent  (the agent is sent a TASK message)")]
pub struct ClaimArgs {
    /// The task's id
    #[arg(value_parser = task_id)]
    pub id: i64,
    /// Who takes it (default: AGENCY_NAME/AGENCY_AGENT)
    #[arg(long, value_name = "AGENCY/AGENT")]
    pub agent: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Claim the best ready task for an agent (or show the one it holds)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task next                           (inside an agent's pane)
  agency task next CodeAgency python-agent --json

Best: the highest priority, then the task most others wait for, then the oldest;
the agency's own tasks and those asking for one of its capabilities. Nothing to
do is not an error (--json prints null).")]
pub struct NextArgs {
    /// Default: AGENCY_NAME
    pub agency: Option<String>,
    /// Default: AGENCY_AGENT
    pub agent: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    /// The task's id
    #[arg(value_parser = task_id)]
    pub id: i64,
    /// Why (kept in its history; required to block)
    #[arg(long)]
    pub note: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Change a task's title, body, priority, needs or agency
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency task edit 12 --priority urgent
  agency task edit 12 --needs 3,4          (replaces what it needs; loops are refused)")]
pub struct EditArgs {
    /// The task's id
    #[arg(value_parser = task_id)]
    pub id: i64,
    /// A new title
    #[arg(long)]
    pub title: Option<String>,
    /// A new body; `-` reads stdin
    #[arg(long, allow_hyphen_values = true)]
    pub body: Option<String>,
    /// A new priority
    #[arg(long, value_enum)]
    pub priority: Option<Priority>,
    /// What it needs, replacing the list (empty: nothing)
    #[arg(long, value_name = "ID,...", value_parser = task_ids)]
    pub needs: Option<Ids>,
    /// Move it to this agency
    #[arg(long, conflicts_with = "capability")]
    pub agency: Option<String>,
    /// Route it to any running agency with this capability instead
    #[arg(long)]
    pub capability: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn task(ctx: &mut Ctx, a: &TaskArgs) -> Result<()> {
    match &a.command {
        TaskCommand::Add(a) => add(ctx, a),
        TaskCommand::List(a) => list(ctx, a),
        TaskCommand::Show(a) => show(ctx, a),
        TaskCommand::Claim(a) => claim(ctx, a),
        TaskCommand::Next(a) => next(ctx, a),
        TaskCommand::Done(a) => act(ctx, a, Action::Done),
        TaskCommand::Block(a) => act(ctx, a, Action::Block),
        TaskCommand::Cancel(a) => act(ctx, a, Action::Cancel),
        TaskCommand::Reopen(a) => act(ctx, a, Action::Reopen),
        TaskCommand::Edit(a) => edit(ctx, a),
    }
}

fn add(ctx: &mut Ctx, a: &AddArgs) -> Result<()> {
    let body = a.body.as_deref().map(bus::read_body).transpose()?;
    let added = tasks::add(
        ctx,
        &tasks::AddRequest {
            title: a.title.clone(),
            body: body.unwrap_or_default(),
            agency: a.agency.clone(),
            capability: a.capability.clone(),
            needs: a.needs.clone().map(|i| i.0).unwrap_or_default(),
            parent: a.parent,
            priority: a.priority,
        },
    )?;
    if let Some(r) = &added.reason {
        super::eprint_lines([format!("note: task {} waits: {r}", added.id)]);
    }
    if a.json {
        return print_json(&serde_json::json!({ "id": added.id }));
    }
    if a.quiet {
        return print_lines([added.id.to_string()]);
    }
    let whose = match &added.agency {
        Some(agency) => format!("for {agency}"),
        None => "with no agency yet".to_string(),
    };
    let now = match added.state.as_str() {
        "ready" if added.agency.is_some() => "ready: its coordinator is told".to_string(),
        "waiting" => "waiting for the tasks it needs".to_string(),
        s => s.to_string(),
    };
    print_lines([format!("task {} added {whose} ({now})", added.id)])
}

fn list(ctx: &mut Ctx, a: &ListArgs) -> Result<()> {
    let state = if a.ready { Some(State::Ready) } else { a.state };
    let rows = ctx.store.tasks(&TaskFilter {
        agency: a.agency.clone(),
        state: state.map(|s| s.as_str().to_string()),
    })?;
    if a.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        let all_empty = a.agency.is_none() && state.is_none();
        return print_lines([if all_empty {
            super::pasteable("no tasks yet (see agency task add --help)", Some(&ctx.ws))
        } else {
            "no tasks match".to_string()
        }]);
    }
    let states = tasks::states(ctx)?;
    print_lines(tree_lines(&rows, &states))
}

/// Where a task is: `Agency/agent`, `Agency`, or `?capability`.
fn place(t: &TaskRow) -> String {
    match (&t.agency, &t.agent, &t.capability) {
        (Some(a), Some(b), _) => format!("{a}/{b}"),
        (Some(a), None, _) => a.clone(),
        (None, _, Some(c)) => format!("?{c}"),
        _ => "-".into(),
    }
}

/// Why it is where it is, when that needs saying.
fn why(t: &TaskRow, states: &HashMap<i64, String>) -> Option<String> {
    match t.state.as_str() {
        "waiting" => {
            let open: Vec<String> = t
                .needs
                .iter()
                .filter(|n| {
                    states
                        .get(n)
                        .and_then(|s| State::parse(s))
                        .is_none_or(|s| s.open())
                })
                .map(|n| n.to_string())
                .collect();
            Some(format!("needs {}", open.join(", ")))
        }
        "blocked" => Some(format!(
            "blocked: {}",
            t.reason.as_deref().unwrap_or("no reason given")
        )),
        "review" => t.approval_id.map(|a| format!("approval #{a}")),
        _ => t.reason.clone(),
    }
}

fn tree_lines(rows: &[TaskRow], states: &HashMap<i64, String>) -> Vec<String> {
    let shape: Vec<(i64, Option<i64>)> = rows.iter().map(|t| (t.id, t.parent)).collect();
    let order = graph::tree(&shape);
    let idw = rows
        .iter()
        .map(|t| t.id.to_string().len())
        .max()
        .unwrap_or(2)
        .max(2);
    let placew = rows
        .iter()
        .map(|t| place(t).len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut lines = vec![format!(
        "{:idw$}  {:9}  {:8}  {:placew$}  TITLE",
        "ID", "STATE", "PRIORITY", "AGENCY"
    )];
    for (i, prefix) in order {
        let t = &rows[i];
        let mut title = format!("{prefix}{}", t.title);
        if let Some(w) = why(t, states) {
            title.push_str(&format!("  · {w}"));
        }
        lines.push(format!(
            "{:idw$}  {:9}  {:8}  {:placew$}  {title}",
            t.id,
            t.state,
            t.priority,
            place(t)
        ));
    }
    let mut counts: Vec<(State, usize)> = State::ALL
        .iter()
        .map(|s| (*s, rows.iter().filter(|t| t.state == s.as_str()).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort_by_key(|(s, _)| *s);
    lines.push(format!(
        "{} task{}: {}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    lines
}

fn show(ctx: &mut Ctx, a: &ShowArgs) -> Result<()> {
    let s = tasks::show(ctx, a.id)?;
    if a.json {
        return print_json(&s);
    }
    let t = &s.task;
    let states = tasks::states(ctx)?;
    let title_of = |id: &i64| -> String {
        match ctx.store.task(*id) {
            Ok(Some(n)) => format!("{id} {} ({})", n.title, n.state),
            _ => id.to_string(),
        }
    };
    let mut lines = vec![format!("task {}: {}", t.id, t.title)];
    let mut field = |k: &str, v: String| lines.push(format!("  {k:10} {v}"));
    field("state", t.state.clone());
    if let Some(w) = why(t, &states) {
        field("why", w);
    }
    field("agency", place(t));
    if let (Some(c), Some(_)) = (&t.capability, &t.agency) {
        field("capability", c.clone());
    }
    field("priority", t.priority.clone());
    if let Some(p) = t.parent {
        field("parent", title_of(&p));
    }
    for n in &t.needs {
        field("needs", title_of(n));
    }
    for n in &s.needed_by {
        field("needed by", title_of(n));
    }
    if let Some(b) = &t.branch {
        field("branch", b.clone());
    }
    if let (Some(p), Some(k)) = (&t.plan, &t.key) {
        field("plan", format!("{p} (key {k})"));
    }
    field("created", t.created_at.clone());
    field("updated", t.updated_at.clone());
    if !s.body.is_empty() {
        lines.push(String::new());
        lines.extend(s.body.lines().map(|l| format!("  {l}")));
    }
    lines.push(String::new());
    lines.push("history:".into());
    for e in &s.history {
        let note = e.note.as_deref().map_or(String::new(), |n| {
            format!(": {}", n.lines().collect::<Vec<_>>().join(" / "))
        });
        lines.push(format!("  {}  {} by {}{note}", e.at, e.kind, e.actor));
    }
    print_lines(lines)
}

fn claim(ctx: &mut Ctx, a: &ClaimArgs) -> Result<()> {
    let t = tasks::claim(ctx, a.id, a.agent.as_deref())?;
    if a.json {
        return print_json(&t);
    }
    print_lines([format!(
        "task {} claimed by {}: {}",
        t.id,
        place(&t),
        t.title
    )])
}

fn next(ctx: &mut Ctx, a: &NextArgs) -> Result<()> {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let agency = a.agency.clone().or_else(|| env("AGENCY_NAME"));
    let agent = a.agent.clone().or_else(|| env("AGENCY_AGENT"));
    let (Some(agency), Some(agent)) = (agency, agent) else {
        return Err(crate::error::Error::user(
            "whose next task?",
            "agency task next AGENCY AGENT (inside an agent's pane, AGENCY_NAME and AGENCY_AGENT are used)",
        ));
    };
    let found = tasks::next(ctx, &agency, &agent)?;
    if a.json {
        return print_json(&found);
    }
    let Some(n) = found else {
        let rows = ctx.store.tasks(&TaskFilter {
            agency: Some(agency.clone()),
            state: None,
        })?;
        let count = |s: &str| rows.iter().filter(|t| t.state == s).count();
        return print_lines([format!(
            "nothing ready for {agency}/{agent} ({} waiting on other tasks, {} claimed, {} blocked)",
            count("waiting"),
            count("claimed"),
            count("blocked")
        )]);
    };
    let t = &n.task;
    let mut lines = vec![format!(
        "task {}{}: {}",
        t.id,
        if n.resumed {
            " (already yours)"
        } else {
            " claimed"
        },
        t.title
    )];
    lines.extend(n.body.lines().map(|l| format!("  {l}")));
    lines.push(finish_line(ctx, &agency, &agent, t.id));
    print_lines(lines)
}

/// How to finish task `id`, as the briefing says: work on the agent's own
/// branch goes through the human's approval (reported COMPLETE, submitted
/// by the coordinator); other work is marked done.
fn finish_line(ctx: &Ctx, agency: &str, agent: &str, id: i64) -> String {
    let branch = ctx
        .store
        .agents(agency)
        .ok()
        .and_then(|rows| rows.into_iter().find(|a| a.name == agent)?.branch);
    match branch {
        Some(b) => format!(
            "when finished: commit on {b} and report it to your coordinator, who submits it for review (it is done once the human approves): agency send {agency} coordinator \"COMPLETE task {id} on {b}\"; work with nothing to merge: agency task done {id}"
        ),
        None => format!("when finished: agency task done {id}"),
    }
}

fn act(ctx: &mut Ctx, a: &NoteArgs, action: Action) -> Result<()> {
    let c = tasks::act(ctx, a.id, action, a.note.as_deref())?;
    if a.json {
        return print_json(&c);
    }
    let mut line = if c.unchanged {
        format!("task {} is already {}", c.id, c.state)
    } else {
        format!("task {} is {}", c.id, c.state)
    };
    if !c.ready.is_empty() {
        let ids: Vec<String> = c.ready.iter().map(|i| i.to_string()).collect();
        line.push_str(&format!("; ready now: {}", ids.join(", ")));
    }
    print_lines([line])
}

fn edit(ctx: &mut Ctx, a: &EditArgs) -> Result<()> {
    let body = a.body.as_deref().map(bus::read_body).transpose()?;
    let t = tasks::edit(
        ctx,
        a.id,
        &tasks::EditRequest {
            title: a.title.clone(),
            body,
            priority: a.priority,
            needs: a.needs.clone().map(|i| i.0),
            agency: a.agency.clone(),
            capability: a.capability.clone(),
        },
    )?;
    if a.json {
        return print_json(&t);
    }
    print_lines([format!("task {} ({}): {}", t.id, t.state, t.title)])
}

/// Plans: many tasks with their needs, from a TOML file
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency plan apply release-1.toml --dry-run
  agency plan apply release-1.toml")]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: PlanCommand,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    Apply(ApplyArgs),
}

/// Turn a TOML plan into tasks; applying it again changes nothing, an
/// edited plan reconciles
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency plan apply release-1.toml --dry-run
  agency plan apply release-1.toml --json

A plan:
  plan = \"release-1\"        # optional: the file's name without .toml
  agency = \"CodeAgency\"     # optional: for tasks that name neither

  [[task]]
  key = \"design\"            # stable: identifies the task across applies
  title = \"Design the API\"
  priority = \"high\"         # low | normal | high | urgent

  [[task]]
  key = \"backend\"
  title = \"Build the API\"
  capability = \"backend\"    # or agency = \"...\"
  needs = [\"design\"]
  parent = \"design\"         # optional
  body = \"what done means\"

Keys removed from the file cancel their tasks, unless they are claimed or in
review (then they are kept).")]
pub struct ApplyArgs {
    /// The plan (TOML)
    pub file: PathBuf,
    /// Say what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn plan(ctx: &mut Ctx, a: &PlanArgs) -> Result<()> {
    let PlanCommand::Apply(a) = &a.command;
    let p = plan::Plan::load(ctx, &a.file)?;
    let r = plan::apply(ctx, &p, a.dry_run)?;
    if a.json {
        return print_json(&r);
    }
    let mut lines = vec![format!(
        "plan {}: {} created, {} updated, {} cancelled, {} unchanged{}{}",
        r.plan,
        r.created.len(),
        r.updated.len(),
        r.cancelled.len(),
        r.unchanged.len(),
        if r.kept.is_empty() {
            String::new()
        } else {
            format!(
                ", {} kept as they are (worked on or finished)",
                r.kept.len()
            )
        },
        if r.dry_run {
            " (a dry run: nothing was written)"
        } else {
            ""
        }
    )];
    for (key, id) in &r.tasks {
        if r.dry_run && r.created.contains(key) {
            lines.push(format!("  {key} = a new task"));
        } else {
            lines.push(format!("  {key} = task {id}"));
        }
    }
    print_lines(lines)
}
