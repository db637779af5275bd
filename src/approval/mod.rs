//! Work moving as git branches: handoffs between agencies, sandbox test
//! runs, the approval queue, and the human's decisions.
//!
//! Only `approve` writes the base branch, and only after the branch is
//! found still at the commit that was tested.

mod landing;
pub mod testrun;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use crate::agency::agent_permissions;
use crate::bus;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::{validate_name, AgencySpec};
use crate::model::{ApprovalStatus, Permissions};
use crate::os::git::{DiffStats, MergeOutcome, Project};
use crate::os::{interrupt, process};
use crate::store::{ApprovalRow, Decision, HandoffRow, NewMessage};
use crate::tasks;
use testrun::TestRun;

/// How long a test command may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn project(ctx: &Ctx) -> Result<Project> {
    let dir = ctx.ws.project_dir();
    if !dir.exists() {
        return Err(Error::user(
            format!("the project folder {} does not exist", dir.display()),
            "set `project` in agency.toml to your git repository (`agency init DIR --project PATH`)",
        ));
    }
    Ok(Project::open(&dir)?)
}

/// `--branch`, else `AGENCY_BRANCH` (set in an agent's pane), else an error.
pub fn branch_or_env(branch: Option<&str>) -> Result<String> {
    branch
        .map(str::to_string)
        .or_else(|| {
            std::env::var("AGENCY_BRANCH")
                .ok()
                .filter(|b| !b.is_empty())
        })
        .ok_or_else(|| {
            Error::user(
                "no branch given",
                "pass --branch BRANCH (inside an agent's pane, AGENCY_BRANCH is used)",
            )
        })
}

fn require_agency(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.agent_names(name).map(|_| ())
}

#[derive(Debug, Clone)]
pub struct HandoffRequest {
    pub from: String,
    pub to: String,
    pub task: String,
    pub branch: Option<String>,
    pub artifacts: Vec<String>,
    pub notes: String,
    pub priority: String,
}

/// What `agency handoff` did: the handoff, and the task it moved when
/// `--task` named one by its id.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffReport {
    #[serde(flatten)]
    pub handoff: HandoffRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<TaskMoved>,
}

/// A task a handoff moved to the receiving agency.
#[derive(Debug, Clone, Serialize)]
pub struct TaskMoved {
    pub id: i64,
    pub title: String,
    pub from: Option<String>,
    pub to: String,
    /// Its state there (`ready` unless it was waiting on its needs).
    pub state: String,
    /// The agent whose claim on it ended (`AGENCY/AGENT`).
    pub claim_ended: Option<String>,
}

/// `agency handoff`: records the branch's head and tells the receiving
/// coordinator, in a `handoff` message carrying the same facts.
pub fn handoff(ctx: &mut Ctx, r: &HandoffRequest) -> Result<HandoffReport> {
    validate_name("agency", &r.from)?;
    // Inside an agent's pane, handed over by its own agency only.
    bus::check_own_sender(ctx, &r.from, true)?;
    validate_name("agency", &r.to)?;
    require_agency(ctx, &r.to)?;
    if r.task.trim().is_empty() {
        return Err(Error::user(
            "the task is empty",
            "pass --task \"what was done\"",
        ));
    }
    let branch = branch_or_env(r.branch.as_deref())?;
    let commit = project(ctx)?.branch_commit(&branch)?;
    let task = tasks::hooks::before_handoff(ctx, &r.task)?;
    let payload = json!({
        "type": "handoff",
        "task": r.task,
        "from": r.from,
        "branch": branch,
        "commit": commit,
        "artifacts": r.artifacts,
        "notes": r.notes,
        "priority": r.priority,
    });
    let ids = bus::queue(ctx, &[bus::inter_message(&r.from, &r.to, payload)?])?;
    let row = HandoffRow {
        id: 0,
        task: r.task.clone(),
        from: r.from.clone(),
        to: r.to.clone(),
        branch,
        commit,
        artifacts: r.artifacts.clone(),
        notes: r.notes.clone(),
        priority: r.priority.clone(),
        message_id: ids.first().copied(),
        created_at: String::new(),
    };
    let row = ctx.store.insert_handoff(&row)?;
    let mut moved = None;
    if let Some(t) = task {
        tasks::hooks::handed_off(ctx, t.id, &r.to, row.message_id)?;
        let now = ctx.store.task(t.id)?;
        let holder = |a: &Option<String>, agency: &Option<String>| {
            a.as_ref()
                .map(|a| format!("{}/{a}", agency.as_deref().unwrap_or("-")))
        };
        moved = Some(TaskMoved {
            id: t.id,
            title: t.title.clone(),
            from: t.agency.clone(),
            to: r.to.clone(),
            state: now.as_ref().map_or(t.state.clone(), |n| n.state.clone()),
            claim_ended: holder(&t.agent, &t.agency)
                .filter(|_| now.as_ref().is_none_or(|n| n.agent.is_none())),
        });
    }
    Ok(HandoffReport {
        handoff: row,
        moved,
    })
}

/// Which test command applies: `--test-command` when given (an explicit
/// request wins), else the agency's `test_command`, else `agency.toml`'s.
fn test_command(ctx: &Ctx, agency_name: &str, flag: Option<&str>) -> Result<String> {
    if flag.is_some() {
        may_choose_test_command(ctx)?;
    }
    let from_agency = AgencySpec::load(&ctx.ws.agency_dir(agency_name))
        .ok()
        .and_then(|s| s.test_command);
    flag.map(str::to_string)
        .or(from_agency)
        .or_else(|| ctx.ws.config.sandbox.test_command.clone())
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            Error::user(
                "no test command",
                "pass --test-command CMD, or set test_command in agency.json or [sandbox] in agency.toml",
            )
        })
}

/// `--test-command` runs any shell command, and `submit`/`sandbox deploy`
/// are pre-approved for coordinators: in an agent's pane (AGENCY_AGENT
/// set) only an agent whose CLI approves everything anyway (`all`) may
/// choose it. The environment is the agent's: a guard, not a boundary.
fn may_choose_test_command(ctx: &Ctx) -> Result<()> {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let Some(agent) = env("AGENCY_AGENT") else {
        return Ok(());
    };
    let level = env("AGENCY_NAME")
        .filter(|a| validate_name("agency", a).is_ok())
        .and_then(|a| AgencySpec::load(&ctx.ws.agency_dir(&a)).ok())
        .and_then(|s| s.agent(&agent).map(|a| agent_permissions(&ctx.ws, a)));
    if level == Some(Permissions::All) {
        return Ok(());
    }
    Err(Error::user(
        "--test-command is refused in an agent's pane (AGENCY_AGENT is set) unless that agent's permissions are `all`: it would run any command without asking",
        "leave --test-command out: the agency's test_command (agency.json, else [sandbox] in agency.toml) is run; the human sets it",
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxReport {
    pub agency: String,
    pub branch: String,
    pub commit: String,
    pub passed: bool,
    #[serde(flatten)]
    pub run: TestRun,
    /// Where the branch was checked out; removed again unless kept.
    pub worktree: String,
    pub kept: bool,
}

/// Hears how a sandbox test run goes (for a progress display).
pub trait Watch {
    /// The tests of `commit` start, run by `command`.
    fn started(&mut self, _command: &str, _commit: &str) {}
    /// They have run `elapsed` so far and printed `output` since last time.
    fn progress(&mut self, _elapsed: Duration, _output: &[u8]) {}
}

/// Nobody watching.
impl Watch for () {}

/// Checks `branch` out into a worktree under `sandbox/testing/`, runs the
/// tests there, and removes the worktree again unless `keep`.
pub fn sandbox_deploy(
    ctx: &Ctx,
    agency_name: &str,
    branch: &str,
    command_flag: Option<&str>,
    timeout: Duration,
    keep: bool,
) -> Result<SandboxReport> {
    sandbox_deploy_watched(
        ctx,
        agency_name,
        branch,
        command_flag,
        timeout,
        keep,
        &mut (),
    )
}

/// `sandbox_deploy`, with `watch` told how the tests go.
pub fn sandbox_deploy_watched(
    ctx: &Ctx,
    agency_name: &str,
    branch: &str,
    command_flag: Option<&str>,
    timeout: Duration,
    keep: bool,
    watch: &mut dyn Watch,
) -> Result<SandboxReport> {
    validate_name("agency", agency_name)?;
    require_agency(ctx, agency_name)?;
    let command = test_command(ctx, agency_name, command_flag)?;
    let project = project(ctx)?;
    let commit = project.branch_commit(branch)?;
    // From here a Ctrl-C, SIGTERM or SIGHUP stops the tests and removes
    // the worktree before the command ends.
    let _guard = interrupt::Guard::new();
    sweep_abandoned(&project);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // The name carries the time and this process: a run whose process is
    // gone is abandoned, and the next run sweeps it.
    let name = format!("{agency_name}-{stamp}-{}", std::process::id());
    let testing = ctx.ws.root.join("sandbox").join("testing");
    fs::create_dir_all(&testing).map_err(|e| Error::io(testing.display(), e))?;
    let dir = testing.join(&name);
    project.add_sandbox(&name, &dir, &commit)?;
    let log = ctx
        .ws
        .root
        .join("sandbox")
        .join("logs")
        .join(format!("{name}.log"));
    watch.started(&command, &commit);
    let run = match interrupt::pending() {
        None => testrun::run_watched(&dir, &command, timeout, &log, &mut |t, out| {
            watch.progress(t, out)
        }),
        Some(_) => Err(Error::user("interrupted before the tests", "run it again")),
    };
    if !keep || run.is_err() {
        project.remove_sandbox(&name)?;
    } else {
        project.keep_sandbox(&name)?;
    }
    if let Some(sig) = interrupt::pending() {
        return Err(Error::user(
            format!(
                "interrupted by {}: the tests were stopped and the sandbox removed",
                interrupt::name(sig)
            ),
            "run it again when you are ready",
        ));
    }
    let run = run?;
    Ok(SandboxReport {
        agency: agency_name.to_string(),
        branch: branch.to_string(),
        commit,
        passed: run.ok(),
        run,
        worktree: dir.display().to_string(),
        kept: keep,
    })
}

/// Removes what runs that were killed left behind: their test processes,
/// worktrees and branches. Kept sandboxes and live runs stay.
fn sweep_abandoned(project: &Project) {
    for sb in project.sandboxes().unwrap_or_default() {
        if sb.kept || run_alive(&sb.name) {
            continue;
        }
        testrun::end_leftovers(&sb.name);
        let _ = project.remove_sandbox(&sb.name);
    }
}

/// Whether the run named `<agency>-<millis>-<pid>` still has its process:
/// that pid lives and started before the run did (not a reused pid).
fn run_alive(name: &str) -> bool {
    let mut parts = name.rsplit('-');
    let (Some(Ok(pid)), Some(Ok(stamp))) = (
        parts.next().map(str::parse::<u32>),
        parts.next().map(str::parse::<u128>),
    ) else {
        return true; // not a name we made: not ours to judge
    };
    match process::start_millis(pid) {
        Some(Some(started)) => started <= stamp + 2000,
        Some(None) => false,
        // No /proc to tell: alive if the pid is.
        None => process::exists(pid),
    }
}

#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub agency: String,
    pub task: String,
    pub branch: Option<String>,
    pub title: Option<String>,
    pub demo: Option<String>,
    pub test_command: Option<String>,
    pub timeout: Duration,
}

/// `agency submit`: sandbox test + diff stats + a pending approval item
/// pinned to the tested commit.
pub fn submit(ctx: &mut Ctx, r: &SubmitRequest) -> Result<ApprovalRow> {
    submit_watched(ctx, r, &mut ())
}

/// `submit`, with `watch` told how the tests go.
pub fn submit_watched(
    ctx: &mut Ctx,
    r: &SubmitRequest,
    watch: &mut dyn Watch,
) -> Result<ApprovalRow> {
    validate_name("agency", &r.agency)?;
    if r.task.trim().is_empty() {
        return Err(Error::user(
            "the task is empty",
            "pass --task \"what was done\"",
        ));
    }
    let branch = branch_or_env(r.branch.as_deref())?;
    let base = ctx.ws.base_branch();
    // Check the cheap things before spending a test run.
    require_agency(ctx, &r.agency)?;
    let task = tasks::hooks::before_submit(ctx, &r.task)?;
    let stats: DiffStats = {
        let p = project(ctx)?;
        let commit = p.branch_commit(&branch)?;
        p.branch_commit(&base)?;
        refuse_resubmission(ctx, &p, &branch, &commit, &base)?;
        p.diff_stats(&base, &commit)?
    };
    let report = sandbox_deploy_watched(
        ctx,
        &r.agency,
        &branch,
        r.test_command.as_deref(),
        r.timeout,
        false,
        watch,
    )?;
    let previous = ctx.store.latest_for_task(&r.agency, &r.task)?;
    let item = ApprovalRow {
        id: 0,
        agency: r.agency.clone(),
        task: r.task.clone(),
        title: r
            .title
            .clone()
            .or_else(|| task.as_ref().map(|t| t.title.clone()))
            .unwrap_or_else(|| r.task.clone()),
        branch,
        commit: report.commit.clone(),
        base_branch: base,
        status: ApprovalStatus::Pending,
        tests_passed: report.run.summary.passed.map(|n| n as i64),
        tests_failed: report.run.summary.failed.map(|n| n as i64),
        coverage: report.run.summary.coverage,
        test_command: report.run.command.clone(),
        test_exit_code: report.run.exit_code.map(i64::from),
        test_seconds: report.run.seconds,
        test_log: report.run.log.clone(),
        files_changed: stats.files_changed as i64,
        insertions: stats.insertions as i64,
        deletions: stats.deletions as i64,
        demo: r.demo.clone(),
        feedback: None,
        decided_by: None,
        decision_note: None,
        merge_commit: None,
        previous_id: previous.map(|p| p.id),
        created_at: String::new(),
        decided_at: None,
    };
    let item = ctx.store.insert_approval(&item)?;
    ctx.store.write_approvals_mirror()?;
    if let Some(t) = task {
        tasks::hooks::submitted(ctx, t.id, &item)?;
    }
    Ok(item)
}

/// A commit already waiting for a decision, or already in the base branch,
/// is not worth a test run and a second item.
fn refuse_resubmission(
    ctx: &Ctx,
    p: &Project,
    branch: &str,
    commit: &str,
    base: &str,
) -> Result<()> {
    let me = crate::workspace::invocation(&ctx.ws);
    if let Some(item) = ctx
        .store
        .approvals(Some(ApprovalStatus::Pending))?
        .into_iter()
        .find(|i| i.branch == branch && i.commit == commit)
    {
        return Err(Error::user(
            format!(
                "{branch} at {} is already waiting for a decision as approval #{}",
                &commit[..10],
                item.id
            ),
            format!(
                "decide it (`{me} approvals`, or `{me} approve {id}` / `{me} reject {id} --feedback TEXT`), or commit more work on {branch} and submit that",
                id = item.id
            ),
        ));
    }
    if p.is_merged(base, commit)? {
        return Err(Error::user(
            format!("{branch} has nothing to merge: {base} already has its commit {}", &commit[..10]),
            format!("commit the work on {branch} first (is it the branch you meant? `git log {base}..{branch}` is empty)"),
        ));
    }
    Ok(())
}

/// Serializes decisions across processes, so an item is never decided twice.
struct DecisionLock(#[allow(dead_code)] File);

fn decision_lock(ctx: &Ctx) -> Result<DecisionLock> {
    let path = ctx.ws.registry_dir().join("approvals.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(path.display(), e))?;
    f.lock().map_err(|e| Error::io(path.display(), e))?;
    Ok(DecisionLock(f))
}

fn pending_item(ctx: &Ctx, id: i64) -> Result<ApprovalRow> {
    let item = ctx.store.approval(id)?.ok_or_else(|| {
        Error::user(
            format!("no approval item #{id}"),
            "see the queue with `agency approvals --json`",
        )
    })?;
    if item.status != ApprovalStatus::Pending {
        return Err(Error::user(
            format!(
                "approval #{id} was already {} ({})",
                item.status,
                item.decided_at.as_deref().unwrap_or("earlier")
            ),
            "an item is decided once; submit the branch again for a new decision",
        ));
    }
    Ok(item)
}

/// Who decides: `AGENCY_USER`, else the login name, else `human`.
fn decider() -> String {
    ["AGENCY_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "human".into())
}

#[derive(Debug, Clone, Serialize)]
pub struct ApproveReport {
    pub id: i64,
    pub task: String,
    pub branch: String,
    pub base_branch: String,
    /// `fast-forward`, `merge-commit` or `up-to-date`.
    pub merge: String,
    pub merge_commit: String,
    /// Whether a checkout of the base branch was updated.
    pub checkout_updated: bool,
    /// The checkouts of the base branch whose files followed the merge.
    pub checkouts: Vec<String>,
    /// Files left as they were because they were neither the old nor the
    /// new version: somebody's changes, now on top of the merge.
    pub kept: Vec<String>,
    pub message_id: Option<i64>,
    /// This run finished an approve of this item that was interrupted.
    pub resumed: bool,
    /// An interrupted approve of another item that was finished first.
    pub finished_first: Option<i64>,
    /// What went wrong after the decision stood (a log not written...).
    pub warnings: Vec<String>,
}

impl ApproveReport {
    fn new(item: &ApprovalRow, merge: &str, merge_commit: &str) -> ApproveReport {
        ApproveReport {
            id: item.id,
            task: item.task.clone(),
            branch: item.branch.clone(),
            base_branch: item.base_branch.clone(),
            merge: merge.to_string(),
            merge_commit: merge_commit.to_string(),
            checkout_updated: false,
            checkouts: Vec::new(),
            kept: Vec::new(),
            message_id: None,
            resumed: false,
            finished_first: None,
            warnings: Vec::new(),
        }
    }
}

/// `agency approve`: merges the tested commit into the base branch and tells
/// the agency's coordinator. A conflict, a moved branch or a dirty checkout
/// changes nothing and leaves the item pending. An approve interrupted
/// earlier (of this item or another) is finished first.
pub fn approve(ctx: &mut Ctx, id: i64, note: Option<&str>, force: bool) -> Result<ApproveReport> {
    let _lock = decision_lock(ctx)?;
    let finished_first = match resume(ctx)? {
        Some(r) if r.id == id => return Ok(r),
        other => other.map(|r| r.id),
    };
    let item = pending_item(ctx, id)?;
    if !item.passed() && !force {
        return Err(Error::user(
            format!(
                "approval #{id} did not pass its tests ({} failed, exit code {})",
                item.tests_failed.map_or("?".into(), |n| n.to_string()),
                item.test_exit_code.map_or("none".into(), |c| c.to_string())
            ),
            "reject it with feedback, or approve anyway with --force",
        ));
    }
    let project = project(ctx)?;
    let by = decider();
    let message = format!(
        "Merge approval #{id}: {} ({})\n\nApproved-by: {by}\nAgency: {}\nTested-commit: {}\n",
        item.task, item.branch, item.agency, item.commit
    );
    let (outcome, landing) =
        project.prepare_merge(&item.base_branch, &item.branch, &item.commit, &message)?;
    let (kind, merge_commit) = match outcome {
        MergeOutcome::FastForward { commit } => ("fast-forward", commit),
        MergeOutcome::MergeCommit { commit } => ("merge-commit", commit),
        MergeOutcome::UpToDate { commit } => ("up-to-date", commit),
        MergeOutcome::Conflict { files } => {
            return Err(Error::user(
                format!(
                    "{} conflicts with {} in: {}; nothing was changed and #{id} stays pending",
                    item.branch,
                    item.base_branch,
                    files.join(", ")
                ),
                format!(
                    "ask {} to merge {} into {} and resolve them, then submit again",
                    item.agency, item.base_branch, item.branch
                ),
            ))
        }
        MergeOutcome::Moved { tested, now } => {
            return Err(Error::user(
                format!(
                    "{} moved since it was tested ({} then, {} now); nothing was changed",
                    item.branch,
                    &tested[..tested.len().min(10)],
                    &now[..now.len().min(10)]
                ),
                format!(
                "submit it again to test the new commit: agency submit {} --task {:?} --branch {}",
                item.agency, item.task, item.branch
            ),
            ))
        }
    };
    // Checked before anything moves: the coordinator's message must fit.
    notice(&item, note, &merge_commit)?;
    let mut report = ApproveReport::new(&item, kind, &merge_commit);
    report.finished_first = finished_first;
    let landed = landing.is_some();
    if let Some(landing) = landing {
        let j = landing::Journal {
            id,
            merge: kind.to_string(),
            by: by.clone(),
            note: note.map(str::to_string),
            landing,
        };
        landing::land(ctx, &project, &j, &mut report)?;
    }
    conclude(ctx, &item, &by, note, report, landed)
}

/// Finishes an approve interrupted earlier, if any (what `approve` and
/// `reject` do first); says what it did.
pub fn finish_interrupted(ctx: &mut Ctx) -> Result<Option<ApproveReport>> {
    let _lock = decision_lock(ctx)?;
    resume(ctx)
}

fn resume(ctx: &mut Ctx) -> Result<Option<ApproveReport>> {
    let Some((j, done)) = landing::resume(ctx)? else {
        return Ok(None);
    };
    let Some(item) = ctx.store.approval(j.id)? else {
        landing::clear(ctx);
        return Ok(None);
    };
    let mut r = ApproveReport::new(&item, &j.merge, &j.landing.new);
    r.resumed = true;
    r.checkout_updated = !done.checkouts.is_empty();
    (r.checkouts, r.kept, r.warnings) = (done.checkouts, done.kept, done.warnings);
    conclude(ctx, &item, &j.by, j.note.as_deref(), r, true).map(Some)
}

/// The message that tells the coordinator of an approval.
fn notice(item: &ApprovalRow, note: Option<&str>, merge_commit: &str) -> Result<NewMessage> {
    let payload = json!({
        "type": "approved",
        "id": item.id,
        "task": item.task,
        "branch": item.branch,
        "base_branch": item.base_branch,
        "merge_commit": merge_commit,
        "note": note,
    });
    bus::inter_message("human", &item.agency, payload)
}

/// Records an approval whose merge is in place (`landed`: the base branch
/// moved): the decision and the coordinator's message in one transaction,
/// then the logs; then the plan is done with.
fn conclude(
    ctx: &mut Ctx,
    item: &ApprovalRow,
    by: &str,
    note: Option<&str>,
    mut r: ApproveReport,
    landed: bool,
) -> Result<ApproveReport> {
    let decision = Decision {
        id: item.id,
        agency: item.agency.clone(),
        status: ApprovalStatus::Approved,
        by: by.to_string(),
        note: note.map(str::to_string),
        feedback: None,
        merge_commit: Some(r.merge_commit.clone()),
    };
    let msg = notice(item, note, &r.merge_commit)?;
    let id = match ctx.store.decide_and_queue(&decision, &msg) {
        Ok(id) => id,
        Err(e) if landed => {
            return Err(Error::user(
                format!(
                    "{} was merged into {} as {}{}, but the registry could not record the decision: {e}",
                    item.branch,
                    item.base_branch,
                    &r.merge_commit[..r.merge_commit.len().min(10)],
                    if r.checkout_updated { " (its checkout followed)" } else { "" }
                ),
                format!(
                    "fix that, then run `agency approve {}` again: it records the decision without merging again",
                    item.id
                ),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    // The item's tasks are done (a rerun finds them done already).
    if let Err(e) = tasks::hooks::approved(ctx, item, &r.merge_commit) {
        r.warnings.push(format!(
            "the decision is recorded, but its task is not done: {e}"
        ));
    }
    if item.status != ApprovalStatus::Pending {
        // Decided by the run that was interrupted; only its plan was left.
        landing::clear(ctx);
        return Ok(r);
    }
    r.message_id = id;
    if let Err(e) = bus::queued(ctx) {
        r.warnings.push(format!(
            "the coordinator's message #{} is queued, but: {e}",
            r.message_id.unwrap_or(0)
        ));
    }
    if let Err(e) = record_decision(
        ctx,
        item,
        ApprovalStatus::Approved,
        by,
        note.unwrap_or(""),
        Some(&r.merge_commit),
    ) {
        r.warnings.push(format!(
            "the decision is recorded, but not in the logs: {e}"
        ));
    }
    landing::clear(ctx);
    Ok(r)
}

/// `agency reject`: marks it rejected and sends the feedback to the
/// agency's coordinator, both or neither.
pub fn reject(ctx: &mut Ctx, id: i64, feedback: &str) -> Result<Option<i64>> {
    if feedback.trim().is_empty() {
        return Err(Error::user(
            "feedback is required to reject",
            "say what to change: agency reject ID --feedback \"...\"",
        ));
    }
    let _lock = decision_lock(ctx)?;
    resume(ctx)?;
    let item = pending_item(ctx, id)?;
    let by = decider();
    let payload = json!({
        "type": "rejected",
        "id": id,
        "task": item.task,
        "branch": item.branch,
        "feedback": feedback,
    });
    let msg = bus::inter_message("human", &item.agency, payload).map_err(|e| {
        Error::user(
            format!("the feedback cannot be sent: {e}; #{id} stays pending"),
            "shorten the feedback (put details in a file in the project and point to it)",
        )
    })?;
    let decision = Decision {
        id,
        agency: item.agency.clone(),
        status: ApprovalStatus::Rejected,
        by: by.clone(),
        note: None,
        feedback: Some(feedback.to_string()),
        merge_commit: None,
    };
    let message_id = ctx.store.decide_and_queue(&decision, &msg)?;
    // The decision and the message stand from here: say so if the rest fails.
    bus::queued(ctx)
        .and_then(|_| record_decision(ctx, &item, ApprovalStatus::Rejected, &by, feedback, None))
        .and_then(|_| tasks::hooks::rejected(ctx, &item, feedback))
        .map_err(|e| {
            Error::user(
                format!(
                    "#{id} is rejected and its feedback queued as message #{}, but: {e}",
                    message_id.unwrap_or(0)
                ),
                "fix that; the decision needs nothing more (see it with `agency approvals --status rejected --json`)",
            )
        })?;
    Ok(message_id)
}

/// The approval mirror, and `registry/decisions.md` (the decision's event
/// was recorded with it).
fn record_decision(
    ctx: &mut Ctx,
    item: &ApprovalRow,
    status: ApprovalStatus,
    by: &str,
    text: &str,
    merge_commit: Option<&str>,
) -> Result<()> {
    ctx.store.write_approvals_mirror()?;
    let path: PathBuf = ctx.ws.registry_dir().join("decisions.md");
    let now = humantime::format_rfc3339_seconds(SystemTime::now());
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(path.display(), e))?;
    let detail = match merge_commit {
        Some(c) => format!("merged as {}", &c[..c.len().min(10)]),
        None => "not merged".into(),
    };
    let quoted = if text.is_empty() {
        String::new()
    } else {
        format!("\n  > {}", text.replace('\n', "\n  > "))
    };
    writeln!(
        f,
        "- {now} **{status}** #{} `{}` ({}, {} @ {}) by {by}: {detail}{quoted}",
        item.id,
        item.task,
        item.agency,
        item.branch,
        &item.commit[..item.commit.len().min(10)]
    )
    .map_err(|e| Error::io(path.display(), e))
}
