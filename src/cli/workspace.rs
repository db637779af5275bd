//! `agency init` and `agency templates`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{print_json, print_lines};
use crate::agency::templates;
use crate::error::{Error, Result};
use crate::workspace::{self, Workspace};

/// Create (or complete, idempotently) a workspace
#[derive(Debug, Args)]
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
    if args.json {
        return print_json(&report);
    }
    let mut lines = vec![format!("workspace ready at {}", report.root.display())];
    if !report.created.is_empty() {
        lines.push(format!("created: {}", report.created.join(", ")));
    }
    lines.push(format!("project: {}", report.project));
    lines.push(format!(
        "next: agency --home {} create CodeAgency",
        report.root.display()
    ));
    print_lines(lines)
}

/// List agency templates (built-in, and the workspace's own)
#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn templates(home: Option<&Path>, args: &TemplatesArgs) -> Result<()> {
    // Works outside a workspace too: then only the built-ins are listed.
    let dir = match Workspace::locate(home) {
        Ok(ws) => ws.templates_dir(),
        Err(e @ Error::User { .. }) if home.is_some() => return Err(e),
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
