//! `agency`: runs agencies of AI coding agents in tmux.
//!
//! Module map (one door to each outside system):
//!
//! - [`cli`]: clap definitions, one file per command family, dispatch; no logic.
//! - [`workspace`]: finding the workspace, its paths, `agency.toml`, `init`, atomic writes.
//! - [`agency`]: agency specs (`agency.json`), templates, create/reconcile/list/status/kill.
//! - [`bus`]: messages: send/broadcast/outbox, inbox and ack, the router that types into panes.
//! - [`git`]: the only code that uses git2: branches, diff stats, sandbox worktrees, the merge.
//! - [`approval`]: handoffs, sandbox test runs and their summaries, submit, approve, reject.
//! - [`tmux`]: the only code that runs tmux, through `tmux_interface`, on the configured socket.
//! - [`store`]: the only code that writes SQL: the registry database, its migrations, the JSON mirrors.
//! - [`runtime`]: agent runtimes: the scripted agent.
//! - [`tasks`]: the task graph: tasks and their needs, claims, dispatch and unblocking, leases, plans.
//! - [`demo`]: the offline demo on scripted agents.
//! - [`monitor`]: what needs the human, the fleet at a glance, metrics, notifications.
//! - [`tui`]: the approval screen and the monitor (ratatui): state and update, drawing, the event loop.
//! - [`error`]: the error type, with a hint for what to do next.
//! - [`logging`]: log files a person can read (`tracing`), that never fail their writer.

// `unsafe` only where an outside library must be called directly, in
// the doors to the system (`os`).
#![deny(unsafe_code)]

pub mod agency;
pub mod approval;
pub mod bus;
pub mod cli;
pub mod context;
pub mod demo;
pub mod error;
pub mod logging;
pub mod model;
pub mod monitor;
pub mod os;
pub mod runtime;
pub mod store;
pub mod tasks;
pub mod tui;
pub mod workspace;
