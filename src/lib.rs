//! `agency`: runs agencies of AI coding agents in tmux.
//!
//! Module map, by layer from the top (see ARCHITECTURE.md; `cargo test
//! --test layers` fails on an import that points up a layer or makes a
//! cycle):
//!
//! cli:
//! - [`cli`]: clap definitions, one file per command family, dispatch; no logic.
//!
//! features:
//! - [`agency`]: bringing agencies up (a pure plan, then tmux), list, status, kill, templates, answer.
//! - [`bus`]: messages: send/broadcast/schedule/outbox, inbox and ack, the router that types into panes.
//! - [`approval`]: handoffs, sandbox test runs, submit, approve (the crash-safe landing), reject.
//! - [`tasks`]: the task graph: tasks and their needs, claims, dispatch and unblocking, leases, plans.
//! - [`monitor`]: what needs the human, the fleet at a glance, metrics, notifications.
//! - [`tui`]: the approval screen and the monitor (ratatui): state and update, drawing, the event loop.
//! - [`demo`]: the offline demo on scripted agents.
//!
//! core:
//! - [`context`]: `Ctx` (workspace, store, tmux), `Ctx::record` (the one event path), the one recipient check.
//! - [`runtime`]: agent profiles (readiness, status), permissions, the scripted agent.
//! - [`error`]: the error type, with a hint for what to do next.
//!
//! doors (one to each outside system):
//! - [`store`]: the only code that writes SQL: the registry database, its migrations, events, the JSON mirrors.
//! - [`os`]: tmux (`os::tmux`), git (`os::git`, git2) and child processes and signals (`os::process`).
//! - [`workspace`]: finding the workspace, its paths, `agency.toml`, `agency.json`, `init`, locks, atomic writes.
//! - [`logging`]: log files a person can read (`tracing`), that never fail their writer.
//!
//! model:
//! - [`model`]: the domain's vocabulary: the closed sets as enums, `Address`, `Event`, the message `Header`, `agency.json`'s types and name rules; no I/O.

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
