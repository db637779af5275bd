//! `agency demo` and `agency agent`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{print_lines, quote};
use crate::error::Result;
use crate::model::ApprovalStatus;
use crate::store::ApprovalRow;
use crate::tui::app::Filter;

/// Run the whole system offline: scripted agencies take a task from
/// implementation to the approval queue
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency demo                 ends in the approval screen (a to approve, q to quit)
  agency demo --no-tui        a summary instead, with the commands to look around
  agency demo --home /tmp/d   in this (new or empty) folder

It needs tmux and git, no network and no API key. The workspace is throw-away:
the summary says how to clean it up.")]
pub struct DemoArgs {
    /// End with a summary instead of the approval screen
    #[arg(long)]
    pub no_tui: bool,
}

pub fn demo(home: Option<&Path>, args: &DemoArgs) -> Result<()> {
    let (mut ctx, r) = crate::demo::run(home, |line| super::eprint_lines([line.to_string()]))?;
    let tui = !args.no_tui && std::io::IsTerminal::is_terminal(&std::io::stdout());
    if tui {
        crate::tui::run(&mut ctx, Filter::Pending)?;
    }
    // What the screen may have changed: the item's status now.
    let item = ctx.store.approval(r.item.id)?.unwrap_or(r.item.clone());
    print_lines(summary(&r, &item))
}

/// The demo's last words: how it went, and commands that paste.
fn summary(r: &crate::demo::DemoReport, i: &ApprovalRow) -> Vec<String> {
    let me = crate::workspace::program();
    let home = quote(&r.home.display().to_string());
    let ws = format!("{me} --home {home}");
    let watch = match &r.socket {
        Some(s) => format!("tmux -L {} attach -t CodeAgency", quote(s)),
        None => format!("{ws} attach CodeAgency"),
    };
    let state = match i.status.as_str() {
        "approved" => format!(
            "was approved: merged into {} as {}",
            i.base_branch,
            i.merge_commit
                .as_deref()
                .map_or("?", |c| &c[..c.len().min(10)])
        ),
        "rejected" => "was rejected; the feedback went to CodeAgency".to_string(),
        _ => "is pending".to_string(),
    };
    let mut lines = vec![
        format!(
            "done in {:.1}s: approval #{} \"{}\" ({}, {} passed, {} failed, {} files +{} -{}) {state}",
            r.seconds,
            i.id,
            i.title,
            i.branch,
            i.tests_passed.unwrap_or(0),
            i.tests_failed.unwrap_or(0),
            i.files_changed,
            i.insertions,
            i.deletions
        ),
        match i.status.as_str() {
            "approved" => format!("task {} is done ({ws} task show {})", r.task, r.task),
            "rejected" => format!(
                "task {} went back to CodeAgency with the feedback ({ws} task show {})",
                r.task, r.task
            ),
            _ => format!(
                "task {} is in review: approving the item makes it done ({ws} task show {})",
                r.task, r.task
            ),
        },
        format!("workspace: {}", r.home.display()),
        format!("watch the agents: {watch}"),
    ];
    if i.status == ApprovalStatus::Pending {
        lines.push(format!("decide: {ws} approvals"));
    } else {
        lines.push(format!("the record: {ws} approvals --status all --json"));
    }
    lines.push(match &r.socket {
        Some(s) => format!(
            "clean up: tmux -L {} kill-server; {ws} router --stop && rm -rf {home}",
            quote(s)
        ),
        // The user's own tmux server: only the demo's sessions go.
        None => format!(
            "clean up: {ws} kill CodeAgency && {ws} kill QAAgency && {ws} router --stop && rm -rf {home}"
        ),
    });
    lines
}

/// Agent runtimes
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency agent scripted --rules demo/dev.toml

As an agent's command in agency.json: \"$AGENCY_BIN\" agent scripted --rules FILE")]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    Scripted(ScriptedArgs),
}

/// A deterministic agent: reads the messages typed into its pane and acts
/// by rules (TOML: [[rule]] type, when, run)
#[derive(Debug, Args)]
#[command(after_help = r#"Examples:
  agency agent scripted --rules rules.toml

rules.toml:
  [[rule]]
  type = "TASK"                       # optional: the message type
  when = 'test (?P<branch>\S+)'        # optional: a regex over the body
  run = ['agency sandbox deploy CodeAgency "$MSG_BRANCH"']"#)]
pub struct ScriptedArgs {
    /// The rules file (TOML)
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
}

pub fn agent(args: &AgentArgs) -> Result<()> {
    let AgentCommand::Scripted(s) = &args.command;
    crate::runtime::scripted::run(&s.rules)
}
