//! `agency demo` and `agency agent`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::print_lines;
use crate::error::Result;
use crate::tui::app::Filter;

/// Run the whole system offline: scripted agencies take a task from
/// implementation to the approval queue
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// End with a summary instead of the approval screen
    #[arg(long)]
    pub no_tui: bool,
}

pub fn demo(home: Option<&Path>, args: &DemoArgs) -> Result<()> {
    eprintln!("building a throw-away workspace with a small git project ...");
    let (mut ctx, r) = crate::demo::run(home, |line| eprintln!("{line}"))?;
    let i = &r.item;
    let home = r.home.display();
    let watch = match &r.socket {
        Some(s) => format!("tmux -L {s} attach -t CodeAgency"),
        None => format!("agency --home {home} attach CodeAgency"),
    };
    let mut lines = vec![
        format!(
            "done in {:.1}s: approval #{} \"{}\" ({}, {} passed, {} failed, {} files +{} -{}) is pending",
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
        format!(
            "task {} is in review: approving the item makes it done (agency --home {home} task show {})",
            r.task, r.task
        ),
        format!("workspace: {home}"),
        format!("watch the agents: {watch}"),
        format!("decide: agency --home {home} approvals"),
    ];
    if let Some(s) = &r.socket {
        lines.push(format!(
            "clean up: tmux -L {s} kill-server; rm -rf {home} (its router stops when the folder goes)"
        ));
    }
    if args.no_tui || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return print_lines(lines);
    }
    crate::tui::run(&mut ctx, Filter::Pending)?;
    print_lines(lines)
}

/// Agent runtimes
#[derive(Debug, Args)]
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
pub struct ScriptedArgs {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
}

pub fn agent(args: &AgentArgs) -> Result<()> {
    let AgentCommand::Scripted(s) = &args.command;
    crate::runtime::scripted::run(&s.rules)
}
