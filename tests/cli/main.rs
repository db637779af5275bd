//! One integration-test binary: the real `agency` binary against real tmux
//! (a private `-L` server per test), git and SQLite, in temp workspaces.

// Tests start the programs they drive.
#![allow(clippy::disallowed_methods)]

mod common;

mod agencies;
mod approvals;
mod bad_input;
mod crash;
mod delivery;
mod demo;
mod first_hour;
mod hardening;
mod messages;
mod monitor;
mod permissions;
mod properties;
mod runtime;
mod screens;
mod tasks;
mod tui;
mod workspace;
mod worktrees;
