//! The domain's vocabulary: the closed sets of values the tool speaks of,
//! `agency.json`'s shape and the rules for names, as plain types with
//! their parsing. No I/O: every layer above uses these.

pub mod message;
pub mod spec;

pub use message::{sanitize, Header};

use serde::{Deserialize, Serialize};

/// A value that breaks a rule of the domain: what is wrong, and how to put
/// it right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub message: String,
    pub hint: String,
}

impl Invalid {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Invalid {
        Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// How much an agent's CLI does without asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permissions {
    /// Agency's own commands run without asking; everything else as the
    /// CLI does by default.
    #[default]
    Bus,
    /// Nothing pre-approved: the CLI asks.
    Ask,
    /// `bus`, and the CLI edits files in its working copy without asking.
    Project,
    /// The CLI's "approve everything" mode.
    All,
}

impl Permissions {
    pub fn as_str(self) -> &'static str {
        match self {
            Permissions::Bus => "bus",
            Permissions::Ask => "ask",
            Permissions::Project => "project",
            Permissions::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Windows,
    Panes,
}

impl Layout {
    pub fn parse(s: &str) -> Result<Layout, Invalid> {
        match s {
            "windows" => Ok(Layout::Windows),
            "panes" => Ok(Layout::Panes),
            other => Err(Invalid::new(
                format!("unknown layout {other:?}"),
                "use `--layout windows` or `--layout panes`",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Windows => "windows",
            Layout::Panes => "panes",
        }
    }
}

/// What a pane of an agency is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Coordinator,
    Specialist,
    /// The agency's own shell (its `scripts/`).
    Tools,
    /// A shell in `sandbox/testing`.
    Sandbox,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Specialist => "specialist",
            Role::Tools => "tools",
            Role::Sandbox => "sandbox",
        }
    }

    /// An agent (messages reach it), not a utility window.
    pub fn is_agent(self) -> bool {
        matches!(self, Role::Coordinator | Role::Specialist)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Role, Invalid> {
        [
            Role::Coordinator,
            Role::Specialist,
            Role::Tools,
            Role::Sandbox,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            Invalid::new(
                format!("unknown role {s:?}"),
                "roles are coordinator, specialist, tools and sandbox",
            )
        })
    }
}

/// An agent as the bus addresses it: `AGENCY/AGENT`. `Ctx::resolve` is
/// the one check that it exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub agency: String,
    pub agent: String,
}

impl Address {
    pub fn new(agency: &str, agent: &str) -> Address {
        Address {
            agency: agency.to_string(),
            agent: agent.to_string(),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.agency, self.agent)
    }
}

/// `AGENCY/AGENT`, both valid names.
impl std::str::FromStr for Address {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Address, Invalid> {
        let (agency, agent) = s.split_once('/').ok_or_else(|| {
            Invalid::new(
                format!("{s:?} is not AGENCY/AGENT"),
                "name the agent with its agency, e.g. CodeAgency/python-agent",
            )
        })?;
        spec::validate_name("agency", agency)?;
        spec::validate_name("agent", agent)?;
        Ok(Address::new(agency, agent))
    }
}

/// Something that happened, to be recorded once: a row of the registry's
/// `events` table and, for an agency's event, the same in a line of its
/// `logs/activity.log` (see `store::events` for the shape).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub agency: Option<String>,
    /// Dotted, subject first: `message.delivered`, `task.claimed`, `kill`.
    pub kind: String,
    /// A JSON object; ids first, then what a reader of the log needs.
    pub detail: serde_json::Value,
}

impl Event {
    pub fn new(agency: &str, kind: &str, detail: serde_json::Value) -> Event {
        Event {
            agency: Some(agency.to_string()),
            kind: kind.to_string(),
            detail,
        }
    }
}
