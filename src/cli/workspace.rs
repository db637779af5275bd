//! `agency init` and `agency templates`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{print_json, print_lines};
use crate::agency::templates;
use crate::error::Result;
use crate::workspace::{self, Workspace, WorkspaceError};

/// Create (or complete, idempotently) a workspace
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency init ws --project ~/src/app   a workspace beside your repository
  agency init                          this folder is the workspace (and the project)
  agency init ws --project ../other    point an existing workspace at another project

The test command is found from the project's files (Cargo.toml, package.json,
pytest's files, go.mod, a Makefile with a `test` target) and can be changed in
agency.toml under [sandbox].")]
pub struct InitArgs {
    /// Folder of the workspace (made if missing)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The git repository the agencies work on
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,
    /// Print a JSON report
    #[arg(long)]
    pub json: bool,
}

pub fn init(home: Option<&Path>, args: &InitArgs) -> Result<()> {
    // `--home` names the workspace too; DIR wins when both are given.
    let dir = match (home, args.dir.as_os_str() == ".") {
        (Some(h), true) => h.to_path_buf(),
        _ => args.dir.clone(),
    };
    let report = workspace::init(&dir, args.project.as_deref())?;
    if let Some(w) = runner_missing(&report) {
        eprintln!("warning: {w}");
    }
    if args.json {
        return print_json(&report);
    }
    let mut lines = vec![format!("workspace ready at {}", report.root.display())];
    if !report.created.is_empty() {
        lines.push(format!("created: {}", report.created.join(", ")));
    }
    lines.push(format!("project: {}", report.project));
    match &report.test_command {
        Some(t) if !t.command.is_empty() => lines.push(format!(
            "tests: `{}` (found {}; change it in agency.toml under [sandbox])",
            t.command,
            t.found.as_deref().unwrap_or("?")
        )),
        Some(_) => lines.push(
            "tests: none found; set [sandbox] test_command in agency.toml before `agency submit`"
                .into(),
        ),
        None => {}
    }
    if !report.git {
        super::eprint_lines([
            format!(
                "warning: the project {} is not a git repository: agents share its folder (no worktrees), and handoff, submit and approve need one",
                report.project
            ),
            format!(
                "hint: `git init` it, or point the workspace at your repository: {} init {} --project PATH",
                super::program(),
                super::quote(&report.root.display().to_string())
            ),
        ]);
    }
    let ws = Workspace::open(report.root.clone())?;
    lines.push(format!(
        "next: {} create CodeAgency",
        super::invocation(&ws)
    ));
    print_lines(lines)
}

/// The test command `init` found, when its runner does not run here: every
/// sandbox run (and `submit`) would fail with "? passed, ? failed".
fn runner_missing(report: &workspace::InitReport) -> Option<String> {
    let t = report.test_command.as_ref()?;
    let (program, args) = t.probe()?;
    let dir = Workspace::open(report.root.clone()).ok()?.project_dir();
    let limit = std::time::Duration::from_secs(20);
    if crate::os::process::runs_ok(program, args, &dir, limit) {
        return None;
    }
    Some(format!(
        "the tests would run `{}`, but `{program} {}` fails here: install it (or set [sandbox] test_command in agency.toml), or every sandbox run fails",
        t.command,
        args.join(" ")
    ))
}

/// List agency templates (built-in, and the workspace's own)
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency templates
  agency templates --json | jq -r '.[].name'

A workspace's own templates/<Name>/ (agency.json and role files) override the
built-in one of the same name.")]
pub struct TemplatesArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn templates(home: Option<&Path>, args: &TemplatesArgs) -> Result<()> {
    // Works outside a workspace too: then only the built-ins are listed.
    let dir = match Workspace::locate(home) {
        Ok(ws) => ws.templates_dir(),
        Err(e @ WorkspaceError::Invalid(_)) if home.is_some() => return Err(e.into()),
        Err(_) => PathBuf::new(),
    };
    let list = templates::list(&dir)?;
    if args.json {
        return print_json(&list);
    }
    let width = list.iter().map(|t| t.name.len()).max().unwrap_or(4).max(8);
    let mut lines = vec![format!("{:width$}  {:9}  AGENTS", "TEMPLATE", "SOURCE")];
    for t in &list {
        lines.push(format!(
            "{:width$}  {:9}  {} + {}",
            t.name,
            t.source,
            t.coordinator,
            t.agents.join(", ")
        ));
    }
    print_lines(lines)
}
