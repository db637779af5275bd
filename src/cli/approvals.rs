//! `agency handoff`, `sandbox deploy`, `submit`, `approvals`, `approve`, `reject`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{print_json, print_lines, split_list};
use crate::agency::Ctx;
use crate::approval::{self, HandoffRequest, SubmitRequest};
use crate::error::{Error, Result};
use crate::tui::app::Filter;

/// Hand a branch to another agency's coordinator
#[derive(Debug, Args)]
pub struct HandoffArgs {
    pub from: String,
    pub to: String,
    /// What the work is
    #[arg(long)]
    pub task: String,
    /// The branch (default: AGENCY_BRANCH, set in an agent's pane)
    #[arg(long)]
    pub branch: Option<String>,
    /// Files worth a look, comma-separated
    #[arg(long, value_name = "a,b")]
    pub artifacts: Option<String>,
    #[arg(long, default_value = "")]
    pub notes: String,
    #[arg(long, default_value = "normal")]
    pub priority: String,
    #[arg(long)]
    pub json: bool,
}

pub fn handoff(ctx: &mut Ctx, a: &HandoffArgs) -> Result<()> {
    let h = approval::handoff(
        ctx,
        &HandoffRequest {
            from: a.from.clone(),
            to: a.to.clone(),
            task: a.task.clone(),
            branch: a.branch.clone(),
            artifacts: a.artifacts.as_deref().map(split_list).unwrap_or_default(),
            notes: a.notes.clone(),
            priority: a.priority.clone(),
        },
    )?;
    if a.json {
        return print_json(&h);
    }
    print_lines([format!(
        "handoff #{} of {} ({}) from {} to {}: message #{}",
        h.id,
        h.branch,
        &h.commit[..10],
        h.from,
        h.to,
        h.message_id.unwrap_or_default()
    )])
}

/// Test branches in sandbox worktrees
#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub command: SandboxCommand,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    Deploy(DeployArgs),
}

/// Check a branch out under sandbox/testing/ and run the tests there
#[derive(Debug, Args)]
pub struct DeployArgs {
    pub agency: String,
    pub branch: String,
    /// The task, for the record
    #[arg(long)]
    pub task: Option<String>,
    /// Test command (default: agency.json's test_command, else agency.toml's)
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// Seconds before the tests are stopped
    #[arg(long, default_value_t = approval::DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// Keep the worktree afterwards
    #[arg(long)]
    pub keep: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn sandbox(ctx: &Ctx, a: &SandboxArgs) -> Result<()> {
    let SandboxCommand::Deploy(d) = &a.command;
    let r = approval::sandbox_deploy(
        ctx,
        &d.agency,
        &d.branch,
        d.test_command.as_deref(),
        Duration::from_secs(d.timeout),
        d.keep,
    )?;
    if d.json {
        print_json(&r)?;
    } else {
        print_deploy(&r)?;
    }
    if r.passed {
        return Ok(());
    }
    let why = if r.run.timed_out {
        format!("the tests of {} timed out after {}s", r.branch, d.timeout)
    } else {
        format!("the tests of {} failed", r.branch)
    };
    Err(Error::user(why, format!("see the log: {}", r.run.log)))
}

fn print_deploy(r: &approval::SandboxReport) -> Result<()> {
    let counts = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    let mut lines = vec![format!(
        "{} {} at {}: {} passed, {} failed in {:.1}s ({})",
        if r.passed { "PASSED" } else { "FAILED" },
        r.branch,
        &r.commit[..10],
        counts(r.run.summary.passed),
        counts(r.run.summary.failed),
        r.run.seconds,
        if r.run.timed_out {
            "timed out".to_string()
        } else {
            format!(
                "exit {}",
                r.run.exit_code.map_or("-".into(), |c| c.to_string())
            )
        }
    )];
    if let Some(c) = r.run.summary.coverage {
        lines.push(format!("coverage {c}%"));
    }
    lines.push(format!("log: {}", r.run.log));
    if r.kept {
        lines.push(format!("worktree: {}", r.worktree));
    }
    print_lines(lines)
}

/// Sandbox-test a branch and queue it for the human's approval
#[derive(Debug, Args)]
pub struct SubmitArgs {
    pub agency: String,
    #[arg(long)]
    pub task: String,
    /// The branch (default: AGENCY_BRANCH, set in an agent's pane)
    #[arg(long)]
    pub branch: Option<String>,
    #[arg(long)]
    pub title: Option<String>,
    /// A link to a demo
    #[arg(long, value_name = "URL")]
    pub demo: Option<String>,
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// Seconds before the tests are stopped
    #[arg(long, default_value_t = approval::DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

pub fn submit(ctx: &mut Ctx, a: &SubmitArgs) -> Result<()> {
    let item = approval::submit(
        ctx,
        &SubmitRequest {
            agency: a.agency.clone(),
            task: a.task.clone(),
            branch: a.branch.clone(),
            title: a.title.clone(),
            demo: a.demo.clone(),
            test_command: a.test_command.clone(),
            timeout: Duration::from_secs(a.timeout),
        },
    )?;
    if a.json {
        return print_json(&item);
    }
    print_lines([item.id.to_string()])
}

/// The approval queue (JSON when not on a terminal or with --json)
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// pending, approved, rejected or all
    #[arg(long, default_value = "pending")]
    pub status: String,
    #[arg(long)]
    pub json: bool,
}

pub fn approvals(ctx: &mut Ctx, a: &ApprovalsArgs) -> Result<()> {
    let Some(filter) = Filter::parse(&a.status) else {
        return Err(Error::user(
            format!("unknown status {:?}", a.status),
            "use --status pending, approved, rejected or all",
        ));
    };
    if !a.json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return crate::tui::run(ctx, filter);
    }
    let items = ctx.store.approvals(filter.status())?;
    let out: Vec<serde_json::Value> = items.iter().map(approval_json).collect();
    print_json(&out)
}

/// The fields CLI.md promises, plus the rest of the record.
pub fn approval_json(i: &crate::store::ApprovalRow) -> serde_json::Value {
    let mut v = serde_json::to_value(i).expect("plain data serializes");
    v["commit"] = serde_json::Value::String(i.commit.clone());
    v
}

/// Merge an approval item's branch into the base branch
#[derive(Debug, Args)]
pub struct ApproveArgs {
    pub id: i64,
    #[arg(long)]
    pub note: Option<String>,
    /// Approve even though its tests failed
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn approve(ctx: &mut Ctx, a: &ApproveArgs) -> Result<()> {
    let r = approval::approve(ctx, a.id, a.note.as_deref(), a.force)?;
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if a.json {
        return print_json(&r);
    }
    let mut lines = Vec::new();
    if let Some(first) = r.finished_first {
        lines.push(format!(
            "finished the interrupted approve of #{first} first"
        ));
    }
    lines.extend(approve_lines(&r));
    print_lines(lines)
}

/// What an approve did, in words.
fn approve_lines(r: &approval::ApproveReport) -> Vec<String> {
    let mut lines = vec![format!(
        "approved #{}: {} merged into {} ({}, {}){}",
        r.id,
        r.branch,
        r.base_branch,
        r.merge,
        &r.merge_commit[..10],
        if r.resumed {
            "; an interrupted approve was finished"
        } else {
            ""
        }
    )];
    for dir in &r.checkouts {
        lines.push(format!(
            "the checkout of {} at {dir} was updated",
            r.base_branch
        ));
    }
    if !r.kept.is_empty() {
        lines.push(format!(
            "left as they were (changed meanwhile, now differing from {}): {}",
            r.base_branch,
            r.kept.join(", ")
        ));
    }
    lines
}

/// Reject an approval item with feedback for the agency
#[derive(Debug, Args)]
pub struct RejectArgs {
    pub id: i64,
    #[arg(long)]
    pub feedback: String,
    #[arg(long)]
    pub json: bool,
}

pub fn reject(ctx: &mut Ctx, a: &RejectArgs) -> Result<()> {
    if let Some(r) = approval::finish_interrupted(ctx)? {
        let mut lines = vec![format!(
            "finished the interrupted approve of #{} first:",
            r.id
        )];
        lines.extend(approve_lines(&r));
        lines.extend(r.warnings.iter().map(|w| format!("warning: {w}")));
        for l in lines {
            eprintln!("{l}");
        }
    }
    let message = approval::reject(ctx, a.id, &a.feedback)?;
    if a.json {
        return print_json(
            &serde_json::json!({"id": a.id, "status": "rejected", "message_id": message}),
        );
    }
    print_lines([format!(
        "rejected #{}; the feedback went to its coordinator",
        a.id
    )])
}
