//! The workspace's files: finding the workspace, its paths, `agency.toml`,
//! each agency's `agency.json`, `init`, locks and atomic writes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::spec::AgencySpec;
use crate::model::{Invalid, Permissions};

/// What went wrong with the workspace's files.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A mistake the user can fix (a missing workspace, a bad file).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl WorkspaceError {
    fn user(message: impl Into<String>, hint: impl Into<String>) -> WorkspaceError {
        WorkspaceError::Invalid(Invalid::new(message, hint))
    }

    fn io(context: impl std::fmt::Display, source: io::Error) -> WorkspaceError {
        WorkspaceError::Io {
            context: context.to_string(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, WorkspaceError>;

pub const CONFIG_FILE: &str = "agency.toml";

/// `agency.toml`. Unknown keys are allowed so newer files still load.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    pub project: Option<String>,
    pub base_branch: Option<String>,
    pub sandbox: SandboxConfig,
    pub tmux: TmuxConfig,
    pub agents: AgentsConfig,
    pub tasks: TasksConfig,
    pub notify: NotifyConfig,
}

/// `[notify]`: a command run for what needs the human (see
/// `monitor::notify`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct NotifyConfig {
    /// Run with `sh -c`, a JSON document on its stdin.
    pub command: Option<String>,
    /// What comes within this long of the first goes in one call (`2m`).
    pub batch: Option<String>,
    /// Hours held, then sent as one call (`22:00-08:00`, local time).
    pub quiet: Option<String>,
    /// A call still running after this long is ended (`30s`).
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TasksConfig {
    /// How long a claim outlives an agent whose pane is dead or gone
    /// (`10m`, `90s`).
    pub lease: Option<String>,
}

/// A claim's lease when `agency.toml` names none.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(600);
/// The longest `[tasks] lease`: any longer is no lease (and stays far from
/// overflowing a clock it is added to).
pub const MAX_LEASE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct SandboxConfig {
    pub test_command: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TmuxConfig {
    pub socket: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AgentsConfig {
    pub command: Option<String>,
    /// `false`: agents share the project checkout instead of a worktree each.
    pub worktrees: Option<bool>,
    /// Run in each new agent worktree before the agent starts.
    pub setup_command: Option<String>,
    /// What agent CLIs do without asking, unless an agent's own entry in
    /// `agency.json` says otherwise (default `bus`).
    pub permissions: Option<Permissions>,
}

/// The test command `init` found for a project, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestCommand {
    /// Empty when nothing was recognised.
    pub command: String,
    /// The file that gave it away (`Cargo.toml`, ...), if any.
    pub found: Option<String>,
}

impl TestCommand {
    /// A quick run that succeeds when the runner is installed (`None`:
    /// nothing known to check).
    pub fn probe(&self) -> Option<(&'static str, &'static [&'static str])> {
        Some(match self.command.as_str() {
            "cargo test" => ("cargo", &["--version"]),
            "npm test" => ("npm", &["--version"]),
            "python3 -m pytest" => ("python3", &["-m", "pytest", "--version"]),
            "go test ./..." => ("go", &["version"]),
            "make test" => ("make", &["--version"]),
            _ => return None,
        })
    }
}

/// Recognises the project's test runner by its files: Cargo, npm (a `test`
/// script), pytest, Go, make (a `test` target), in that order.
pub fn detect_test_command(project: &Path) -> TestCommand {
    let has = |f: &str| project.join(f).is_file();
    let read = |f: &str| fs::read_to_string(project.join(f)).unwrap_or_default();
    let found = |cmd: &str, file: &str| TestCommand {
        command: cmd.into(),
        found: Some(file.into()),
    };
    if has("Cargo.toml") {
        return found("cargo test", "Cargo.toml");
    }
    if has("package.json") {
        let scripts = serde_json::from_str::<serde_json::Value>(&read("package.json"))
            .ok()
            .and_then(|v| v.get("scripts")?.get("test")?.as_str().map(str::to_string));
        // npm's placeholder script only says there are no tests.
        if scripts.is_some_and(|t| !t.contains("no test specified")) {
            return found("npm test", "package.json");
        }
    }
    for f in [
        "pytest.ini",
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "setup.py",
        "conftest.py",
    ] {
        if has(f) && (f != "setup.cfg" || read(f).contains("[tool:pytest]") || has("setup.py")) {
            return found("python3 -m pytest", f);
        }
    }
    if has("go.mod") {
        return found("go test ./...", "go.mod");
    }
    for f in ["Makefile", "makefile", "GNUmakefile"] {
        if has(f) && read(f).lines().any(|l| l.starts_with("test:")) {
            return found("make test", f);
        }
    }
    TestCommand {
        command: String::new(),
        found: None,
    }
}

/// The default `agency.toml` written by `agency init`.
pub fn default_config_text(project: &str) -> String {
    config_text(project, "cargo test")
}

/// `agency.toml` for `project`, its tests run by `test_command` (empty:
/// none known yet).
pub fn config_text(project: &str, test_command: &str) -> String {
    let test_comment = if test_command.is_empty() {
        "# none found: set the command that runs your tests"
    } else {
        "# run in the sandbox worktree"
    };
    format!(
        r#"# agency workspace settings
project = {project}              # git repository the agencies work on, relative to this file
base_branch = "main"       # where approved work is merged

[sandbox]
test_command = {test_command}   {test_comment}

[tmux]
socket = ""                # empty: the default tmux server (AGENCY_TMUX_SOCKET overrides)

[agents]
command = "bash"           # default agent command when an agent names none
# permissions = "bus"      # what agent CLIs run without asking: bus (agency's own commands), ask, project, all

[tasks]
lease = "10m"              # a task claimed by an agent whose pane is gone this long is ready again

# [notify]                 # a command run for what needs you, a JSON document on its stdin (see the README)
# command = 'notify-send agency "$(jq -r .summary)"'
# batch = "1m"             # what comes within this long of the first goes in one call
# quiet = "22:00-08:00"    # held in these hours, then sent as one call
"#,
        project = toml_string(project),
        test_command = toml_string(test_command),
    )
}

/// `s` as a TOML string, quoted and escaped as TOML wants.
fn toml_string(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// A located workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub config: Config,
}

impl Workspace {
    /// `--home`, else `AGENCY_HOME`, else the nearest folder upwards holding
    /// `agency.toml`.
    pub fn locate(home: Option<&Path>) -> Result<Workspace> {
        let env_home = std::env::var_os("AGENCY_HOME").filter(|v| !v.is_empty());
        let explicit = home
            .map(Path::to_path_buf)
            .or_else(|| env_home.map(PathBuf::from));
        let root = match explicit {
            Some(dir) => {
                if !dir.join(CONFIG_FILE).is_file() {
                    return Err(WorkspaceError::user(
                        format!("no workspace at {} (no {CONFIG_FILE})", dir.display()),
                        format!("run `agency init {}` first", dir.display()),
                    ));
                }
                dir
            }
            None => {
                let cwd =
                    std::env::current_dir().map_err(|e| WorkspaceError::io("current folder", e))?;
                find_upwards(&cwd).ok_or_else(|| {
                    WorkspaceError::user(
                        "not inside an agency workspace (no agency.toml here or above)",
                        "run `agency init DIR`, then work inside DIR or pass `--home DIR`",
                    )
                })?
            }
        };
        let root = fs::canonicalize(&root).map_err(|e| WorkspaceError::io(root.display(), e))?;
        Self::open(root)
    }

    pub fn open(root: PathBuf) -> Result<Workspace> {
        check_root(&root)?;
        let path = root.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|e| WorkspaceError::io(path.display(), e))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            WorkspaceError::user(
                format!("{} is not valid: {}", path.display(), e.message()),
                "fix the file; `agency init` writes a commented example",
            )
        })?;
        Ok(Workspace { root, config })
    }

    pub fn agencies_dir(&self) -> PathBuf {
        self.root.join("agencies")
    }

    pub fn agency_dir(&self, name: &str) -> PathBuf {
        self.agencies_dir().join(name)
    }

    /// `[tasks] lease`, else ten minutes.
    pub fn task_lease(&self) -> Result<std::time::Duration> {
        let Some(text) = self.config.tasks.lease.as_deref() else {
            return Ok(DEFAULT_LEASE);
        };
        let bad = |e: &dyn std::fmt::Display| {
            WorkspaceError::user(
                format!("[tasks] lease = {text:?} in {CONFIG_FILE}: {e}"),
                "write a duration like \"10m\" or \"90s\", at most \"30days\"",
            )
        };
        let lease = humantime::parse_duration(text.trim()).map_err(|e| bad(&e))?;
        if lease > MAX_LEASE {
            return Err(bad(&"longer than 30 days"));
        }
        Ok(lease)
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    /// `registry/bin`: holds `agency`, a link to the binary that last
    /// brought an agency up; first on every agent's PATH.
    pub fn bin_dir(&self) -> PathBuf {
        self.registry_dir().join("bin")
    }

    /// Agents find `agency` through `bin_dir` first on their PATH, which
    /// cannot hold a `:`: it would split the entry, and its second part
    /// would be a folder relative to the agent's own (where it can write).
    pub fn check_path_entry(&self) -> Result<()> {
        check_path_entry(&self.root)
    }

    /// The environment of the human's own processes (the router, the
    /// notify command), whoever starts them: no agent's identity (see
    /// `AGENT_VARS`), no agent's `registry/bin` on PATH.
    pub fn human_env(&self) -> (Option<std::ffi::OsString>, &'static [&'static str]) {
        (self.human_path(), AGENT_VARS)
    }

    /// PATH for the human's own processes (the router, the notify
    /// command), which an agent may have started: ours without the
    /// `registry/bin` an agent's pane puts first (this workspace's, or the
    /// one `AGENCY_BIN` is in). `None`: no PATH to pass on.
    pub fn human_path(&self) -> Option<std::ffi::OsString> {
        let path = std::env::var_os("PATH")?;
        let mut agents = vec![self.bin_dir()];
        if let Some(bin) = std::env::var_os("AGENCY_BIN") {
            agents.extend(Path::new(&bin).parent().map(Path::to_path_buf));
        }
        let canon = |d: &Path| fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
        let agents: Vec<PathBuf> = agents.iter().map(|d| canon(d)).collect();
        let kept: Vec<PathBuf> = std::env::split_paths(&path)
            .filter(|d| !agents.contains(&canon(d)))
            .collect();
        std::env::join_paths(kept).ok()
    }

    /// Waits for, then holds until dropped, the lock of one agency
    /// (`registry/locks/NAME.lock`, `name` already checked): create,
    /// restore and kill of one agency run one at a time, so two of them
    /// never end each other's session.
    pub fn lock_agency(&self, name: &str) -> Result<fs::File> {
        let dir = self.registry_dir().join("locks");
        fs::create_dir_all(&dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
        let path = dir.join(format!("{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| WorkspaceError::io(path.display(), e))?;
        file.lock()
            .map_err(|e| WorkspaceError::io(path.display(), e))?;
        Ok(file)
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }

    /// The tmux socket: `AGENCY_TMUX_SOCKET`, else `[tmux] socket`, else none.
    pub fn tmux_socket(&self) -> Option<String> {
        std::env::var("AGENCY_TMUX_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.config.tmux.socket.clone())
            .filter(|s| !s.is_empty())
    }

    /// The project folder agents work in; the workspace itself when unset.
    pub fn project_dir(&self) -> PathBuf {
        match &self.config.project {
            Some(p) if !p.is_empty() => self.root.join(p),
            _ => self.root.clone(),
        }
    }

    /// Where approved work is merged: `base_branch`, else `main`.
    pub fn base_branch(&self) -> String {
        self.config
            .base_branch
            .clone()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "main".into())
    }

    pub fn default_agent_command(&self) -> String {
        self.config
            .agents
            .command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "bash".to_string())
    }
}

/// The seed-compatible wrapper scripts, copied into each new workspace.
static SCRIPTS: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/scripts");

/// Lines `agency init` makes sure the workspace's `.gitignore` has.
const GITIGNORE: &[&str] = &["/registry/", "/sandbox/", "/agencies/*/logs/"];

#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    pub root: PathBuf,
    /// Paths made by this call, relative to the root.
    pub created: Vec<String>,
    pub project: String,
    /// The test command written into a new `agency.toml` (`None`: the
    /// file existed and was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_command: Option<TestCommand>,
    /// Whether the project folder is a git repository (worktrees,
    /// handoffs, submissions and approvals need one).
    pub git: bool,
}

/// A workspace's path travels in the environment of every pane and in a
/// tmux option read back line by line: it must be text, without control
/// characters (a tab or newline in it would make our sessions look foreign).
fn check_root(root: &Path) -> Result<()> {
    match root.to_str() {
        Some(s) if !s.chars().any(char::is_control) => Ok(()),
        _ => Err(WorkspaceError::user(
            format!(
                "the workspace folder {:?} holds a control character or is not UTF-8",
                root.display().to_string()
            ),
            "use a folder whose path is plain text (no tabs, newlines or escape characters)",
        )),
    }
}

/// `agency init`: makes or completes a workspace at `dir`. Existing files are
/// kept; only `project` is changed when `project` is given. When it fails,
/// the folders it made are removed again: nothing is left half-made.
pub fn init(dir: &Path, project: Option<&Path>) -> Result<InitReport> {
    let made = first_missing(dir);
    let report = init_at(dir, project);
    if let (Err(_), Some(top)) = (&report, made) {
        let _ = fs::remove_dir_all(top);
    }
    report
}

/// The outermost folder of `dir`'s path that does not exist yet (`dir`
/// itself, or one of its parents).
fn first_missing(dir: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(dir).ok()?;
    abs.ancestors()
        // Nothing there at all: not even a link (whose target may be missing).
        .take_while(|a| a.symlink_metadata().is_err())
        .last()
        .map(Path::to_path_buf)
}

/// See `Workspace::check_path_entry`: `root` is the workspace folder.
fn check_path_entry(root: &Path) -> Result<()> {
    if !root.join("registry").to_string_lossy().contains(':') {
        return Ok(());
    }
    Err(WorkspaceError::user(
        format!(
            "the workspace folder {:?} holds a ':', which PATH cannot hold: its agents would not find agency",
            root.display().to_string()
        ),
        "move the workspace (the folder with agency.toml) to a path without ':', or rename that folder",
    ))
}

fn init_at(dir: &Path, project: Option<&Path>) -> Result<InitReport> {
    check_root(&std::path::absolute(dir).map_err(|e| WorkspaceError::io(dir.display(), e))?)?;
    let mut created = Vec::new();
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
        created.push(".".to_string());
    }
    let root = fs::canonicalize(dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
    check_path_entry(&root)?;
    let project_value = project.map(|p| project_value(&root, p)).transpose()?;
    let config = root.join(CONFIG_FILE);
    let mut test_command = None;
    if !config.exists() {
        let project_dir = root.join(project_value.as_deref().unwrap_or("."));
        let tests = detect_test_command(&project_dir);
        let text = config_text(project_value.as_deref().unwrap_or("."), &tests.command);
        write_atomic(&config, text.as_bytes())?;
        created.push(CONFIG_FILE.to_string());
        test_command = Some(tests);
    } else if let Some(p) = &project_value {
        set_project(&config, p)?;
    }
    make_folders(&root, &mut created)?;
    write_scripts(&root, &mut created)?;
    write_gitignore(&root, &mut created)?;
    let ws = Workspace::open(root.clone())?;
    Ok(InitReport {
        project: ws.config.project.clone().unwrap_or_else(|| ".".into()),
        git: crate::os::git::Project::open(&ws.project_dir()).is_ok(),
        root,
        created,
        test_command,
    })
}

/// `project` as `agency.toml` keeps it: relative inside the workspace
/// `root` (so the pair can move together), else absolute.
fn project_value(root: &Path, project: &Path) -> Result<String> {
    let abs = fs::canonicalize(project).map_err(|_| {
        WorkspaceError::user(
            format!("project folder {} does not exist", project.display()),
            "pass the path of an existing git repository to --project",
        )
    })?;
    Ok(match abs.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => abs.display().to_string(),
    })
}

/// The workspace's folders that are missing, added to `created`.
fn make_folders(root: &Path, created: &mut Vec<String>) -> Result<()> {
    for sub in [
        "agencies",
        "registry",
        "registry/outbox",
        "sandbox/testing",
        "sandbox/staging",
        "templates",
        "scripts",
    ] {
        let path = root.join(sub);
        if !path.is_dir() {
            fs::create_dir_all(&path).map_err(|e| WorkspaceError::io(path.display(), e))?;
            created.push(sub.to_string());
        }
    }
    Ok(())
}

/// The seed's scripts that are missing (a user's edited one is kept).
fn write_scripts(root: &Path, created: &mut Vec<String>) -> Result<()> {
    for file in SCRIPTS.files() {
        let path = root.join("scripts").join(file.path());
        if !path.exists() {
            fs::write(&path, file.contents()).map_err(|e| WorkspaceError::io(path.display(), e))?;
            set_executable(&path)?;
            created.push(format!("scripts/{}", file.path().display()));
        }
    }
    Ok(())
}

/// `.gitignore` with the lines it lacks of `GITIGNORE`, the rest kept.
fn write_gitignore(root: &Path, created: &mut Vec<String>) -> Result<()> {
    let ignore = root.join(".gitignore");
    let existing = fs::read_to_string(&ignore).unwrap_or_default();
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .copied()
        .filter(|l| !existing.lines().any(|e| e.trim() == *l))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for l in missing {
        text.push_str(l);
        text.push('\n');
    }
    write_atomic(&ignore, text.as_bytes())?;
    if existing.is_empty() {
        created.push(".gitignore".into());
    }
    Ok(())
}

/// Sets `project` in an existing `agency.toml`, keeping the rest of the
/// file (comments, order, the comment after the value) as it is.
fn set_project(config: &Path, project: &str) -> Result<()> {
    let text = fs::read_to_string(config).map_err(|e| WorkspaceError::io(config.display(), e))?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        WorkspaceError::user(
            format!("{} is not valid: {}", config.display(), e.message()),
            "fix the file; `agency init` writes a commented example",
        )
    })?;
    let mut value = toml_edit::Value::from(project);
    if let Some(old) = doc.get("project").and_then(|i| i.as_value()) {
        *value.decor_mut() = old.decor().clone();
    }
    doc["project"] = toml_edit::Item::Value(value);
    write_atomic(config, doc.to_string().as_bytes())
}

/// The variables an agent's pane sets that say which agent it is, its
/// branch and its binary: the human's own processes never inherit them.
pub const AGENT_VARS: &[&str] = &[
    "AGENCY_NAME",
    "AGENCY_AGENT",
    "AGENCY_BRANCH",
    "AGENCY_WORKTREE",
    "AGENCY_BIN",
];

/// How to call this very binary in a printed command: `agency` when that
/// is what PATH finds, else its full path (after `cargo run`, or a build
/// that was never installed).
pub fn program() -> String {
    program_on(std::env::var_os("PATH"))
}

/// `program` for a process whose PATH is `path`.
pub fn program_on(path: Option<std::ffi::OsString>) -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "agency".into();
    };
    let on_path = path.is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| std::fs::canonicalize(d.join("agency")).is_ok_and(|p| p == exe))
    });
    if on_path {
        "agency".into()
    } else {
        quote(&exe.display().to_string())
    }
}

/// `agency` (see `program`) with `--home ROOT` unless a plain `agency` run
/// here finds this same workspace: a printed command works when pasted.
pub fn invocation(ws: &Workspace) -> String {
    let here = Workspace::locate(None).ok().map(|w| w.root);
    if here.as_ref() == Some(&ws.root) {
        program()
    } else {
        format!(
            "{} --home {}",
            program(),
            quote(&ws.root.display().to_string())
        )
    }
}

/// Quotes a word for a POSIX shell when it needs it. A word shlex cannot
/// quote (it holds a NUL, which no path or name can) becomes `''`, never
/// itself.
pub fn quote(word: &str) -> String {
    shlex::try_quote(word).map_or_else(|_| "''".to_string(), |q| q.into_owned())
}

fn find_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

/// `agency.json`, read and written here: the files are the workspace's.
impl AgencySpec {
    /// Reads `DIR/agency.json` and checks it.
    pub fn load(dir: &Path) -> Result<AgencySpec> {
        let path = dir.join("agency.json");
        let text = fs::read_to_string(&path).map_err(|e| WorkspaceError::io(path.display(), e))?;
        let spec: AgencySpec = serde_json::from_str(&text).map_err(|e| {
            WorkspaceError::user(
                format!("{} is not valid: {e}", path.display()),
                "fix the JSON, or move the folder away and run `agency create` again",
            )
        })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("plain data serializes");
        text.push(b'\n');
        write_atomic(&dir.join("agency.json"), &text)
    }
}

/// `base.join(rel)` if it really lies inside `base` once links are
/// followed (`rel` already checked); `None` if it does not exist or leads
/// out.
pub fn inside(base: &Path, rel: &str) -> Option<std::path::PathBuf> {
    let base = fs::canonicalize(base).ok()?;
    let path = fs::canonicalize(base.join(rel)).ok()?;
    path.starts_with(&base).then_some(path)
}

/// Makes a script runnable (`rwxr-xr-x`).
pub fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| WorkspaceError::io(path.display(), e))
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader never sees a half-written file. No fsync: these files are mirrors
/// or specs rewritten often, and the registry database is what must last.
/// A new file gets the mode any file the user makes gets (0666 less the
/// umask); a rewritten one keeps its own.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| WorkspaceError::io(dir.display(), e))?;
    let existing = fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777);
    let mut tmp = tempfile::Builder::new()
        // The kernel applies the umask to the mode a file is created with.
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| WorkspaceError::io(dir.display(), e))?;
    if let Some(mode) = existing {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| WorkspaceError::io(path.display(), e))?;
    }
    tmp.write_all(contents)
        .map_err(|e| WorkspaceError::io(path.display(), e))?;
    tmp.persist(path)
        .map_err(|e| WorkspaceError::io(path.display(), e.error))?;
    Ok(())
}

/// The folder holding `rel` under `root`, opened one step at a time
/// without following a symbolic link (made where missing when `make`), and
/// the file's name: a link, `..` or an absolute part on the way is refused,
/// so nothing is written or removed outside `root` (a repository can
/// commit `.codex -> ~/.codex`).
fn folder_inside(
    root: &Path,
    rel: &Path,
    make: bool,
) -> Result<(std::os::fd::OwnedFd, std::ffi::OsString)> {
    use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
    use rustix::io::Errno;
    let path = root.join(rel);
    let refused = |why: &str| {
        WorkspaceError::user(
            format!(
                "{}: {why}: refused, it could lead outside {}",
                path.display(),
                root.display()
            ),
            format!(
                "replace it with a real folder (or remove it) in {}",
                root.display()
            ),
        )
    };
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(p) => Ok(p),
            _ => Err(refused("not a plain relative path")),
        })
        .collect::<Result<_>>()?;
    let Some((name, folders)) = parts.split_last() else {
        return Err(refused("no file name"));
    };
    let at = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, root, at, Mode::empty())
        .map_err(|e| WorkspaceError::io(root.display(), e.into()))?;
    for (i, f) in folders.iter().enumerate() {
        let open = |d: &std::os::fd::OwnedFd| openat(d, *f, at | OFlags::NOFOLLOW, Mode::empty());
        let next = match open(&dir) {
            Err(Errno::NOENT) if make => match mkdirat(&dir, *f, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => open(&dir),
                Err(e) => Err(e),
            },
            other => other,
        };
        dir = next.map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => {
                let at: PathBuf = folders[..=i].iter().collect();
                refused(&format!("{} is a symbolic link or no folder", at.display()))
            }
            e => WorkspaceError::io(path.display(), e.into()),
        })?;
    }
    Ok((dir, name.to_os_string()))
}

/// Writes `root/rel` whole (a new file renamed over it), never through a
/// symbolic link: see `folder_inside`. A link at `rel` itself is replaced.
pub fn write_inside(root: &Path, rel: &Path, contents: &[u8]) -> Result<()> {
    use rustix::fs::{openat, renameat, unlinkat, AtFlags, Mode, OFlags};
    use std::io::Write;
    let path = root.join(rel);
    let (dir, name) = folder_inside(root, rel, true)?;
    let tmp = format!(".{}.agency-{}", name.to_string_lossy(), std::process::id());
    let _ = unlinkat(&dir, tmp.as_str(), AtFlags::empty());
    let write = || -> io::Result<()> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(&dir, tmp.as_str(), flags, Mode::from_raw_mode(0o666))?;
        fs::File::from(fd).write_all(contents)?;
        Ok(renameat(&dir, tmp.as_str(), &dir, name.as_os_str())?)
    };
    write().map_err(|e| {
        let _ = unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        WorkspaceError::io(path.display(), e)
    })
}

/// Removes the file `root/rel` (a link there: the link), never through a
/// symbolic link on the way; a missing file is no error.
pub fn remove_inside(root: &Path, rel: &Path) -> Result<()> {
    use rustix::fs::{unlinkat, AtFlags};
    let (dir, name) = match folder_inside(root, rel, false) {
        Err(WorkspaceError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(())
        }
        other => other?,
    };
    match unlinkat(&dir, name.as_os_str(), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(WorkspaceError::io(root.join(rel).display(), e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_removals_inside_a_folder_never_follow_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("rules")).unwrap();
        fs::write(outside.join("rules/x"), "theirs").unwrap();
        // Made where missing, then replaced whole.
        write_inside(&root, Path::new("a/b/x"), b"one").unwrap();
        write_inside(&root, Path::new("a/b/x"), b"two").unwrap();
        assert_eq!(fs::read_to_string(root.join("a/b/x")).unwrap(), "two");
        // A linked folder, `..` or an absolute path on the way: refused.
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        for rel in ["link/rules/x", "link/new/x", "../outside/rules/x", "/abs/x"] {
            let e = write_inside(&root, Path::new(rel), b"mine").unwrap_err();
            assert!(matches!(e, WorkspaceError::Invalid(_)), "{rel}: {e}");
            let e = remove_inside(&root, Path::new(rel)).unwrap_err();
            assert!(matches!(e, WorkspaceError::Invalid(_)), "{rel}: {e}");
        }
        assert!(!outside.join("new").exists());
        assert_eq!(
            fs::read_to_string(outside.join("rules/x")).unwrap(),
            "theirs"
        );
        // A link at the name itself is replaced (its target untouched),
        // and removed as a link.
        std::os::unix::fs::symlink(outside.join("rules/x"), root.join("a/b/y")).unwrap();
        write_inside(&root, Path::new("a/b/y"), b"mine").unwrap();
        assert!(!root.join("a/b/y").is_symlink());
        std::os::unix::fs::symlink(outside.join("rules/x"), root.join("a/b/z")).unwrap();
        remove_inside(&root, Path::new("a/b/z")).unwrap();
        remove_inside(&root, Path::new("a/gone/z")).unwrap();
        assert_eq!(
            fs::read_to_string(outside.join("rules/x")).unwrap(),
            "theirs"
        );
        assert_eq!(
            fs::read_dir(root.join("a/b")).unwrap().count(),
            2,
            "a temp file left"
        );
    }

    #[test]
    fn default_config_parses() {
        let c: Config = toml::from_str(&default_config_text(".")).unwrap();
        assert_eq!(c.project.as_deref(), Some("."));
        assert_eq!(c.base_branch.as_deref(), Some("main"));
        assert_eq!(c.sandbox.test_command.as_deref(), Some("cargo test"));
        assert_eq!(c.tmux.socket.as_deref(), Some(""));
        assert_eq!(c.agents.command.as_deref(), Some("bash"));
        assert_eq!(c.tasks.lease.as_deref(), Some("10m"));
    }

    #[test]
    fn a_lease_too_long_is_refused_with_what_to_write() {
        let ws = |lease: &str| Workspace {
            root: PathBuf::from("/w"),
            config: toml::from_str(&format!("[tasks]\nlease = {lease:?}")).unwrap(),
        };
        assert_eq!(ws("30days").task_lease().unwrap(), MAX_LEASE);
        for long in ["31days", "500000000000y"] {
            let WorkspaceError::Invalid(e) = ws(long).task_lease().unwrap_err() else {
                panic!("{long}: not a user error");
            };
            assert!(e.message.contains("longer than 30 days"), "{long}: {e:?}");
            assert!(e.hint.contains("at most"), "{long}: {e:?}");
        }
    }

    #[test]
    fn role_files_that_lead_out_are_not_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.md"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("out.md")).unwrap();
        assert!(inside(dir.path(), "in.md").is_some());
        assert!(inside(dir.path(), "out.md").is_none());
        assert!(inside(dir.path(), "missing.md").is_none());
    }

    #[test]
    fn the_project_is_set_and_the_rest_of_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        fs::write(&path, default_config_text(".")).unwrap();
        let odd = "/p/a \"b\" \\c";
        set_project(&path, odd).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(c.project.as_deref(), Some(odd));
        assert_eq!(c.sandbox.test_command.as_deref(), Some("cargo test"));
        assert!(text.starts_with("# agency workspace settings\n"), "{text}");
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("# git repository the agencies work on, relative to this file"),
            "{text}"
        );
        // A file without one gets one.
        fs::write(&path, "[tmux]\nsocket = \"\"\n").unwrap();
        set_project(&path, "app").unwrap();
        let c: Config = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(c.project.as_deref(), Some("app"));
    }

    #[test]
    fn config_values_are_toml_strings() {
        let c: Config = toml::from_str(&config_text("a\"b\\c", "echo \"x\"\n")).unwrap();
        assert_eq!(c.project.as_deref(), Some("a\"b\\c"));
        assert_eq!(c.sandbox.test_command.as_deref(), Some("echo \"x\"\n"));
    }

    #[test]
    fn finds_workspace_upwards() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), "").unwrap();
        let deep = dir.path().join("a/b/c");
        fs::create_dir_all(&deep).unwrap();
        assert_eq!(find_upwards(&deep).unwrap(), dir.path());
    }
}
