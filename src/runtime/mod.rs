//! Agent runtimes: profiles (readiness and status from the screen) and the
//! scripted agent, a deterministic stand-in for
//! an LLM agent CLI that the offline demo and users' own pipelines run on.

pub mod permissions;
pub mod profile;
pub mod scripted;

/// Interactive shells: nothing is ever typed into them as a command line.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish", "sh", "dash", "ksh", "tcsh"];

/// Whether an agent's command leaves a person at a shell prompt: a shell
/// with no `-c` script (`bash`, `zsh -l`), not `bash -c '… exec cat'`.
pub fn interactive_shell(command: &str) -> bool {
    let Some(words) = shlex::split(command) else {
        return false;
    };
    let mut words = words.iter().skip_while(|w| *w == "exec");
    let program = words.next().map(|w| w.rsplit('/').next().unwrap_or(w));
    program.is_some_and(|p| SHELLS.contains(&p))
        && !words.any(|w| w.starts_with('-') && !w.starts_with("--") && w.contains('c'))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shell_without_a_script_is_interactive() {
        for c in ["bash", "sh", "exec zsh -l", "/bin/bash -i"] {
            assert!(interactive_shell(c), "{c}");
        }
        for c in [
            "bash -c 'exec cat'",
            "sh -lc x",
            "claude",
            "cat >> x",
            "bash 'unclosed",
        ] {
            assert!(!interactive_shell(c), "{c}");
        }
    }
}
