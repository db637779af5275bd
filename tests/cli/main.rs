//! One integration-test binary: the real `agency` binary against real tmux
//! (a private `-L` server per test), git and SQLite, in temp workspaces.

mod common;

mod agencies;
mod approvals;
mod bad_input;
mod delivery;
mod demo;
mod live_agents;
mod messages;
mod permissions;
mod runtime;
mod screens;
mod standin;
mod tui;
mod workspace;
mod worktrees;
