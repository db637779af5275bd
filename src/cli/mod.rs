//! Command-line definitions and dispatch: one file per command family, each
//! with its `Args` and a `run` function. No logic beyond argument checks.

mod agencies;
mod approvals;
mod demo;
mod messages;
mod workspace;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::agency::Ctx;
use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// Run agencies of AI coding agents in tmux.
#[derive(Debug, Parser)]
#[command(name = "agency", version, about, propagate_version = true)]
pub struct Cli {
    /// The workspace folder (else AGENCY_HOME, else the nearest folder upwards with agency.toml)
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(workspace::InitArgs),
    Templates(workspace::TemplatesArgs),
    Create(agencies::CreateArgs),
    List(agencies::ListArgs),
    Status(agencies::StatusArgs),
    Attach(agencies::AttachArgs),
    Kill(agencies::KillArgs),
    Answer(agencies::AnswerArgs),
    Send(messages::SendArgs),
    SendInter(messages::SendInterArgs),
    Broadcast(messages::BroadcastArgs),
    Inbox(messages::InboxArgs),
    Ack(messages::AckArgs),
    Log(messages::LogArgs),
    Router(messages::RouterArgs),
    Schedule(messages::ScheduleArgs),
    Restore(messages::RestoreArgs),
    Handoff(approvals::HandoffArgs),
    Sandbox(approvals::SandboxArgs),
    Submit(approvals::SubmitArgs),
    Approvals(approvals::ApprovalsArgs),
    Approve(approvals::ApproveArgs),
    Reject(approvals::RejectArgs),
    Demo(demo::DemoArgs),
    Agent(demo::AgentArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let home = cli.home.as_deref();
    match &cli.command {
        Command::Init(args) => workspace::init(home, args),
        Command::Templates(args) => workspace::templates(home, args),
        Command::Create(args) => agencies::create(&mut open(home)?, args),
        Command::List(args) => agencies::list(&open(home)?, args),
        Command::Status(args) => agencies::status(&mut open(home)?, args),
        Command::Attach(args) => agencies::attach(&open(home)?, args),
        Command::Kill(args) => agencies::kill(&mut open(home)?, args),
        Command::Answer(args) => agencies::answer(&mut open(home)?, args),
        Command::Send(args) => messages::send(&mut open(home)?, args),
        Command::SendInter(args) => messages::send_inter(&mut open(home)?, args),
        Command::Broadcast(args) => messages::broadcast(&mut open(home)?, args),
        Command::Inbox(args) => messages::inbox(&open(home)?, args),
        Command::Ack(args) => messages::ack(&mut open(home)?, args),
        Command::Log(args) => messages::log(&open(home)?, args),
        Command::Router(args) => messages::router(Workspace::locate(home)?, args),
        Command::Schedule(args) => messages::schedule(&mut open(home)?, args),
        Command::Restore(args) => messages::restore(&mut open(home)?, args),
        Command::Handoff(args) => approvals::handoff(&mut open(home)?, args),
        Command::Sandbox(args) => approvals::sandbox(&open(home)?, args),
        Command::Submit(args) => approvals::submit(&mut open(home)?, args),
        Command::Approvals(args) => approvals::approvals(&mut open(home)?, args),
        Command::Approve(args) => approvals::approve(&mut open(home)?, args),
        Command::Reject(args) => approvals::reject(&mut open(home)?, args),
        Command::Demo(args) => demo::demo(home, args),
        Command::Agent(args) => demo::agent(args),
    }
}

fn open(home: Option<&std::path::Path>) -> Result<Ctx> {
    Ctx::open(Workspace::locate(home)?)
}

/// Prints one JSON document on stdout.
fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain data serializes");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(|e| Error::io("stdout", e))
}

/// Prints lines of text on stdout.
fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}").map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

/// Splits a comma-separated flag value, dropping blanks.
fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}
