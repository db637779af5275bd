//! The domain's vocabulary: the closed sets of values the tool speaks of,
//! `agency.json`'s shape and the rules for names, as plain types with
//! their parsing. No I/O: every layer above uses these.

pub mod message;
pub mod spec;

pub use message::{is_bidi_control, sanitize, validate_type, Header, IntraType};

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

/// A closed set of values written as lowercase words: the enum, its
/// words (`as_str`, `Display`), and its parsing (`FromStr`, naming the
/// words when one is unknown). Serde and clap derive the same words.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::Invalid;

            fn from_str(s: &str) -> std::result::Result<$name, $crate::model::Invalid> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let words: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        $crate::model::Invalid::new(
                            format!("unknown {} {s:?}", $what),
                            format!("use one of: {}", words.join(", ")),
                        )
                    })
            }
        }
    };
}
pub(crate) use closed_set;

closed_set! {
    /// How much an agent's CLI does without asking.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Permissions ("permissions") {
        /// Agency's own commands run without asking; everything else as the
        /// CLI does by default.
        #[default]
        Bus = "bus",
        /// Nothing pre-approved: the CLI asks.
        Ask = "ask",
        /// `bus`, and the CLI edits files in its working copy without asking.
        Project = "project",
        /// The CLI's "approve everything" mode.
        All = "all",
    }
}

closed_set! {
    /// How an agency's agents are laid out in tmux.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
    #[serde(rename_all = "lowercase")]
    pub enum Layout ("layout") {
        /// One window per agent
        #[default]
        Windows = "windows",
        /// The coordinator and specialists as panes of window 0
        Panes = "panes",
    }
}

closed_set! {
    /// What a pane of an agency is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role ("role") {
        Coordinator = "coordinator",
        Specialist = "specialist",
        /// The agency's own shell (its `scripts/`).
        Tools = "tools",
        /// A shell in `sandbox/testing`.
        Sandbox = "sandbox",
    }
}

impl Role {
    /// An agent (messages reach it), not a utility window.
    pub fn is_agent(self) -> bool {
        matches!(self, Role::Coordinator | Role::Specialist)
    }
}

closed_set! {
    /// Whether an agency should be up: `running` from `create` until
    /// `kill` (`restore` brings back the running ones).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum AgencyState ("agency state") {
        Running = "running",
        Stopped = "stopped",
    }
}

closed_set! {
    /// Where a message is: `queued` until typed into its pane, `failed`
    /// when it could not be, `acked` once its agent says it has it,
    /// `cancelled` when its agency was purged before it got there.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum MessageState ("message state") {
        Queued = "queued",
        Delivered = "delivered",
        Failed = "failed",
        Acked = "acked",
        /// Its agency was purged before it was delivered.
        Cancelled = "cancelled",
    }
}

closed_set! {
    /// Where an item of the approval queue is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum ApprovalStatus ("approval status") {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
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

#[cfg(test)]
mod tests {
    use super::*;

    // `status` lines its columns up with `{:11}`: the words must take it.
    #[test]
    fn closed_set_words_take_width_and_alignment() {
        assert_eq!(format!("{:11}|", Role::Coordinator), "coordinator|");
        assert_eq!(format!("{:11}|", Role::Specialist), "specialist |");
        assert_eq!(format!("{:>8}|", MessageState::Queued), "  queued|");
    }
}
