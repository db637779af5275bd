//! `agency handoff`, `sandbox deploy`, `submit`, `approvals`, `approve`, `reject`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::progress::Progress;
use super::{print_json, print_lines, split_list};
use crate::approval::{self, HandoffRequest, SubmitRequest};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::tui::app::Filter;

/// Hand a branch to another agency's coordinator
#[derive(Debug, Args)]
#[command(after_help = r#"Examples:
  agency handoff CodeAgency QAAgency --task T-42 --branch feature/oauth --notes "tests in tests/auth"
  agency handoff CodeAgency QAAgency --task T-42 --priority high      in an agent's pane: its own branch

The receiving coordinator gets a `handoff` message with the task, branch, commit,
artifacts, notes and priority. `--task 7` (a task's id) moves task 7 to the receiving
agency, which then finishes and submits it; `--task T-42` (a label) moves no task."#)]
pub struct HandoffArgs {
    /// The agency handing over
    pub from: String,
    /// The agency taking over (its coordinator is told)
    pub to: String,
    /// What the work is: a task's id moves that task to TO (ready there, unclaimed: a claim on it ends); any other text is a label, and no task moves
    #[arg(long)]
    pub task: String,
    /// The branch (default: AGENCY_BRANCH, set in an agent's pane)
    #[arg(long)]
    pub branch: Option<String>,
    /// Files worth a look, comma-separated
    #[arg(long, value_name = "a,b")]
    pub artifacts: Option<String>,
    /// What the receiver should know
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub notes: String,
    /// How urgent it is
    #[arg(long, value_enum, default_value_t = Priority::Normal)]
    pub priority: Priority,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// How urgent a handoff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Priority {
    Low,
    #[value(alias = "medium")]
    Normal,
    High,
    #[value(alias = "critical")]
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
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
            priority: a.priority.as_str().to_string(),
        },
    )?;
    if a.json {
        return print_json(&h);
    }
    let mut lines = vec![format!(
        "handoff #{} of {} ({}) from {} to {}: message #{}",
        h.handoff.id,
        h.handoff.branch,
        &h.handoff.commit[..10],
        h.handoff.from,
        h.handoff.to,
        h.handoff.message_id.unwrap_or_default()
    )];
    lines.extend(h.moved.as_ref().map(|m| moved_line(ctx, m)));
    print_lines(lines)
}

/// Says that `--task ID` moved the task (and ended a claim): with a label
/// nothing moves, and the one who handed off may not expect it.
fn moved_line(ctx: &Ctx, m: &approval::TaskMoved) -> String {
    let claim = match &m.claim_ended {
        Some(who) => format!("; the claim of {who} on it ended"),
        None => String::new(),
    };
    format!(
        "task {} \"{}\" moved to {} ({}, unclaimed){claim}: {} finishes and submits it (see `{} task show {}`; hand off under a label, not a task id, to keep a task)",
        m.id,
        m.title,
        m.to,
        m.state,
        m.to,
        super::invocation(&ctx.ws),
        m.id
    )
}

/// `--timeout`: whole seconds, at least one (0 would stop the tests at once).
fn timeout_secs(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("0 stops the tests before they start: give at least 1 second".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number of seconds (e.g. 600)")),
    }
}

/// Test branches in sandbox worktrees
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency sandbox deploy CodeAgency feature/oauth
  agency sandbox deploy CodeAgency feature/oauth --stream --keep")]
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
#[command(after_help = "Examples:
  agency sandbox deploy CodeAgency feature/oauth
  agency sandbox deploy CodeAgency feature/oauth --stream            the test output as it comes
  agency sandbox deploy CodeAgency feature/oauth --test-command 'pytest -q' --keep

On a terminal it shows the elapsed time, the test command and its last line.
The summary (`N passed, N failed`, cargo, nextest, pytest) and coverage are read
from the output; the whole log stays under sandbox/logs/.")]
pub struct DeployArgs {
    /// The agency whose tests (test_command) apply
    pub agency: String,
    /// The branch to test
    pub branch: String,
    /// The task, for the record
    #[arg(long)]
    pub task: Option<String>,
    /// Test command (default: agency.json's test_command, else agency.toml's);
    /// refused in an agent's pane unless its permissions are `all`
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// Seconds before the tests are stopped (at least 1)
    #[arg(long, default_value_t = approval::DEFAULT_TIMEOUT.as_secs(), value_parser = timeout_secs)]
    pub timeout: u64,
    /// Keep the worktree afterwards
    #[arg(long)]
    pub keep: bool,
    /// Print the test output as it comes (on stderr)
    #[arg(long, visible_alias = "verbose")]
    pub stream: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn sandbox(ctx: &Ctx, a: &SandboxArgs) -> Result<()> {
    let SandboxCommand::Deploy(d) = &a.command;
    let mut progress = Progress::new(&format!("testing {}", d.branch), d.stream);
    let r = approval::sandbox_deploy_watched(
        ctx,
        &d.agency,
        &d.branch,
        d.test_command.as_deref(),
        Duration::from_secs(d.timeout),
        d.keep,
        &mut progress,
    )?;
    drop(progress);
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
    // No counts read from it: its last line most often says why (as after
    // `submit`), e.g. a test runner that is not installed.
    if r.run.summary.passed.is_none() && r.run.summary.failed.is_none() {
        lines.extend(last_line(&r.run.log).map(|l| format!("it ended with: {l}")));
    }
    if r.kept {
        lines.push(format!("worktree: {}", r.worktree));
    }
    print_lines(lines)
}

/// Sandbox-test a branch and queue it for the human's approval
#[derive(Debug, Args)]
#[command(after_help = r#"Examples:
  agency submit CodeAgency --task T-42 --branch feature/oauth --title "OAuth2 login"
  agency submit CodeAgency --task T-42             in an agent's pane: its own branch
  agency submit CodeAgency --task T-42 --branch feature/oauth --stream -q

The branch is tested in a sandbox worktree (progress on a terminal), its diff
measured against the base branch, and an approval item pinned to the tested
commit is queued. A commit already pending, or already in the base branch, is
refused. The human decides with `agency approvals`."#)]
pub struct SubmitArgs {
    /// The submitting agency
    pub agency: String,
    /// A task id (it goes to review; approving makes it done) or a label (e.g. T-42)
    #[arg(long)]
    pub task: String,
    /// The branch (default: AGENCY_BRANCH, set in an agent's pane)
    #[arg(long)]
    pub branch: Option<String>,
    /// A one-line title for the approval screen (default: the task)
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// A link to a demo
    #[arg(long, value_name = "URL")]
    pub demo: Option<String>,
    /// Test command (default: agency.json's test_command, else agency.toml's);
    /// refused in an agent's pane unless its permissions are `all`
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// Seconds before the tests are stopped (at least 1)
    #[arg(long, default_value_t = approval::DEFAULT_TIMEOUT.as_secs(), value_parser = timeout_secs)]
    pub timeout: u64,
    /// Print the test output as it comes (on stderr)
    #[arg(long, visible_alias = "verbose")]
    pub stream: bool,
    /// Print only the approval id
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Print the approval item as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn submit(ctx: &mut Ctx, a: &SubmitArgs) -> Result<()> {
    let what = format!(
        "testing {}",
        a.branch.as_deref().unwrap_or("the agent's branch")
    );
    let mut progress = Progress::new(&what, a.stream);
    let item = approval::submit_watched(
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
        &mut progress,
    )?;
    drop(progress);
    if a.json {
        return print_json(&item);
    }
    if a.quiet {
        return print_lines([item.id.to_string()]);
    }
    print_lines(submitted_lines(&item, &super::invocation(&ctx.ws)))
}

/// The last non-blank line of a log, without control characters.
fn last_line(path: &str) -> Option<String> {
    let text = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).take(200).collect())
}

/// What `submit` says: the item, how its tests went, what comes next.
fn submitted_lines(i: &crate::store::ApprovalRow, me: &str) -> Vec<String> {
    let n = |v: Option<i64>| v.map_or("?".to_string(), |n| n.to_string());
    let passed = i.passed();
    let exit = match i.test_exit_code {
        Some(0) => String::new(),
        Some(c) => format!(", exit {c}"),
        None => ", stopped".to_string(),
    };
    let mut lines = vec![format!(
        "submitted approval #{} \"{}\" ({} at {}): tests {} ({} passed, {} failed{exit}, {:.1}s); {} file(s) +{} -{}",
        i.id,
        i.title,
        i.branch,
        &i.commit[..i.commit.len().min(10)],
        if passed { "PASSED" } else { "FAILED" },
        n(i.tests_passed),
        n(i.tests_failed),
        i.test_seconds,
        i.files_changed,
        i.insertions,
        i.deletions
    )];
    if passed {
        lines.push(format!(
            "next: the human decides in `{me} approvals` (or `{me} approve {}`)",
            i.id
        ));
    } else {
        lines.push(format!("test log: {}", i.test_log));
        if let Some(last) = last_line(&i.test_log) {
            lines.push(format!("it ended with: {last}"));
        }
        lines.push(format!(
            "next: fix {} and submit again; it is queued as failed, and approving it takes `{me} approve {} --force` (or F in the approval screen)",
            i.branch, i.id
        ));
    }
    lines
}

/// The approval queue (JSON when not on a terminal or with --json)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency approvals                          the approval screen (in a terminal)
  agency approvals --status all --json      every item, as JSON

Keys: ↑/↓ or k/j move, Enter details, d diff, t test log, f filter, a approve
(y confirms; F approves an item whose tests failed), r reject with feedback, q quit.")]
pub struct ApprovalsArgs {
    /// Which items
    #[arg(long, value_enum, default_value_t = Filter::Pending)]
    pub status: Filter,
    /// Print JSON (also what a non-terminal gets)
    #[arg(long)]
    pub json: bool,
}

pub fn approvals(ctx: &mut Ctx, a: &ApprovalsArgs) -> Result<()> {
    let filter = a.status;
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
#[command(after_help = r#"Examples:
  agency approve 3
  agency approve 3 --note "ship it"
  agency approve 4 --force            its tests failed, and you merge it anyway

The branch must still be at the tested commit; a conflict changes nothing."#)]
pub struct ApproveArgs {
    /// The approval item (see `agency approvals`)
    pub id: i64,
    /// A note for the record and the agency
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Approve even though its tests failed
    #[arg(long)]
    pub force: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn approve(ctx: &mut Ctx, a: &ApproveArgs) -> Result<()> {
    let r = approval::approve(ctx, a.id, a.note.as_deref(), a.force)?;
    super::eprint_lines(r.warnings.iter().map(|w| format!("warning: {w}")));
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
#[command(after_help = r#"Examples:
  agency reject 3 --feedback "needs tests for the refresh token"

The feedback goes to the agency's coordinator as a `rejected` message."#)]
pub struct RejectArgs {
    /// The approval item (see `agency approvals`)
    pub id: i64,
    /// What to change (sent to the agency's coordinator)
    #[arg(long, value_name = "TEXT")]
    pub feedback: String,
    /// Print JSON
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
        super::eprint_lines(lines);
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
