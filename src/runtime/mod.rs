//! Agent runtimes: profiles (readiness and status from the screen) and the
//! scripted agent, a deterministic stand-in for
//! an LLM agent CLI that the offline demo and users' own pipelines run on.

pub mod permissions;
pub mod profile;
pub mod scripted;

/// Interactive shells: nothing is ever typed into them as a command line.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish", "sh", "dash", "ksh", "tcsh"];
