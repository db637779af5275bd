//! Landing an approved merge so that a crash or an error at any instant
//! leaves the base branch and its checkouts consistent, or finishable by
//! running `approve` again.
//!
//! The order: the merge is computed and the checkouts' files staged (any
//! refusal here changes nothing); the plan is written to
//! `registry/approving.json`; the base branch moves only from the commit
//! the merge was computed on (compare-and-swap); each checkout's files then
//! follow, every file replaced whole; the decision and the message to the
//! coordinator are recorded in one transaction; the plan is removed. The
//! next `approve` or `reject` finds a plan left behind and finishes it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{project, ApproveReport};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::os::git::{Landing, Project};
use crate::workspace::write_atomic;

/// What `approving.json` holds: the plan of one approve in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub id: i64,
    pub merge: String,
    pub by: String,
    pub note: Option<String>,
    pub landing: Landing,
}

fn path(ctx: &Ctx) -> PathBuf {
    ctx.ws.registry_dir().join("approving.json")
}

fn write(ctx: &Ctx, j: &Journal) -> Result<()> {
    let text = serde_json::to_vec_pretty(j).expect("plain data serializes");
    write_atomic(&path(ctx), &text).map_err(|e| {
        Error::user(
            format!("could not write the approval's plan ({e}); nothing was changed"),
            "free some space in the workspace's registry folder, then approve again",
        )
    })
}

fn read(ctx: &Ctx) -> Result<Option<Journal>> {
    let p = path(ctx);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::user(
                format!("{} is not a valid approval plan: {e}", p.display()),
                "remove it if no approve is running (check `git log` of the base branch first)",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p.display(), e)),
    }
}

pub fn clear(ctx: &Ctx) {
    let _ = std::fs::remove_file(path(ctx));
}

/// Lands `j.landing`: stages each checkout (refusing, with nothing changed,
/// when files are in the way), writes the plan, moves the base branch from
/// the commit the merge was computed on, and updates the checkouts.
pub fn land(ctx: &Ctx, project: &Project, j: &Journal, r: &mut ApproveReport) -> Result<()> {
    let staged = project.stage_checkouts(&j.landing).map_err(|e| {
        Error::user(
            format!("could not stage the merge's files for the checkout of {}: {e}; nothing was changed", j.landing.base),
            "free some space in the project (its .git folder stages the files), then approve again",
        )
    })?;
    for s in &staged {
        let files = s.in_the_way();
        if !files.is_empty() {
            return Err(crate::os::git::GitError::InTheWay {
                branch: j.landing.base.clone(),
                dir: s.dir.display().to_string(),
                files: files.join(", "),
            }
            .into());
        }
    }
    write(ctx, j)?;
    let log = format!("agency: approve #{} into {}", j.id, j.landing.base);
    if let Err(e) = project.land(&j.landing, &log) {
        // Only what the branch says now counts (an error after the move
        // still moved it).
        if project.branch_commit(&j.landing.base).ok() != Some(j.landing.new.clone()) {
            clear(ctx);
            return Err(e.into());
        }
    }
    for s in staged {
        let dir = s.dir.display().to_string();
        let applied = s.apply().map_err(|e| unfinished(j, &dir, &e.to_string()))?;
        r.checkouts.push(dir);
        r.kept.extend(applied.kept);
    }
    r.checkout_updated = !r.checkouts.is_empty();
    Ok(())
}

/// The error for a merge that landed but whose checkout did not follow.
fn unfinished(j: &Journal, dir: &str, why: &str) -> Error {
    Error::user(
        format!(
            "{} now has the merge of #{} ({}), but its checkout at {dir} was not fully updated: {why}",
            j.landing.base,
            j.id,
            &j.landing.new[..10]
        ),
        format!(
            "fix that, then run `agency approve {}` again: it finishes the checkout and records the decision without merging again",
            j.id
        ),
    )
}

/// What finishing an interrupted approve did to the checkouts.
#[derive(Debug, Default)]
pub struct Resumed {
    pub checkouts: Vec<String>,
    pub kept: Vec<String>,
    pub warnings: Vec<String>,
}

/// Finishes an approve that was interrupted after its plan was written:
/// `None` if there was none (or it never moved the branch, which is then
/// as it was). Stale git locks the crash left are removed.
pub fn resume(ctx: &mut Ctx) -> Result<Option<(Journal, Resumed)>> {
    let Some(j) = read(ctx)? else {
        return Ok(None);
    };
    let project = project(ctx)?;
    let removed = project.clear_stale_locks(&j.landing);
    let l = &j.landing;
    let now = project.branch_commit(&l.base)?;
    if now == l.old || !project.contains(&now, &l.new) {
        // It never landed, or the branch was set elsewhere since: the item
        // stays as it is and can be approved again.
        clear(ctx);
        return Ok(None);
    }
    let mut r = Resumed::default();
    r.warnings.extend(removed.iter().map(|p| {
        format!(
            "removed the stale lock {} the interrupted approve left",
            p.display()
        )
    }));
    if now == l.new {
        for s in project.stage_checkouts(l)? {
            let dir = s.dir.display().to_string();
            let applied = s
                .apply()
                .map_err(|e| unfinished(&j, &dir, &e.to_string()))?;
            r.checkouts.push(dir);
            r.kept.extend(applied.kept);
        }
    } else {
        r.warnings.push(format!(
            "{} moved on to {} since the interrupted approve; its checkouts were left as they were (see `git status` in {})",
            l.base,
            &now[..10],
            l.checkouts
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Some((j, r)))
}
