//! The doors to the operating system's programs: tmux, git and child
//! processes. Nothing else runs tmux, opens a repository or spawns a
//! process.

pub mod git;
pub mod tmux;
