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
