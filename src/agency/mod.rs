//! Agencies: their specs and templates, and bringing them up in tmux
//! (create and reconcile), listing, status and kill.

pub mod answer;
mod plan;

pub mod templates;

use crate::context::Ctx;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::model::spec::{validate_name, AgencySpec, AgentSpec};
use crate::model::Permissions;
use crate::model::{AgencyState, Event, Layout, Role};
use crate::os::git::{Project, WorktreeState};
use crate::os::process::{self, Ended};
use crate::os::tmux::{PaneInfo, PaneSpec};
use crate::runtime::permissions::{self, Grant};
use crate::runtime::profile::{self, Choice, Profile};
use crate::runtime::SHELLS;
use crate::store::{AgencyRow, AgentRow};
use crate::workspace::{inside, quote};
use crate::workspace::{Workspace, WorkspaceError};
use templates::Overrides;

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: String,
    pub template: Option<String>,
    pub overrides: Overrides,
    /// Restart agents that run in a folder they no longer work in even
    /// when a program other than a shell runs there.
    pub move_agents: bool,
}

crate::model::closed_set! {
    /// What bringing an agency up was: `create` (a new agency), `start` (a
    /// known agency without a session) or `reconcile` (its session was up).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Bringing ("action") {
        Create = "create",
        Start = "start",
        Reconcile = "reconcile",
    }
}

/// An agent left running where it no longer works (see `CreateReport`).
#[derive(Debug, Clone, Serialize)]
pub struct Stale {
    pub agent: String,
    /// What runs in its pane.
    pub running: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    pub name: String,
    pub session: String,
    pub action: Bringing,
    pub template: String,
    pub layout: String,
    /// Panes made by this call.
    pub created: Vec<String>,
    /// Agents started again in the pane their exited program left.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// Agents restarted in the folder they work in now (a project or
    /// worktree set after they started).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<String>,
    /// Agents still running in their old folder because something other
    /// than a shell runs in their pane (`create --move` restarts them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<Stale>,
    pub agents: Vec<AgentRow>,
    /// Flags ignored because the agency already existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// Each agent's permissions (`bus`, `ask`, `project`, `all`).
    pub permissions: std::collections::BTreeMap<String, Permissions>,
    /// What the human should know: agents that approve everything, and
    /// permissions that could not be given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `agency create`: makes the agency's folder from a template if it has none,
/// then brings its session up or repairs it. On failure nothing made by this
/// call is left behind.
pub fn create(ctx: &mut Ctx, opts: &CreateOptions) -> Result<CreateReport> {
    validate_name("agency", &opts.name)?;
    ctx.ws.check_path_entry()?;
    let _lock = ctx.ws.lock_agency(&opts.name)?;
    let dir = ctx.ws.agency_dir(&opts.name);
    let exists = dir.join("agency.json").is_file();
    let fresh = if exists {
        None
    } else {
        let wanted = opts.template.as_deref().unwrap_or(&opts.name);
        let tpl_dir = ctx.ws.templates_dir();
        let template = match templates::find(&tpl_dir, wanted)? {
            Some(t) => t,
            None if opts.template.is_none() => templates::find(&tpl_dir, templates::GENERIC)?
                .ok_or_else(|| {
                    Error::user("the generic template is missing", "reinstall agency")
                })?,
            None => {
                let names: Vec<String> = templates::list(&tpl_dir)?
                    .into_iter()
                    .map(|t| t.name)
                    .collect();
                return Err(Error::user(
                    format!("unknown template {wanted:?}"),
                    format!(
                        "choose one of: {} (see `agency templates`)",
                        names.join(", ")
                    ),
                ));
            }
        };
        let spec = templates::instantiate(&template, &opts.name, &opts.overrides)?;
        Some((template, spec))
    };
    ctx.tmux.probe()?;

    let mut ignored = Vec::new();
    if let Some((template, spec)) = &fresh {
        let parent = ctx.ws.agencies_dir();
        fs::create_dir_all(&parent).map_err(|e| Error::io(parent.display(), e))?;
        // Built aside and renamed in, so a failure leaves no half-made folder.
        let tmp = tempfile::Builder::new()
            .prefix(".creating-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(parent.display(), e))?;
        templates::write_agency(template, spec, tmp.path())?;
        fs::rename(tmp.path(), &dir).map_err(|e| Error::io(dir.display(), e))?;
        // The folder now lives at `dir`; nothing for the guard to remove.
        let _ = tmp.keep();
    } else {
        let o = &opts.overrides;
        for (flag, given) in [
            ("--template", opts.template.is_some()),
            ("--agents", o.agents.is_some()),
            ("--coordinator", o.coordinator.is_some()),
            ("--capabilities", o.capabilities.is_some()),
            ("--agent-command", o.agent_command.is_some()),
            ("--layout", o.layout.is_some()),
        ] {
            if given {
                ignored.push(flag.to_string());
            }
        }
    }

    let result = bring_up(ctx, &dir, opts.move_agents);
    if result.is_err() && fresh.is_some() {
        let _ = fs::remove_dir_all(&dir);
    }
    let mut report = result?;
    report.ignored = ignored;
    // Messages queued while the agency was down can now be delivered.
    crate::bus::router::ensure_running(&ctx.ws)?;
    crate::bus::router::wake(&ctx.ws.registry_dir());
    Ok(report)
}

type Profiles = std::collections::BTreeMap<String, Profile>;

/// Every profile an agent names must exist (before anything is made).
fn check_profiles(spec: &AgencySpec, profiles: &Profiles) -> Result<()> {
    for a in std::iter::once(&spec.coordinator).chain(&spec.agents) {
        if let Some(p) = &a.profile {
            if !profiles.contains_key(p) {
                return Err(Error::user(
                    format!("agent {:?} names the unknown profile {p:?}", a.name),
                    format!(
                        "use one of: {} (or add it to profiles.toml at the workspace root)",
                        profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A role file that exists must be inside the agency folder: a link out of
/// it (to a key, a password file) would be typed into an agent's pane.
fn check_role_files(spec: &AgencySpec, dir: &Path) -> Result<()> {
    for a in std::iter::once(&spec.coordinator).chain(&spec.agents) {
        let path = dir.join(&a.role_file);
        if fs::symlink_metadata(&path).is_ok() && inside(dir, &a.role_file).is_none() {
            return Err(Error::user(
                format!(
                    "the role file of {:?} ({}) leads outside the agency folder",
                    a.name,
                    path.display()
                ),
                "replace the link by the file itself",
            ));
        }
    }
    Ok(())
}

/// Queues each newly started agent CLI its role file (`Briefing::Sent`),
/// from `agency`; the router types it once the agent's prompt is first up.
fn brief(ctx: &mut Ctx, agency: &str, slots: &[Slot], created: &[String]) -> Result<()> {
    let mut msgs = Vec::new();
    for s in slots.iter().filter(|s| created.contains(&s.name)) {
        let Briefing::Sent(path) = &s.briefing else {
            continue;
        };
        let Ok(role) = fs::read_to_string(path) else {
            continue;
        };
        let body = format!(
            "You are {} in the agency {agency}. Your role file ({}) follows.\n\n{}",
            s.name,
            path.display(),
            role.trim_end()
        );
        msgs.push(crate::bus::intra_message(
            "agency",
            agency,
            &s.name,
            "BRIEFING".into(),
            crate::model::sanitize(&body),
        ));
    }
    if !msgs.is_empty() {
        crate::bus::queue(ctx, &msgs)?;
    }
    Ok(())
}

/// A pane the tool keeps for an agency, in window order.
struct Slot {
    name: String,
    role: Role,
    window: String,
    command: Option<String>,
    dir: PathBuf,
    /// The agent's own worktree and branch.
    worktree: Option<PathBuf>,
    branch: Option<String>,
    /// The setup command failed: the agent is not started.
    setup_error: Option<String>,
    /// What becomes of the agent's role file when it starts.
    briefing: Briefing,
    /// Variables its profile removes from its environment.
    unset_env: Vec<String>,
    /// What its CLI may do without asking, and how its profile says so.
    permissions: Permissions,
    grant: Grant,
}

/// An agent's role file at its start: sent through the bus to an agent CLI
/// whose profile asks for it (typed once its prompt is up), shown in a
/// shell's pane before the shell starts (nothing is ever typed into a
/// shell), else left alone (the scripted agent, programs without a profile).
enum Briefing {
    None,
    Sent(PathBuf),
    Shown(PathBuf),
}

fn slots(ws: &Workspace, spec: &AgencySpec, layout: Layout, profiles: &Profiles) -> Vec<Slot> {
    let work_dir = fs::canonicalize(ws.project_dir()).unwrap_or_else(|_| ws.root.clone());
    let default_cmd = ws.default_agent_command();
    // The command each agent runs, what becomes of its role file, and the
    // permissions its CLI is given.
    let start = |a: &AgentSpec| {
        let (command, profile) = profile::resolve(profiles, a, &default_cmd);
        let level = agent_permissions(ws, a);
        // A role file linked from outside the agency folder is never read
        // into a pane (create refuses it first; see `check_role_files`).
        let role = inside(&ws.agency_dir(&spec.name), &a.role_file);
        let briefing = match (profile, role) {
            (_, None) => Briefing::None,
            (_, Some(role)) if !role.is_file() => Briefing::None,
            (Some(p), Some(role)) if p.brief => Briefing::Sent(role),
            (Some(p), Some(role)) if p.name == "shell" => Briefing::Shown(role),
            _ => Briefing::None,
        };
        let unset_env = profile.map(|p| p.unset_env.clone()).unwrap_or_default();
        (command, briefing, unset_env, level)
    };
    let agent_window = |name: &str| match layout {
        Layout::Windows => name.to_string(),
        Layout::Panes => "agents".to_string(),
    };
    let agent = |name: &str, role: Role, a: &AgentSpec| {
        let (command, briefing, unset_env, permissions) = start(a);
        let window = agent_window(name);
        Slot {
            briefing,
            unset_env,
            permissions,
            ..Slot::new(name, role, window, Some(command), work_dir.clone())
        }
    };
    let mut out = vec![agent("coordinator", Role::Coordinator, &spec.coordinator)];
    out.extend(
        spec.agents
            .iter()
            .map(|a| agent(&a.name, Role::Specialist, a)),
    );
    let tools = ws.agency_dir(&spec.name);
    out.push(Slot::new("tools", Role::Tools, "tools".into(), None, tools));
    let sandbox = ws.root.join("sandbox").join("testing");
    out.push(Slot::new(
        "sandbox",
        Role::Sandbox,
        "sandbox".into(),
        None,
        sandbox,
    ));
    out
}

impl Slot {
    /// A pane in `dir` running `command` (none: a shell), with nothing
    /// briefed, unset or granted (yet).
    fn new(name: &str, role: Role, window: String, command: Option<String>, dir: PathBuf) -> Slot {
        Slot {
            name: name.into(),
            role,
            window,
            command,
            dir,
            worktree: None,
            branch: None,
            setup_error: None,
            briefing: Briefing::None,
            unset_env: Vec::new(),
            permissions: Permissions::Ask,
            grant: Grant::default(),
        }
    }
}

/// What each agent's permissions add to its start, now that its working
/// folder is known.
fn grant_permissions(ws: &Workspace, spec: &AgencySpec, slots: &mut [Slot], profiles: &Profiles) {
    let default_cmd = ws.default_agent_command();
    for s in slots.iter_mut() {
        let Some(a) = spec.agent(&s.name) else {
            continue;
        };
        let Some(p) = profile::resolve(profiles, a, &default_cmd).1 else {
            continue;
        };
        let places = permissions::Places {
            agency: spec.name.clone(),
            agent: s.name.clone(),
            workdir: s.dir.clone(),
            rules_file: ws
                .registry_dir()
                .join("permissions")
                .join(&spec.name)
                .join(format!("{}.toml", s.name)),
            registry: ws.registry_dir(),
            home: std::env::var_os("HOME").unwrap_or_default().into(),
        };
        s.grant = permissions::grant(p, s.permissions, s.role == Role::Coordinator, &places);
    }
}

/// Gives each agent that wants one its own worktree on branch
/// `agency/<Agency>/<agent>` under `agencies/<Agency>/worktrees/<agent>`
/// (kept as it is when it exists), and runs the setup command in new ones.
/// Nothing happens when the project is no git repository or worktrees are
/// turned off.
fn prepare_worktrees(
    ctx: &mut Ctx,
    spec: &AgencySpec,
    slots: &mut [Slot],
    prior: &[AgentRow],
) -> Result<()> {
    let enabled = spec
        .worktrees
        .or(ctx.ws.config.agents.worktrees)
        .unwrap_or(true);
    if !enabled {
        return Ok(());
    }
    let Ok(project) = Project::open(&ctx.ws.project_dir()) else {
        return Ok(());
    };
    let base = ctx.ws.base_branch();
    if project.branch_commit(&base).is_err() {
        // No base branch yet (an empty repository): nothing to branch from.
        return Ok(());
    }
    // Inside the project, our folders must never be committed.
    if let Some(workdir) = project.workdir().and_then(|w| fs::canonicalize(w).ok()) {
        if let Ok(rel) = ctx.ws.agencies_dir().strip_prefix(&workdir) {
            project.exclude(&format!("/{}/*/worktrees/", rel.display()))?;
        }
    }
    let setup = spec
        .setup_command
        .clone()
        .or_else(|| ctx.ws.config.agents.setup_command.clone())
        .filter(|c| !c.trim().is_empty());
    for slot in slots.iter_mut() {
        let wants = match slot.role {
            Role::Coordinator => spec.coordinator.worktree == Some(true),
            Role::Specialist => spec
                .agents
                .iter()
                .find(|a| a.name == slot.name)
                .is_some_and(|a| a.worktree != Some(false)),
            _ => false,
        };
        if !wants {
            continue;
        }
        let dir = ctx
            .ws
            .agency_dir(&spec.name)
            .join("worktrees")
            .join(&slot.name);
        let branch = format!("agency/{}/{}", spec.name, slot.name);
        let made = project.ensure_worktree(
            &format!("{}-{}", spec.name, slot.name),
            &dir,
            &branch,
            &base,
        )?;
        let failed_before = prior
            .iter()
            .any(|a| a.name == slot.name && a.setup_error.is_some());
        if let Some(cmd) = &setup {
            if made || failed_before {
                slot.setup_error = run_setup(ctx, &spec.name, &slot.name, &dir, cmd)?;
            }
        }
        slot.dir = dir.clone();
        slot.worktree = Some(dir);
        slot.branch = Some(branch);
    }
    Ok(())
}

/// Runs the setup command in a new worktree; output to
/// `logs/setup-<agent>.log`. Returns why it failed, if it did.
fn run_setup(
    ctx: &mut Ctx,
    agency: &str,
    agent: &str,
    dir: &Path,
    cmd: &str,
) -> Result<Option<String>> {
    let log = ctx
        .ws
        .agency_dir(agency)
        .join("logs")
        .join(format!("setup-{agent}.log"));
    let run = process::Shell {
        command: cmd,
        dir,
        env: &[],
        log: &log,
        timeout: SETUP_TIMEOUT,
    };
    let ended = process::run_shell(&run, &mut |_, _| {})
        .map_err(|e| Error::io(format!("running {cmd:?}"), e))?;
    let error = match ended {
        Ended::Finished {
            exit_code: Some(0), ..
        } => None,
        Ended::Finished {
            timed_out: true, ..
        } => Some(format!("setup command timed out; see {}", log.display())),
        Ended::Finished { exit_code, .. } => Some(format!(
            "setup command exited with {}; see {}",
            exit_code.map_or("a signal".into(), |c| c.to_string()),
            log.display()
        )),
        Ended::Interrupted(_) => Some(format!(
            "setup command was interrupted; see {}",
            log.display()
        )),
    };
    ctx.record(Event::new(
        agency,
        "setup",
        json!({"agent": agent, "command": cmd, "ok": error.is_none(), "log": log.display().to_string()}),
    ))?;
    Ok(error)
}

/// How long a worktree's setup command may run.
const SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// An agent's permissions: its own in `agency.json`, else `[agents]
/// permissions` in `agency.toml`, else `bus`.
pub fn agent_permissions(ws: &Workspace, a: &AgentSpec) -> Permissions {
    a.permissions
        .or(ws.config.agents.permissions)
        .unwrap_or_default()
}

/// Whether the arguments of an agent's permissions can be given to its
/// command: only a simple one takes them (after its last word), not a
/// compound one (`a && b`, `x | y`).
fn grant_applies(cmd: &str, grant: &Grant) -> bool {
    grant.args.is_empty() || !is_compound(cmd)
}

/// More than one simple command (redirections keep it simple). Any
/// operator character counts, quoted or not: shlex reads words, not
/// operators, and a false "compound" only costs the `exec`.
fn is_compound(cmd: &str) -> bool {
    cmd.contains([';', '&', '|', '\n', '(', ')', '`', '{', '}'])
}

/// The pane's shell runs the agent command; `exec` makes the agent the
/// pane's foreground program (what readiness and status look at) whenever
/// the command is one simple command, e.g. `cat >> file` or `claude`.
fn launch_command(cmd: &str) -> String {
    let t = cmd.trim();
    if is_compound(t) || t.starts_with("exec ") || t.is_empty() {
        t.to_string()
    } else {
        format!("exec {t}")
    }
}

/// The shell command line of an agent's pane: `bin_dir` first on PATH, its
/// variables unset, its role file shown (shells), then its command.
///
/// PATH is set here, not with tmux's `-e`: tmux 3.3a gives a new pane the
/// PATH of the tmux client that asked for it, over `-e PATH=...`.
fn pane_command(
    cmd: &str,
    args: &[String],
    briefing: &Briefing,
    unset_env: &[String],
    bin_dir: &Path,
) -> String {
    let mut line = format!(
        "PATH={}:\"$PATH\"; export PATH; ",
        quote(&bin_dir.display().to_string())
    );
    if !unset_env.is_empty() {
        // Names only (profiles are checked), so nothing here needs quoting.
        line.push_str(&format!("unset {}; ", unset_env.join(" ")));
    }
    if let Briefing::Shown(role) = briefing {
        line.push_str(&format!("cat -- {}; ", quote(&role.display().to_string())));
    }
    line.push_str(&launch_command(cmd));
    if !is_compound(cmd) {
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
    }
    line
}

/// Makes `registry/bin/agency` a link to this very binary (however it was
/// started: `cargo run`, a path, installed, through a link), replaced in one
/// step, so every agent's `agency` is the one that brought it up.
/// A binary replaced or removed while it runs (an upgrade under a
/// long-lived monitor) is no target: the link stays, with a warning.
fn link_agency_bin(ws: &Workspace) -> Result<(PathBuf, Option<String>)> {
    ws.check_path_entry()?;
    let dir = ws.bin_dir();
    fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let link = dir.join("agency");
    let now = fs::read_link(&link).ok();
    if now.as_ref() == Some(&exe) {
        return Ok((dir, None));
    }
    // /proc/self/exe names a replaced binary `PATH (deleted)`.
    let gone = exe.to_string_lossy().ends_with(" (deleted)") || !exe.is_file();
    if gone {
        let keeps = now.map_or("no agency for the agents".to_string(), |t| {
            format!("it keeps pointing at {}", t.display())
        });
        return Ok((
            dir,
            Some(format!(
                "this agency binary is gone from {} (replaced or removed while it ran), so {} was not changed: {keeps}; the next create, restart or restore run by the installed binary links it",
                exe.display(),
                link.display()
            )),
        ));
    }
    let tmp = dir.join(format!(".agency.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&exe, &tmp).map_err(|e| Error::io(tmp.display(), e))?;
    fs::rename(&tmp, &link).map_err(|e| Error::io(link.display(), e))?;
    Ok((dir, None))
}

/// Writes the rules files the agents' permissions need; returns warnings
/// for agents whose permissions cannot be given and for those that approve
/// everything.
fn grant_files(slots: &[Slot]) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for s in slots {
        match (&s.grant.file, &s.grant.own_rules) {
            // In the working folder (the repository's): never through a link.
            (Some((path, text)), _) => match path.strip_prefix(&s.dir) {
                Ok(rel) => match crate::workspace::write_inside(&s.dir, rel, text.as_bytes()) {
                    Err(WorkspaceError::Invalid(e)) => warnings.push(format!(
                        "{}: its rules file was not written ({}), so its CLI asks for agency's commands as it always does",
                        s.name, e.message
                    )),
                    other => other?,
                },
                Err(_) => {
                    if let Some(dir) = path.parent() {
                        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
                    }
                    crate::workspace::write_atomic(path, text.as_bytes())?;
                }
            },
            (None, Some(stale)) => {
                if let Ok(rel) = stale.strip_prefix(&s.dir) {
                    let _ = crate::workspace::remove_inside(&s.dir, rel);
                }
            }
            (None, None) => {}
        }
        // A CLI that reads rules from its working folder reads all of them.
        let folder = |g: &Grant| {
            g.own_rules
                .as_ref()
                .and_then(|f| f.parent().map(Path::to_path_buf))
        };
        let shared = slots.iter().find(|o| {
            o.name != s.name
                && o.grant.file.is_some()
                && folder(&s.grant).is_some()
                && folder(&o.grant) == folder(&s.grant)
        });
        if let (Some(o), Permissions::Ask) = (shared, s.permissions) {
            warnings.push(format!(
                "{} shares its working folder with {}, whose pre-approved agency commands its CLI reads there too: give it its own worktree to be asked for them",
                s.name, o.name
            ));
        }
        let Some(cmd) = &s.command else { continue };
        if !grant_applies(cmd, &s.grant) {
            warnings.push(format!(
                "{}: its command is not one simple command, so its permissions {:?} are not given to it (its CLI asks as it always does)",
                s.name,
                s.permissions.as_str()
            ));
        }
        if s.permissions == Permissions::All {
            warnings.push(all_warning(&s.name));
        }
    }
    Ok(warnings)
}

/// Keeps rules files written into a git checkout out of its commits.
fn exclude_grant_files(ws: &Workspace, slots: &[Slot]) -> Result<()> {
    let mut patterns: Vec<&String> = slots
        .iter()
        .filter_map(|s| s.grant.exclude.as_ref())
        .collect();
    patterns.dedup();
    if patterns.is_empty() {
        return Ok(());
    }
    if let Ok(project) = Project::open(&ws.project_dir()) {
        for p in patterns {
            project.exclude(p)?;
        }
    }
    Ok(())
}

/// Removes the files agency wrote for an agency's permissions: its folder
/// in the registry, and the rules files it put in agents' working folders.
fn forget_grants(ws: &Workspace, agency: &str, agents: &[AgentRow]) -> Result<()> {
    let dir = ws.registry_dir().join("permissions").join(agency);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    let project = fs::canonicalize(ws.project_dir()).unwrap_or_else(|_| ws.root.clone());
    let profiles = profile::load(&ws.root).unwrap_or_else(|_| profile::builtins());
    for a in agents {
        let dirs = std::iter::once(project.clone()).chain(a.worktree.as_ref().map(PathBuf::from));
        for dir in dirs {
            for p in profiles.values() {
                if let Some(t) = &p.permissions.rules_file {
                    let rel = permissions::own_rules_file(t, agency, &a.name);
                    let _ = crate::workspace::remove_inside(&dir, Path::new(&rel));
                }
            }
        }
    }
    Ok(())
}

/// What `create` and `status` say of an agent whose permissions are `all`.
pub fn all_warning(agent: &str) -> String {
    format!("{agent} has permissions \"all\": its CLI runs every command and edit without asking")
}

/// Agents' panes stay when their program exits, to show why, with this
/// line (a tmux format) under the last screen. Whoever reads it may paste
/// it anywhere: the binary as it pastes, and `--home` always.
fn dead_note(ws: &Workspace, agency: &str, s: &Slot) -> Option<String> {
    let status = "status #{pane_dead_status}#{?pane_dead_signal, signal #{pane_dead_signal},}";
    let me = format!(
        "{} --home {}",
        crate::workspace::program(),
        quote(&ws.root.display().to_string())
    );
    s.role.is_agent().then(|| {
        format!(
            "{} exited ({status}): `{} status {} --restart` starts it again",
            crate::os::tmux::literal(&s.name),
            crate::os::tmux::literal(&me),
            crate::os::tmux::literal(agency)
        )
    })
}

/// The environment every pane of ours gets.
fn pane_env(ws: &Workspace, agency: &str, agent: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("AGENCY_HOME".to_string(), ws.root.display().to_string()),
        ("AGENCY_NAME".to_string(), agency.to_string()),
        ("AGENCY_AGENT".to_string(), agent.to_string()),
    ];
    if let Some(s) = ws.tmux_socket() {
        env.push(("AGENCY_TMUX_SOCKET".into(), s));
    }
    // Agents call `agency ...`: `registry/bin` on their PATH (see
    // `pane_command`) and AGENCY_BIN are this very binary.
    env.push((
        "AGENCY_BIN".into(),
        ws.bin_dir().join("agency").display().to_string(),
    ));
    env
}

fn bring_up(ctx: &mut Ctx, dir: &Path, move_agents: bool) -> Result<CreateReport> {
    let spec = load_named(dir)?;
    let name = spec.name.clone();
    let layout = spec.layout.unwrap_or_default();
    check_role_files(&spec, dir)?;
    let profiles = profile::load(&ctx.ws.root)?;
    check_profiles(&spec, &profiles)?;
    let (bin_dir, bin_warning) = link_agency_bin(&ctx.ws)?;
    let mut slots = slots(&ctx.ws, &spec, layout, &profiles);
    let root = ctx.ws.root.display().to_string();
    let _ = fs::create_dir_all(ctx.ws.root.join("sandbox").join("testing"));

    let all_panes = ctx.tmux.list_panes()?;
    let session_panes: Vec<&PaneInfo> = all_panes.iter().filter(|p| p.session == name).collect();
    check_ours(&name, &session_panes, &root, &tmux_cmd(ctx))?;
    let session_exists = !session_panes.is_empty();
    let previous = ctx.store.agency(&name)?;
    let prior_rows = ctx.store.agents(&name)?;
    prepare_worktrees(ctx, &spec, &mut slots, &prior_rows)?;
    grant_permissions(&ctx.ws, &spec, &mut slots, &profiles);
    let slots = slots;
    let mut warnings = grant_files(&slots)?;
    warnings.extend(bin_warning);
    exclude_grant_files(&ctx.ws, &slots)?;
    let prior: HashMap<String, Option<String>> = prior_rows
        .into_iter()
        .map(|a| (a.name, a.pane_id))
        .collect();
    let wants: Vec<plan::Want> = slots
        .iter()
        .map(|s| want(&ctx.ws, &name, s, &bin_dir))
        .collect();
    let now = plan::Now {
        session: &name,
        root: &root,
        layout,
        agents: 1 + spec.agents.len(),
        panes: &session_panes,
        prior: &prior,
        move_agents,
    };
    let plan = plan::plan(&wants, &now);
    let pane_of = make_panes(ctx, &name, &plan, &wants, layout, session_exists)?;
    let action = match (&previous, session_exists) {
        (_, true) => Bringing::Reconcile,
        (Some(_), false) => Bringing::Start,
        (None, false) => Bringing::Create,
    };
    let up = Up {
        spec,
        layout,
        slots,
        plan,
        pane_of,
        action,
        session_exists,
        warnings,
    };
    record_up(ctx, up)
}

/// `dir`'s agency.json, which must name the agency as its folder does.
fn load_named(dir: &Path) -> Result<AgencySpec> {
    let spec = AgencySpec::load(dir)?;
    if dir.file_name().and_then(|n| n.to_str()) != Some(spec.name.as_str()) {
        return Err(Error::user(
            format!(
                "{}/agency.json names the agency {:?}",
                dir.display(),
                spec.name
            ),
            "make `name` in agency.json match its folder name",
        ));
    }
    Ok(spec)
}

/// `tmux` as a printed command must name it: with `-L` when the workspace
/// uses a server of its own.
fn tmux_cmd(ctx: &Ctx) -> String {
    match ctx.tmux.socket() {
        Some(s) => format!("tmux -L {}", crate::workspace::quote(s)),
        None => "tmux".into(),
    }
}

/// Refuses a session of the agency's name that this workspace did not make.
fn check_ours(name: &str, session_panes: &[&PaneInfo], root: &str, tmux: &str) -> Result<()> {
    match session_panes.first() {
        Some(p) if p.agency_home != root => Err(Error::user(
            format!("a tmux session named {name:?} exists but was not made by this workspace"),
            format!("rename or end that session (`{tmux} rename-session -t {name} OTHER`), or pick another agency name"),
        )),
        _ => Ok(()),
    }
}

/// What the plan needs of a slot, with what runs in its pane.
fn want(ws: &Workspace, agency: &str, s: &Slot, bin_dir: &Path) -> plan::Want {
    let mut env = pane_env(ws, agency, &s.name);
    if let (Some(w), Some(b)) = (&s.worktree, &s.branch) {
        env.push(("AGENCY_WORKTREE".into(), w.display().to_string()));
        env.push(("AGENCY_BRANCH".into(), b.clone()));
    }
    let command = s
        .command
        .as_deref()
        .map(|c| pane_command(c, &s.grant.args, &s.briefing, &s.unset_env, bin_dir));
    plan::Want {
        name: s.name.clone(),
        role: s.role,
        window: s.window.clone(),
        dir: s.dir.clone(),
        blocked: s.setup_error.is_some(),
        pane: PaneSpec {
            name: s.window.clone(),
            dir: s.dir.display().to_string(),
            env,
            command,
            dead_note: dead_note(ws, agency, s),
        },
    }
}

/// Runs the plan in tmux: pass 1, then the splits of pass 2; returns each
/// slot's pane. On a failure, the session is ended only if this call made
/// it.
fn make_panes(
    ctx: &Ctx,
    name: &str,
    plan: &plan::Plan,
    wants: &[plan::Want],
    layout: Layout,
    session_exists: bool,
) -> Result<Vec<Option<String>>> {
    let mut pane_of = plan.live.clone();
    let (ids, made) = ctx.tmux.batch_partial(&plan.ops);
    if let Err(e) = made {
        // When `new-session` itself failed, the session of that name
        // belongs to someone else.
        if !session_exists && !ids.is_empty() {
            let _ = ctx.tmux.kill_session(name);
        }
        return Err(e.into());
    }
    for (slot, id) in plan.op_slots.iter().zip(ids) {
        pane_of[*slot] = Some(id);
    }
    let (ops, split_slots) = plan::splits(plan, wants, layout, &pane_of);
    if !ops.is_empty() {
        let ids = ctx.tmux.batch(&ops).inspect_err(|_| {
            if !session_exists {
                let _ = ctx.tmux.kill_session(name);
            }
        })?;
        for (slot, id) in split_slots.iter().zip(ids) {
            pane_of[*slot] = Some(id);
        }
    }
    Ok(pane_of)
}

/// An agency whose panes are up, to be recorded.
struct Up {
    spec: AgencySpec,
    layout: Layout,
    slots: Vec<Slot>,
    plan: plan::Plan,
    /// Each slot's pane now.
    pane_of: Vec<Option<String>>,
    action: Bringing,
    session_exists: bool,
    warnings: Vec<String>,
}

/// Records the agency as running with its agents' panes, briefs the agents
/// that were started, and says what was done.
fn record_up(ctx: &mut Ctx, up: Up) -> Result<CreateReport> {
    let (spec, slots, plan, layout) = (up.spec, up.slots, up.plan, up.layout);
    let name = spec.name.clone();
    let was_live: Vec<bool> = plan.live.iter().map(Option::is_some).collect();
    let (respawn, moves, stale) = (plan.respawn, plan.moves, plan.stale);
    let created: Vec<String> = slots
        .iter()
        .zip(&was_live)
        .filter(|(s, live)| !**live && s.setup_error.is_none())
        .map(|(s, _)| s.name.clone())
        .collect();
    let restarted: Vec<String> = respawn.iter().map(|&i| slots[i].name.clone()).collect();
    let moved: Vec<String> = moves.iter().map(|&i| slots[i].name.clone()).collect();
    let agents = agent_rows(&slots, &up.pane_of);
    let row = AgencyRow {
        name: name.clone(),
        template: spec.template.clone(),
        layout,
        session: name.clone(),
        state: AgencyState::Running,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let detail = json!({ "layout": layout.as_str(), "created": created, "restarted": restarted, "moved": moved });
    let event = Event::new(&name, up.action.as_str(), detail);
    ctx.store.save_running(&row, &agents, &event).map_err(|e| {
        if !up.session_exists {
            let _ = ctx.tmux.kill_session(&name);
        }
        Error::from(e)
    })?;
    ctx.store.write_agencies_mirror()?;
    // A restarted CLI remembers nothing: it is briefed again.
    let started: Vec<String> = created
        .iter()
        .chain(&restarted)
        .chain(&moved)
        .cloned()
        .collect();
    brief(ctx, &name, &slots, &started)?;
    Ok(CreateReport {
        name: name.clone(),
        session: name,
        action: up.action,
        template: spec.template,
        layout: layout.as_str().into(),
        created,
        restarted,
        moved,
        stale,
        agents,
        ignored: Vec::new(),
        permissions: slots
            .iter()
            .filter(|s| s.role.is_agent())
            .map(|s| (s.name.clone(), s.permissions))
            .collect(),
        warnings: up.warnings,
    })
}

/// The registry's rows of an agency's slots, with their panes.
fn agent_rows(slots: &[Slot], pane_of: &[Option<String>]) -> Vec<AgentRow> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| AgentRow {
            name: s.name.clone(),
            role: s.role,
            position: i as i64,
            command: s.command.clone().unwrap_or_default(),
            window: s.window.clone(),
            pane_id: pane_of[i].clone(),
            worktree: s.worktree.as_ref().map(|w| w.display().to_string()),
            branch: s.branch.clone(),
            setup_error: s.setup_error.clone(),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    pub name: String,
    pub role: Role,
    pub pane: Option<String>,
    pub state: String,
    pub window: String,
    pub command: String,
    /// What tmux says runs in the pane's foreground.
    pub current_command: Option<String>,
    /// Messages waiting to be typed into this agent's pane.
    pub queued: i64,
    /// Messages that could not be delivered (see `agency inbox`).
    pub failed: i64,
    /// The agent's own worktree, its branch, commits ahead of / behind the
    /// base branch, and uncommitted files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub git: Option<WorktreeState>,
    /// Why its setup command failed; the agent was not started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    /// What its CLI does without asking (`all`: everything).
    pub permissions: Permissions,
    /// What it asks about while `waiting` at a permission prompt: the
    /// command or file, read from its screen (null otherwise).
    pub question: Option<String>,
    /// The answers that prompt offers (`agency answer` CHOICE).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgencyStatus {
    pub name: String,
    pub running: bool,
    pub session: String,
    pub template: String,
    pub layout: Layout,
    pub agents: Vec<AgentStatus>,
}

/// Every agency known to the registry or with a folder, with live state.
pub fn list(ctx: &Ctx) -> Result<Vec<AgencyStatus>> {
    let panes = ctx.tmux.list_panes()?;
    let root = ctx.ws.root.display().to_string();
    let names = ctx.agency_names()?;
    names
        .iter()
        .map(|n| status_of(ctx, n, &panes, &root))
        .collect()
}

fn status_of(ctx: &Ctx, name: &str, panes: &[PaneInfo], root: &str) -> Result<AgencyStatus> {
    let row = ctx.store.agency(name)?;
    let ours: Vec<&PaneInfo> = panes
        .iter()
        .filter(|p| p.session == name && p.agency_home == root)
        .collect();
    if ours.iter().any(|p| p.dead) {
        // So the kept pane of an exited agent shows its note (see reap_exited).
        let _ = ctx.tmux.reap_exited();
    }
    let mut agents = registered_agents(ctx, name, &ours)?;
    let (template, layout) = match &row {
        Some(r) => (r.template.clone(), r.layout),
        None => {
            let (template, layout, unstarted) = unstarted_agents(ctx, name)?;
            agents = unstarted;
            (template, layout)
        }
    };
    refine_states(ctx, name, &mut agents)?;
    for (agent, queued, failed) in ctx.store.pending_counts(name)? {
        if let Some(a) = agents.iter_mut().find(|a| a.name == agent) {
            a.queued = queued;
            a.failed = failed;
        }
    }
    Ok(AgencyStatus {
        name: name.to_string(),
        running: !ours.is_empty(),
        session: name.to_string(),
        template,
        layout,
        agents,
    })
}

/// The agents the registry knows, with their panes among `ours` and their
/// worktrees' state.
fn registered_agents(ctx: &Ctx, name: &str, ours: &[&PaneInfo]) -> Result<Vec<AgentStatus>> {
    let project = Project::open(&ctx.ws.project_dir()).ok();
    let base = ctx.ws.base_branch();
    Ok(ctx
        .store
        .agents(name)?
        .into_iter()
        .filter(|a| a.role.is_agent())
        .map(|a| {
            let pane = a
                .pane_id
                .as_ref()
                .and_then(|id| ours.iter().find(|p| &p.pane_id == id).copied());
            AgentStatus {
                state: crate::runtime::pane_state(pane).into(),
                current_command: pane.map(|p| p.current_command.clone()),
                pane: pane.map(|p| p.pane_id.clone()),
                git: a.worktree.as_ref().and_then(|w| {
                    let p = project.as_ref()?;
                    p.worktree_state(Path::new(w), &base).ok()
                }),
                worktree: a.worktree,
                setup_error: a.setup_error,
                name: a.name,
                role: a.role,
                window: a.window,
                command: a.command,
                queued: 0,
                failed: 0,
                permissions: Permissions::default(),
                question: None,
                choices: Vec::new(),
            }
        })
        .collect())
}

/// An agency never started, described from its folder: its template,
/// layout and agents (all `exited`).
fn unstarted_agents(ctx: &Ctx, name: &str) -> Result<(String, Layout, Vec<AgentStatus>)> {
    let spec = AgencySpec::load(&ctx.ws.agency_dir(name))?;
    let default_cmd = ctx.ws.default_agent_command();
    let profiles = profile::load(&ctx.ws.root)?;
    let layout = spec.layout.unwrap_or_default();
    let agents = std::iter::once((
        "coordinator".to_string(),
        Role::Coordinator,
        &spec.coordinator,
    ))
    .chain(
        spec.agents
            .iter()
            .map(|a| (a.name.clone(), Role::Specialist, a)),
    )
    .map(|(n, role, a)| AgentStatus {
        window: if layout == Layout::Panes {
            "agents".into()
        } else {
            n.clone()
        },
        name: n,
        role,
        pane: None,
        state: "exited".into(),
        command: profile::resolve(&profiles, a, &default_cmd).0,
        current_command: None,
        queued: 0,
        failed: 0,
        worktree: None,
        git: None,
        setup_error: None,
        permissions: Permissions::default(),
        question: None,
        choices: Vec::new(),
    })
    .collect();
    Ok((spec.template, layout, agents))
}

/// Where an agent's profile can read its screen, `idle`/`busy`/`waiting`
/// come from what the pane shows.
fn refine_states(ctx: &Ctx, agency: &str, agents: &mut [AgentStatus]) -> Result<()> {
    let Ok(spec) = AgencySpec::load(&ctx.ws.agency_dir(agency)) else {
        return Ok(());
    };
    let profiles = profile::load(&ctx.ws.root)?;
    let default_cmd = ctx.ws.default_agent_command();
    let mut targets = Vec::new();
    for (i, a) in agents.iter_mut().enumerate() {
        let Some(entry) = spec.agent(&a.name) else {
            continue;
        };
        a.permissions = agent_permissions(&ctx.ws, entry);
        let Some(pane) = &a.pane else { continue };
        if a.state == "exited" {
            continue;
        }
        if let (_, Some(p)) = profile::resolve(&profiles, entry, &default_cmd) {
            if p.ready.is_some() || p.waiting.is_some() || p.busy.is_some() {
                targets.push((i, pane.clone(), p.clone()));
            }
        }
    }
    let panes: Vec<String> = targets.iter().map(|(_, p, _)| p.clone()).collect();
    let screens = ctx.tmux.capture(&panes)?;
    for ((i, _, profile), screen) in targets.into_iter().zip(screens) {
        agents[i].state = profile.screen_state(&screen).as_str().into();
        agents[i].question = profile.question(&screen);
        if agents[i].question.is_some() {
            agents[i].choices = profile.choices(&screen);
        }
    }
    Ok(())
}

/// One agency's status, or an error naming the known ones.
pub fn status(ctx: &Ctx, name: &str) -> Result<AgencyStatus> {
    ctx.require_known(name)?;
    let panes = ctx.tmux.list_panes()?;
    status_of(ctx, name, &panes, &ctx.ws.root.display().to_string())
}

/// Whether the agency's tmux session (made by this workspace) is up.
pub fn is_running(ctx: &Ctx, name: &str) -> Result<bool> {
    let root = ctx.ws.root.display().to_string();
    Ok(ctx
        .tmux
        .list_panes()?
        .iter()
        .any(|p| p.session == name && p.agency_home == root))
}

#[cfg(test)]
mod tests {
    use super::{launch_command, pane_command, Briefing};

    #[test]
    fn pane_commands_put_agency_first_then_unset_then_show_then_exec() {
        let unset = ["CI".to_string(), "GITHUB_ACTIONS".to_string()];
        let bin = std::path::Path::new("/w/registry/bin");
        let path = r#"PATH=/w/registry/bin:"$PATH"; export PATH; "#;
        assert_eq!(
            pane_command("gemini", &[], &Briefing::None, &unset, bin),
            format!("{path}unset CI GITHUB_ACTIONS; exec gemini")
        );
        assert_eq!(
            pane_command("sh", &[], &Briefing::Shown("/w/it's.md".into()), &[], bin),
            format!(r#"{path}cat -- "/w/it's.md"; exec sh"#)
        );
        // A hostile workspace folder stays one word.
        let odd = std::path::Path::new("/w/$(touch x) `y`;z'\"/registry/bin");
        let line = pane_command("claude", &[], &Briefing::None, &[], odd);
        let words = shlex::split(line.split("; export").next().unwrap()).unwrap();
        assert_eq!(words, [format!("PATH={}:$PATH", odd.display())]);
        // The permissions' arguments follow the command, one word each; a
        // compound command gets none.
        let args = [
            "--settings".to_string(),
            r#"{"a": ["Bash(x *)"]}"#.to_string(),
        ];
        let line = pane_command("env A=1 claude -c", &args, &Briefing::None, &[], bin);
        let tail = line.split("; ").last().unwrap();
        assert_eq!(
            shlex::split(tail).unwrap(),
            ["exec", "env", "A=1", "claude", "-c", "--settings", &args[1]]
        );
        let line = pane_command("a && claude", &args, &Briefing::None, &[], bin);
        assert!(line.ends_with("; a && claude"), "{line}");
    }

    #[test]
    fn simple_commands_are_execed() {
        assert_eq!(launch_command("claude"), "exec claude");
        assert_eq!(launch_command("cat >> /tmp/x"), "exec cat >> /tmp/x");
        assert_eq!(launch_command("exec cat"), "exec cat");
        assert_eq!(launch_command("env > x; exec cat"), "env > x; exec cat");
        assert_eq!(launch_command("a && b"), "a && b");
    }
}

/// `agency restore`: brings back every agency that should be running (or
/// the one named) — sessions, missing windows, worktrees — and so resumes
/// delivery of what was queued meanwhile.
pub fn restore(ctx: &mut Ctx, name: Option<&str>) -> Result<Vec<CreateReport>> {
    let names: Vec<String> = match name {
        Some(n) => {
            ctx.require_known(n)?;
            vec![n.to_string()]
        }
        None => ctx
            .store
            .agencies()?
            .into_iter()
            .filter(|a| a.state == AgencyState::Running)
            .map(|a| a.name)
            .collect(),
    };
    let mut reports = Vec::new();
    for n in names {
        reports.push(create(
            ctx,
            &CreateOptions {
                name: n,
                ..Default::default()
            },
        )?);
    }
    crate::bus::router::ensure_running(&ctx.ws)?;
    Ok(reports)
}

#[derive(Debug, Clone, Serialize)]
pub struct KillReport {
    pub name: String,
    /// Whether a running session was ended.
    pub ended_session: bool,
    pub purged: bool,
    /// Purged: its messages not yet delivered, now cancelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cancelled: Vec<i64>,
}

/// What purging the agents' worktrees and branches would lose, one line per
/// loss: uncommitted files, and commits that no branch left behind has
/// (on the agent's branch, or on its worktree's HEAD, detached or not).
/// Also returns where each agent's branch was, so it is deleted only from
/// there.
fn purge_losses(
    ctx: &Ctx,
    project: Option<&Project>,
    worktrees: &[AgentRow],
) -> Result<(Vec<String>, Vec<Option<String>>)> {
    let Some(p) = project else {
        return Ok((Vec::new(), Vec::new()));
    };
    let removed: Vec<String> = worktrees.iter().filter_map(|a| a.branch.clone()).collect();
    let mut lost = Vec::new();
    let mut tips = Vec::new();
    for a in worktrees {
        let (dir, branch) = (a.worktree.as_deref().unwrap(), a.branch.as_deref().unwrap());
        let mut risk = p.at_risk(Path::new(dir), branch, &removed)?;
        risk.uncommitted.retain(|f| !cli_history(f));
        tips.push(risk.tip.clone());
        if !risk.uncommitted.is_empty() {
            lost.push(format!(
                "{}: {} uncommitted file(s) ({})",
                a.name,
                risk.uncommitted.len(),
                risk.uncommitted.join(", ")
            ));
        }
        if risk.unmerged_commits > 0 {
            lost.push(format!(
                "{}: {} commit(s) on {branch} or its worktree's HEAD that no other branch has (not in {})",
                a.name,
                risk.unmerged_commits,
                ctx.ws.base_branch()
            ));
        }
    }
    Ok((lost, tips))
}

/// A file an agent CLI keeps for itself in its working folder (Aider's chat
/// and input history, its tags cache): not work that purging would lose.
fn cli_history(path: &str) -> bool {
    [
        ".aider.chat.history.md",
        ".aider.input.history",
        ".aider.llm.history",
        ".aider.tags.cache.",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// `agency kill`: ends the agency's session and marks it stopped; its files
/// stay unless `purge`.
pub fn kill(ctx: &mut Ctx, name: &str, purge: bool, force: bool) -> Result<KillReport> {
    ctx.require_known(name)?;
    let _lock = ctx.ws.lock_agency(name)?;
    // Before anything ends: what would purging lose?
    let worktrees: Vec<AgentRow> = ctx
        .store
        .agents(name)?
        .into_iter()
        .filter(|a| a.worktree.is_some() && a.branch.is_some())
        .collect();
    let project = Project::open(&ctx.ws.project_dir()).ok();
    if purge && !force {
        refuse_losses(ctx, project.as_ref(), &worktrees, name, false)?;
    }
    let ended_session = end_session(ctx, name)?;
    let detail = json!({ "ended_session": ended_session, "purge": purge });
    let event = Event::new(name, "kill", detail);
    if ctx.store.agency(name)?.is_some() {
        ctx.store.set_state(name, "stopped", &event)?;
    } else {
        ctx.record(event)?;
    }
    let mut cancelled = Vec::new();
    if purge {
        // The agents ran until the session ended: look again.
        let tips = match force {
            true => Vec::new(),
            false => refuse_losses(ctx, project.as_ref(), &worktrees, name, true)?,
        };
        purge_files(ctx, name, project.as_ref(), &worktrees, &tips)?;
        // Gone from `list`, `status` and the monitor; nothing waits for it.
        cancelled = ctx.store.forget_agency(name)?;
    }
    ctx.store.write_agencies_mirror()?;
    Ok(KillReport {
        name: name.to_string(),
        ended_session,
        purged: purge,
        cancelled,
    })
}

/// Refuses a purge that would lose work (`stopped`: looked at again after
/// the session ended); returns each worktree's tip as it was looked at.
fn refuse_losses(
    ctx: &Ctx,
    project: Option<&Project>,
    worktrees: &[AgentRow],
    name: &str,
    stopped: bool,
) -> Result<Vec<Option<String>>> {
    let (lost, tips) = purge_losses(ctx, project, worktrees)?;
    if lost.is_empty() {
        return Ok(tips);
    }
    let what = match stopped {
        false => format!("purging {name} would lose work; nothing was changed"),
        true => format!(
            "{name} was stopped, but its agents left work while stopping; nothing was removed"
        ),
    };
    Err(Error::user(
        format!("{what}:\n  {}", lost.join("\n  ")),
        "commit and hand off or submit that work first, or purge anyway with --force",
    ))
}

/// Ends the agency's tmux session if this workspace made it; whether one
/// was ended.
fn end_session(ctx: &Ctx, name: &str) -> Result<bool> {
    let root = ctx.ws.root.display().to_string();
    let panes = ctx.tmux.list_panes()?;
    match panes.iter().find(|p| p.session == name) {
        Some(p) if p.agency_home == root => {
            ctx.tmux.kill_session(name)?;
            Ok(true)
        }
        Some(_) => Err(Error::user(
            format!("the tmux session {name:?} was not made by this workspace; leaving it alone"),
            format!(
                "end it yourself with `{} kill-session -t {name}` if you mean to",
                tmux_cmd(ctx)
            ),
        )),
        None => Ok(false),
    }
}

/// Removes what `purge` removes: the rules files, the worktrees and their
/// branches (each only from the tip it was looked at), the agency's folder.
fn purge_files(
    ctx: &Ctx,
    name: &str,
    project: Option<&Project>,
    worktrees: &[AgentRow],
    tips: &[Option<String>],
) -> Result<()> {
    forget_grants(&ctx.ws, name, &ctx.store.agents(name)?)?;
    if let Some(p) = project {
        for (i, a) in worktrees.iter().enumerate() {
            let (dir, branch) = (a.worktree.as_deref().unwrap(), a.branch.as_deref().unwrap());
            let tip = tips.get(i).cloned().flatten();
            p.remove_worktree(
                &format!("{name}-{}", a.name),
                Path::new(dir),
                branch,
                tip.as_deref(),
            )?;
        }
    }
    let dir = ctx.ws.agency_dir(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    Ok(())
}

/// `agency attach`: the tmux target for an agency (and agent), checked.
pub fn attach_target(ctx: &Ctx, name: &str, agent: Option<&str>) -> Result<String> {
    let st = status(ctx, name)?;
    if !st.running {
        return Err(Error::user(
            format!("agency {name:?} is not running"),
            format!("start it with `agency create {name}`"),
        ));
    }
    match agent {
        None => Ok(format!("={name}")),
        Some(a) => {
            let a = ctx.resolve(name, a)?.agent;
            let found = st.agents.iter().find(|s| s.name == a).ok_or_else(|| {
                Error::user(
                    format!("agent {a:?} has no pane"),
                    format!("run `agency create {name}` to bring it back"),
                )
            })?;
            match &found.pane {
                Some(p) => Ok(p.clone()),
                None => Err(Error::user(
                    format!("agent {a:?} has no pane"),
                    format!("run `agency create {name}` to bring it back"),
                )),
            }
        }
    }
}

/// Where a message to an agent stands before the router gets to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The agency's session is down: messages wait for `create`.
    AgencyDown,
    /// The agent has no pane or its program has exited.
    Exited,
    /// Its pane runs an interactive shell: nothing is typed into it.
    Shell,
    /// A program that reads what is typed (an agent CLI, `cat`, ...).
    Program,
}

/// What a message to `agent` of `agency` will meet.
pub fn presence(ctx: &Ctx, agency: &str, agent: &str) -> Result<Presence> {
    let root = ctx.ws.root.display().to_string();
    let panes: Vec<PaneInfo> = ctx
        .tmux
        .list_panes()?
        .into_iter()
        .filter(|p| p.session == agency && p.agency_home == root)
        .collect();
    if panes.is_empty() {
        return Ok(Presence::AgencyDown);
    }
    let id = ctx
        .store
        .agents(agency)?
        .into_iter()
        .find(|a| a.name == agent)
        .and_then(|a| a.pane_id);
    Ok(
        match id.and_then(|id| panes.into_iter().find(|p| p.pane_id == id)) {
            None => Presence::Exited,
            Some(p) if p.dead => Presence::Exited,
            Some(p) if SHELLS.contains(&p.current_command.as_str()) => Presence::Shell,
            Some(_) => Presence::Program,
        },
    )
}
