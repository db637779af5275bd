//! Agent runtimes: profiles (readiness and status from the screen) and the
//! scripted agent, a deterministic stand-in for
//! an LLM agent CLI that the offline demo and users' own pipelines run on.

pub mod permissions;
pub mod profile;
pub mod scripted;

/// Interactive shells: nothing is ever typed into them as a command line.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish", "sh", "dash", "ksh", "tcsh"];

/// A first approximation of an agent's state from what tmux shows of its
/// pane; the profiles refine it per agent CLI from the screen (`unknown`:
/// only the screen can tell).
pub fn pane_state(pane: Option<&crate::os::tmux::PaneInfo>) -> &'static str {
    match pane {
        None => "exited",
        Some(p) if p.dead => "exited",
        Some(p) if SHELLS.contains(&p.current_command.as_str()) => "idle",
        Some(_) => "unknown",
    }
}
