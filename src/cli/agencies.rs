//! `agency create`, `list`, `status`, `attach`, `kill`.

use clap::{Args, ValueEnum};

use super::{print_json, print_lines, split_list};
use crate::agency::{self, templates::Overrides, AgencyStatus, CreateOptions, Ctx};
use crate::error::Result;
use crate::runtime::permissions::Permissions;
use crate::runtime::profile::Choice;

/// Make an agency from a template and bring its tmux session up (again: repair it)
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Agency name: a letter, then letters, digits, `_` or `-`
    #[arg(allow_hyphen_values = true)]
    pub name: String,
    /// Template (default: the one named like the agency, else Generic)
    #[arg(long)]
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
    /// `windows` (one window per agent) or `panes` (agents share window 0)
    #[arg(long, value_name = "windows|panes")]
    pub layout: Option<String>,
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
            layout: args.layout.clone(),
        },
    };
    let report = agency::create(ctx, &opts)?;
    // Said in every output: also with --json, where they are in the report.
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !report.ignored.is_empty() {
        eprintln!(
            "warning: agency {} already exists; ignored {} (edit agencies/{}/agency.json instead)",
            report.name,
            report.ignored.join(", "),
            report.name
        );
    }
    if args.json {
        return print_json(&report);
    }
    let verb = match report.action {
        "create" => "created",
        "start" => "started",
        _ => "reconciled",
    };
    let mut done = Vec::new();
    if !report.created.is_empty() {
        done.push(format!("made {}", report.created.join(", ")));
    }
    if !report.restarted.is_empty() {
        done.push(format!("restarted {}", report.restarted.join(", ")));
    }
    let made = if done.is_empty() {
        "nothing was missing".to_string()
    } else {
        done.join("; ")
    };
    print_lines([
        format!(
            "{verb} {} (template {}, layout {}): {made}",
            report.name, report.template, report.layout
        ),
        format!("watch it: agency attach {}", report.name),
    ])
}

/// List every agency
#[derive(Debug, Args)]
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
                        role: &s.role,
                        pane: s.pane.as_deref(),
                        state: &s.state,
                    })
                    .collect(),
            })
            .collect();
        return print_json(&out);
    }
    if all.is_empty() {
        return print_lines(["no agencies yet: try `agency create CodeAgency`".to_string()]);
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
    }
    let all: Vec<AgencyStatus> = match &args.name {
        Some(n) => vec![agency::status(ctx, n)?],
        None => agency::list(ctx)?,
    };
    if args.json {
        return match &args.name {
            Some(_) => print_json(&all[0]),
            None => print_json(&all),
        };
    }
    let mut lines = Vec::new();
    for a in &all {
        lines.push(format!(
            "{} — {} (template {}, layout {})",
            a.name,
            if a.running { "running" } else { "stopped" },
            a.template,
            a.layout
        ));
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
        for s in &a.agents {
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
                    "  {:w$}  branch {} (+{} -{} against the base), {} uncommitted",
                    "",
                    g.branch.as_deref().unwrap_or("(detached)"),
                    g.ahead,
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
                    Some(_) => format!("its last screen: agency attach {} {} · ", a.name, s.name),
                    None => String::new(),
                };
                lines.push(format!(
                    "  {:w$}  {seen}start it again: agency status {} --restart",
                    "", a.name
                ));
            }
            if s.state == "waiting" {
                if let Some(q) = &s.question {
                    lines.push(format!("  {:w$}  asks: {q}", ""));
                }
                lines.push(format!(
                    "  {:w$}  waits for you at a prompt: agency answer {} {} yes (or no, always), or look: agency attach {} {}",
                    "", a.name, s.name, a.name, s.name
                ));
            }
            if s.permissions == Permissions::All {
                lines.push(format!(
                    "  {:w$}  warning: {}",
                    "",
                    agency::all_warning(&s.name)
                ));
            }
        }
    }
    print_lines(lines)
}

/// Attach to an agency's tmux session (switch to it when inside tmux)
#[derive(Debug, Args)]
pub struct AttachArgs {
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
pub struct KillArgs {
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
        "its files were removed"
    } else {
        "its files are kept"
    };
    print_lines([format!("killed {}: {what}; {files}", report.name)])
}

/// Answer an agent's permission prompt without attaching (see `agency status`)
#[derive(Debug, Args)]
pub struct AnswerArgs {
    pub agency: String,
    pub agent: String,
    /// `yes` (this once), `no`, or `always` (the CLI's "don't ask again")
    #[arg(value_enum)]
    pub choice: AnswerChoice,
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
    let done = agency::answer::answer(ctx, &args.agency, &args.agent, choice, &by)?;
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
