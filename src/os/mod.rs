//! The doors to the operating system's programs: tmux, git and child
//! processes. Nothing else runs tmux, opens a repository or spawns a
//! process.

pub mod clock;
pub mod git;
pub(crate) mod interrupt;
pub mod process;
pub mod tmux;
