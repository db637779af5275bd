//! `agency.json`: what an agency is made of, and the rules for names.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Invalid, Layout, Permissions};

type Result<T> = std::result::Result<T, Invalid>;

/// Window names the tool uses itself; an agent may not take them.
pub const RESERVED_NAMES: &[&str] = &["coordinator", "tools", "sandbox", "agents", "human"];

/// Checks `^[A-Za-z][A-Za-z0-9_-]{0,63}$`. Names become tmux session and
/// window names, folder names and message addresses, so nothing else is let in.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(first) => {
            first.is_ascii_alphabetic()
                && name.len() <= 64
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            format!("invalid {kind} name {name:?}"),
            "names start with a letter and hold only letters, digits, `_` and `-` (at most 64 characters)",
        ))
    }
}

/// Checks that `path` (from a template or `agency.json`) stays in the
/// folder it is relative to: relative, made of plain names, no `..`.
/// (Links out of the folder are caught where the file is read; see
/// `inside`.)
pub fn validate_relative(what: &str, path: &str) -> Result<()> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && !path.chars().any(char::is_control)
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(Invalid::new(
            format!("{what} {path:?} leads outside the agency folder"),
            "give a path inside the agency folder, e.g. \"agents/dev.md\" (no `..`, not absolute)",
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgencySpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The template it was made from.
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub coordinator: AgentSpec,
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Run in the sandbox worktree; overrides `agency.toml`'s `[sandbox] test_command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_command: Option<String>,
    /// `windows` (default) or `panes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// `false`: no git worktree per agent (overrides `agency.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktrees: Option<bool>,
    /// Run in each new worktree before its agent starts (overrides `agency.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_command: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentSpec {
    pub name: String,
    /// A short human title, e.g. "Python specialist".
    #[serde(default)]
    pub title: String,
    /// The briefing, relative to the agency folder.
    pub role_file: String,
    /// The agent CLI to launch; `agency.toml`'s `[agents] command` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The runtime profile; chosen from the command's program name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Own git worktree: specialists have one unless `false`; the
    /// coordinator only with `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<bool>,
    /// What its CLI does without asking; `agency.toml`'s `[agents]
    /// permissions` when absent, else `bus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

impl AgencySpec {
    /// The agent addressed as `name`: the coordinator is `coordinator`
    /// whatever its display name.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        if name == "coordinator" {
            Some(&self.coordinator)
        } else {
            self.agents.iter().find(|a| a.name == name)
        }
    }

    /// Names valid, unique and not reserved; role files inside the agency
    /// folder.
    pub fn validate(&self) -> Result<()> {
        validate_name("agency", &self.name)?;
        validate_name("coordinator", &self.coordinator.name)?;
        for a in std::iter::once(&self.coordinator).chain(&self.agents) {
            validate_relative(&format!("role_file of {:?}", a.name), &a.role_file)?;
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.agents {
            validate_name("agent", &a.name)?;
            if RESERVED_NAMES.contains(&a.name.as_str()) {
                return Err(Invalid::new(
                    format!("agent name {:?} is reserved", a.name),
                    format!(
                        "choose another name; reserved: {}",
                        RESERVED_NAMES.join(", ")
                    ),
                ));
            }
            if !seen.insert(a.name.as_str()) {
                return Err(Invalid::new(
                    format!("agent {:?} is listed twice", a.name),
                    "give each agent a unique name",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_files_stay_inside() {
        for good in ["coordinator.md", "agents/dev.md", "a/b/c.md"] {
            assert!(validate_relative("role_file", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x.md",
            "agents/../../x.md",
            "./x.md",
            "a\n.md",
            "agents/..",
        ] {
            assert!(validate_relative("role_file", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        for good in ["a", "CodeAgency", "python-agent", "x_1", &"a".repeat(64)] {
            assert!(validate_name("agency", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            "a.b",
            "a:b",
            "$(touch x)",
            "-rf",
            "1abc",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(validate_name("agency", bad).is_err(), "{bad}");
        }
    }
}
