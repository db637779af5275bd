//! Finding the workspace, its paths, and `agency.toml`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::runtime::permissions::Permissions;

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
}

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

/// The default `agency.toml` written by `agency init`.
pub fn default_config_text(project: &str) -> String {
    format!(
        r#"# agency workspace settings
project = "{project}"              # git repository the agencies work on, relative to this file
base_branch = "main"       # where approved work is merged

[sandbox]
test_command = "cargo test"   # run in the sandbox worktree

[tmux]
socket = ""                # empty: the default tmux server (AGENCY_TMUX_SOCKET overrides)

[agents]
command = "bash"           # default agent command when an agent names none
# permissions = "bus"      # what agent CLIs run without asking: bus (agency's own commands), ask, project, all
"#,
        project = toml_escape(project)
    )
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
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
                    return Err(Error::user(
                        format!("no workspace at {} (no {CONFIG_FILE})", dir.display()),
                        format!("run `agency init {}` first", dir.display()),
                    ));
                }
                dir
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| Error::io("current folder", e))?;
                find_upwards(&cwd).ok_or_else(|| {
                    Error::user(
                        "not inside an agency workspace (no agency.toml here or above)",
                        "run `agency init DIR`, then work inside DIR or pass `--home DIR`",
                    )
                })?
            }
        };
        let root = fs::canonicalize(&root).map_err(|e| Error::io(root.display(), e))?;
        Self::open(root)
    }

    pub fn open(root: PathBuf) -> Result<Workspace> {
        let path = root.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            Error::user(
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

    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    /// `registry/bin`: holds `agency`, a link to the binary that last
    /// brought an agency up; first on every agent's PATH.
    pub fn bin_dir(&self) -> PathBuf {
        self.registry_dir().join("bin")
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
}

/// `agency init`: makes or completes a workspace at `dir`. Existing files are
/// kept; only `project` is changed when `project` is given.
pub fn init(dir: &Path, project: Option<&Path>) -> Result<InitReport> {
    let mut created = Vec::new();
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        created.push(".".to_string());
    }
    let root = fs::canonicalize(dir).map_err(|e| Error::io(dir.display(), e))?;
    let project_value = match project {
        None => None,
        Some(p) => {
            let abs = fs::canonicalize(p).map_err(|_| {
                Error::user(
                    format!("project folder {} does not exist", p.display()),
                    "pass the path of an existing git repository to --project",
                )
            })?;
            // Inside the workspace: stored relative, so the pair can move together.
            Some(match abs.strip_prefix(&root) {
                Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
                Ok(rel) => rel.display().to_string(),
                Err(_) => abs.display().to_string(),
            })
        }
    };
    let config = root.join(CONFIG_FILE);
    if !config.exists() {
        let text = default_config_text(project_value.as_deref().unwrap_or("."));
        write_atomic(&config, text.as_bytes())?;
        created.push(CONFIG_FILE.to_string());
    } else if let Some(p) = &project_value {
        let text = fs::read_to_string(&config).map_err(|e| Error::io(config.display(), e))?;
        let line = format!("project = \"{}\"", toml_escape(p));
        let mut replaced = false;
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                if !replaced && l.trim_start().starts_with("project") && l.contains('=') {
                    replaced = true;
                    line.clone()
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !replaced {
            lines.insert(0, line);
        }
        write_atomic(&config, (lines.join("\n") + "\n").as_bytes())?;
    }
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
            fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
            created.push(sub.to_string());
        }
    }
    for file in SCRIPTS.files() {
        let path = root.join("scripts").join(file.path());
        if !path.exists() {
            fs::write(&path, file.contents()).map_err(|e| Error::io(path.display(), e))?;
            crate::agency::templates::set_executable(&path)?;
            created.push(format!("scripts/{}", file.path().display()));
        }
    }
    let ignore = root.join(".gitignore");
    let existing = fs::read_to_string(&ignore).unwrap_or_default();
    let missing: Vec<&str> = GITIGNORE
        .iter()
        .copied()
        .filter(|l| !existing.lines().any(|e| e.trim() == *l))
        .collect();
    if !missing.is_empty() {
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
    }
    let ws = Workspace::open(root.clone())?;
    Ok(InitReport {
        project: ws.config.project.clone().unwrap_or_else(|| ".".into()),
        root,
        created,
    })
}

fn find_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

/// Writes `contents` to `path` through a temporary file and a rename, so a
/// reader never sees a half-written file. No fsync: these files are mirrors
/// or specs rewritten often, and the registry database is what must last.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir.display(), e))?;
    tmp.write_all(contents)
        .map_err(|e| Error::io(path.display(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses() {
        let c: Config = toml::from_str(&default_config_text(".")).unwrap();
        assert_eq!(c.project.as_deref(), Some("."));
        assert_eq!(c.base_branch.as_deref(), Some("main"));
        assert_eq!(c.sandbox.test_command.as_deref(), Some("cargo test"));
        assert_eq!(c.tmux.socket.as_deref(), Some(""));
        assert_eq!(c.agents.command.as_deref(), Some("bash"));
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
