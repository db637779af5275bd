//! `agency plan apply FILE`: a TOML plan becomes tasks. Each task has a
//! `key`, stable across applies: applying the same file again changes
//! nothing, and an edited file reconciles (new keys are added, changed
//! ones updated, removed ones cancelled unless someone works on them).
//!
//! ```toml
//! plan = "release-1"          # optional: the file's name without .toml
//! agency = "CodeAgency"       # optional: for tasks that name neither
//!
//! [[task]]
//! key = "design"
//! title = "Design the API"
//! priority = "high"           # low | normal | high | urgent
//!
//! [[task]]
//! key = "backend"
//! title = "Build the API"
//! capability = "backend"      # or agency = "..."
//! needs = ["design"]
//! parent = "design"           # optional: for the tree
//! body = "..."
//! ```

use std::collections::BTreeMap;
use std::path::Path;

/// A plan larger than this is no plan (`/dev/zero`, a log given by mistake).
pub const MAX_PLAN: u64 = 1024 * 1024;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    clean_body, clean_title, destination, graph, insert, rank_of, set_needs, settle, state_of,
    Graph, Priority, Routing, State,
};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{NewTask, TaskRow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    plan: Option<String>,
    agency: Option<String>,
    #[serde(default)]
    task: Vec<PlanTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanTask {
    key: String,
    title: String,
    agency: Option<String>,
    capability: Option<String>,
    #[serde(default)]
    needs: Vec<String>,
    parent: Option<String>,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    body: String,
}

/// A plan's task, checked.
#[derive(Debug, Clone)]
struct Planned {
    key: String,
    title: String,
    body: String,
    agency: Option<String>,
    capability: Option<String>,
    needs: Vec<String>,
    parent: Option<String>,
    priority: Priority,
}

/// A plan, checked: names, keys, needs, no loops.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    tasks: BTreeMap<String, Planned>,
    /// Keys in an order where each comes after what it needs.
    order: Vec<String>,
}

fn check_key(what: &str, k: &str) -> Result<()> {
    let ok = k.len() <= 64
        && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::user(
            format!("invalid {what} {k:?}"),
            "keys start with a letter or digit and hold only letters, digits, `_`, `-` and `.` (at most 64)",
        ))
    }
}

/// Line `n` (1-based) of the byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

impl Plan {
    /// Reads and checks `path`.
    pub fn load(ctx: &Ctx, path: &Path) -> Result<Plan> {
        let text = read_plan(path)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Plan::parse(ctx, &text, &stem, &path.display().to_string())
    }

    fn parse(ctx: &Ctx, text: &str, stem: &str, label: &str) -> Result<Plan> {
        let hint = "see `agency plan apply --help` for the format";
        let file: PlanFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |s| {
                format!(" (line {})", line_of(text, s.start))
            });
            Error::user(
                format!("{label} is not a valid plan{at}: {}", e.message()),
                hint,
            )
        })?;
        let name = file.plan.clone().unwrap_or_else(|| stem.to_string());
        check_key("plan name", &name)?;
        if file.task.is_empty() {
            return Err(Error::user(format!("{label} has no [[task]]"), hint));
        }
        let mut tasks = BTreeMap::new();
        for t in &file.task {
            let planned = planned(ctx, t, file.agency.as_deref())?;
            if tasks.insert(t.key.clone(), planned).is_some() {
                return Err(Error::user(
                    format!("{label}: the key {:?} is used twice", t.key),
                    "give every [[task]] its own key",
                ));
            }
        }
        let order = order(&tasks)?;
        Ok(Plan { name, tasks, order })
    }
}

/// A `[[task]]` checked; `agency` is the file's (for a task that names no
/// capability).
fn planned(ctx: &Ctx, t: &PlanTask, agency: Option<&str>) -> Result<Planned> {
    check_key("task key", &t.key)?;
    let in_task = |e: Error| match e {
        Error::User { message, hint } => Error::User {
            message: format!("task {:?}: {message}", t.key),
            hint,
        },
        e => e,
    };
    let title = clean_title(&t.title).map_err(in_task)?;
    let body = clean_body(&t.body).map_err(in_task)?;
    let agency = t
        .agency
        .as_deref()
        .or(agency.filter(|_| t.capability.is_none()));
    let (agency, capability) =
        destination(ctx, agency, t.capability.as_deref()).map_err(in_task)?;
    let mut needs = t.needs.clone();
    needs.sort();
    needs.dedup();
    Ok(Planned {
        key: t.key.clone(),
        title,
        body,
        agency,
        capability,
        needs,
        parent: t.parent.clone(),
        priority: t.priority,
    })
}

/// The plan's keys, what a task needs before it, once every key a task
/// names is checked to be there and neither needs nor parents loop.
fn order(tasks: &BTreeMap<String, Planned>) -> Result<Vec<String>> {
    for t in tasks.values() {
        for k in t.needs.iter().chain(&t.parent) {
            if !tasks.contains_key(k) {
                return Err(Error::user(
                    format!(
                        "task {:?} names {k:?}, which is not a key of this plan",
                        t.key
                    ),
                    "needs and parent are keys of other [[task]]s in the same file",
                ));
            }
        }
    }
    let edges: BTreeMap<String, Vec<String>> = tasks
        .values()
        .map(|t| (t.key.clone(), t.needs.clone()))
        .collect();
    let order = graph::topo_order(&edges).map_err(|cycle| {
        let message = if cycle.len() == 2 {
            format!("task {:?} needs itself", cycle[0])
        } else {
            format!("the plan's needs make a loop: {}", cycle.join(" needs "))
        };
        Error::user(message, "a task can only need work that does not need it")
    })?;
    let parents: BTreeMap<String, Vec<String>> = tasks
        .values()
        .map(|t| (t.key.clone(), t.parent.iter().cloned().collect()))
        .collect();
    graph::topo_order(&parents).map_err(|cycle| {
        Error::user(
            format!("the plan's parents make a loop: {}", cycle.join(" under ")),
            "a task cannot be (even indirectly) its own parent",
        )
    })?;
    Ok(order)
}

/// What applying a plan did (or would do, with `--dry-run`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    pub plan: String,
    /// Every key of the plan and its task id.
    pub tasks: BTreeMap<String, i64>,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Tasks whose keys left the plan.
    pub cancelled: Vec<String>,
    /// Changes not made because the task is being worked on or finished.
    pub kept: Vec<String>,
    pub dry_run: bool,
}

/// `agency plan apply FILE [--dry-run]`.
pub fn apply(ctx: &mut Ctx, plan: &Plan, dry_run: bool) -> Result<Applied> {
    let routing = Routing::load(ctx)?;
    let who = super::actor();
    let (report, fx) = ctx.store.tasks_tx(!dry_run, |tx| {
        let mut g = Graph::new(tx, &routing, &who);
        let report = reconcile(&mut g, plan, dry_run)?;
        Ok::<_, Error>((report, g.finish()?))
    })?;
    if !dry_run {
        super::after(ctx, &fx)?;
    }
    Ok(report)
}

fn reconcile(g: &mut Graph<'_, '_>, plan: &Plan, dry_run: bool) -> Result<Applied> {
    let mut r = Applied {
        plan: plan.name.clone(),
        dry_run,
        ..Applied::default()
    };
    let existing: BTreeMap<String, TaskRow> =
        g.tx.plan_tasks(&plan.name)?
            .into_iter()
            .filter_map(|t| Some((t.key.clone()?, t)))
            .collect();
    // First every task with its needs (what it needs comes first) ...
    apply_tasks(g, plan, &existing, &mut r)?;
    // ... then parents, which may come later in that order.
    apply_parents(g, plan, &mut r)?;
    cancel_removed(g, plan, &existing, &mut r)?;
    Ok(r)
}

/// Makes the plan's new tasks and updates the others, in the plan's order.
fn apply_tasks(
    g: &mut Graph<'_, '_>,
    plan: &Plan,
    existing: &BTreeMap<String, TaskRow>,
    r: &mut Applied,
) -> Result<()> {
    for key in &plan.order {
        let p = &plan.tasks[key];
        let needs: Vec<i64> = p.needs.iter().map(|k| r.tasks[k]).collect();
        match existing.get(key) {
            None => {
                let new = NewTask {
                    title: p.title.clone(),
                    body: p.body.clone(),
                    agency: p.agency.clone(),
                    capability: p.capability.clone(),
                    priority: p.priority.as_str().into(),
                    rank: p.priority.rank(),
                    parent: None,
                    needs,
                    plan: Some(plan.name.clone()),
                    key: Some(key.clone()),
                };
                let t = insert(g, &new)?;
                r.tasks.insert(key.clone(), t.id);
                r.created.push(key.clone());
            }
            Some(t) => {
                r.tasks.insert(key.clone(), t.id);
                let outcome = update(g, t.id, p, needs)?;
                match outcome {
                    Outcome::Unchanged => r.unchanged.push(key.clone()),
                    Outcome::Updated => r.updated.push(key.clone()),
                    Outcome::Kept => r.kept.push(key.clone()),
                }
            }
        }
    }
    Ok(())
}

/// Sets each task's parent (its key's task id) where it changed.
fn apply_parents(g: &mut Graph<'_, '_>, plan: &Plan, r: &mut Applied) -> Result<()> {
    for (key, p) in &plan.tasks {
        let parent = p.parent.as_ref().map(|k| r.tasks[k]);
        let mut t = g.get(r.tasks[key])?;
        if t.parent == parent {
            continue;
        }
        t.parent = parent;
        if r.created.contains(key) {
            g.tx.save(&t, rank_of(&t))?;
        } else {
            let from = state_of(&t);
            let detail = json!({"changed": ["parent"]});
            g.record(&mut t, from, "edited", Some("plan changed parent"), detail)?;
            if !r.updated.contains(key) {
                r.unchanged.retain(|k| k != key);
                r.updated.push(key.clone());
            }
        }
    }
    Ok(())
}

/// Cancels the tasks whose keys left the plan, unless they are being
/// worked on (kept) or finished.
fn cancel_removed(
    g: &mut Graph<'_, '_>,
    plan: &Plan,
    existing: &BTreeMap<String, TaskRow>,
    r: &mut Applied,
) -> Result<()> {
    for (key, t) in existing {
        if plan.tasks.contains_key(key) {
            continue;
        }
        let mut t = g.get(t.id)?;
        match state_of(&t) {
            State::Waiting | State::Ready | State::Blocked => {
                let note = format!("removed from plan {}", plan.name);
                g.move_to(&mut t, State::Cancelled, "cancelled", Some(&note))?;
                r.cancelled.push(key.clone());
            }
            State::Claimed | State::Review => r.kept.push(key.clone()),
            State::Done | State::Cancelled => {}
        }
    }
    Ok(())
}

enum Outcome {
    Unchanged,
    Updated,
    Kept,
}

/// Brings an existing task in line with its plan entry.
fn update(g: &mut Graph<'_, '_>, id: i64, p: &Planned, needs: Vec<i64>) -> Result<Outcome> {
    let mut t = g.get(id)?;
    let from = state_of(&t);
    let same_place = match (&p.agency, &p.capability) {
        (_, Some(c)) => t.capability.as_ref() == Some(c),
        (a, None) => t.agency == *a && t.capability.is_none(),
    };
    let mut changed = Vec::new();
    if t.title != p.title {
        changed.push("title");
    }
    if t.body != p.body {
        changed.push("body");
    }
    if t.priority != p.priority.as_str() {
        changed.push("priority");
    }
    if t.needs != needs {
        changed.push("needs");
    }
    if !same_place {
        changed.push("agency");
    }
    if changed.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let moving_work = !same_place && matches!(from, State::Claimed | State::Review);
    if from.resolved() || moving_work {
        return Ok(Outcome::Kept);
    }
    t.title = p.title.clone();
    t.body = p.body.clone();
    t.priority = p.priority.as_str().into();
    if !same_place {
        t.agency = p.agency.clone();
        t.capability = p.capability.clone();
    }
    if t.needs != needs {
        set_needs(g, &t, &needs)?;
        t.needs = needs;
    }
    let note = format!("plan changed {}", changed.join(", "));
    g.record(
        &mut t,
        from,
        "edited",
        Some(&note),
        json!({"changed": changed}),
    )?;
    settle(g, &mut t, from, !same_place)?;
    Ok(Outcome::Updated)
}

/// The plan file's text: a regular file of at most `MAX_PLAN` bytes,
/// checked before reading (a FIFO or device is never opened for long, and
/// never read to its end).
fn read_plan(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::io(path.display(), e);
    let refuse = |why: String| {
        Error::user(
            format!("{} {why}", path.display()),
            format!(
                "a plan is a TOML file of at most {} KiB; see `agency plan apply --help`",
                MAX_PLAN / 1024
            ),
        )
    };
    let check = |m: std::fs::Metadata| {
        if !m.is_file() {
            Err(refuse("is not a regular file".into()))
        } else if m.len() > MAX_PLAN {
            Err(refuse(format!(
                "is {} bytes: too large for a plan",
                m.len()
            )))
        } else {
            Ok(())
        }
    };
    check(std::fs::metadata(path).map_err(io)?)?;
    // Non-blocking: a FIFO swapped in since does not hang the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    check(file.metadata().map_err(io)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_PLAN + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PLAN {
        return Err(refuse("grew past the limit while it was read".into()));
    }
    String::from_utf8(bytes)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}
