//! Command-line definitions and dispatch: one file per command family, each
//! with its `Args` and a `run` function. No logic beyond argument checks.

mod agencies;
mod approvals;
mod demo;
mod docs;
mod messages;
mod monitor;
mod progress;
mod tasks;
mod workspace;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::is_bidi_control;
use crate::workspace::Workspace;

/// Run agencies of AI coding agents in tmux.
#[derive(Debug, Parser)]
#[command(
    name = "agency",
    version,
    about,
    after_help = "Examples:
  agency demo --no-tui                    the whole flow, offline, in a throw-away workspace
  agency init ws --project ~/src/app      a workspace for your repository
  agency --home ws create CodeAgency      an agency in tmux; `attach` to watch it
  agency --home ws status                 who is idle, busy, waiting, and what is queued

`agency COMMAND --help` shows each command's options and examples."
)]
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
    Monitor(monitor::MonitorArgs),
    Metrics(monitor::MetricsArgs),
    Task(tasks::TaskArgs),
    Plan(tasks::PlanArgs),
    Demo(demo::DemoArgs),
    Agent(demo::AgentArgs),
    Completions(docs::CompletionsArgs),
    Man(docs::ManArgs),
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
        Command::Monitor(args) => monitor::monitor(&mut open(home)?, args),
        Command::Metrics(args) => monitor::metrics(&open(home)?, args),
        Command::Task(args) => tasks::task(&mut open(home)?, args),
        Command::Plan(args) => tasks::plan(&mut open(home)?, args),
        Command::Demo(args) => demo::demo(home, args),
        Command::Agent(args) => demo::agent(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
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

/// Prints lines of text on stdout, never a control character: they hold
/// what messages, names and files said.
fn print_lines(lines: impl IntoIterator<Item = String>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{}", printable(&l)).map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

/// Prints lines on stderr (warnings, notes), escaped as `print_lines`
/// does; a closed stderr is no reason to fail what was done.
fn eprint_lines(lines: impl IntoIterator<Item = String>) {
    let mut err = std::io::stderr().lock();
    for l in lines {
        let _ = writeln!(err, "{}", printable(&l));
    }
}

/// `text` safe for a terminal: control characters other than newline and
/// tab (ESC, BEL, NUL, C1 codes such as CSI) are shown escaped (`\x1b`),
/// so nothing printed can move the cursor, retitle the window or answer
/// back; the bidi controls (`model::is_bidi_control`) as `\u{202e}`, so
/// nothing printed reads backwards.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let odd = |c: char| (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c);
    if !text.chars().any(odd) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            // Control characters are all below U+0100.
            c if odd(c) && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if odd(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The one formatter for the commands in what the tool tells the human
/// (hints, notes): every `agency COMMAND` in `text`, in backticks or not,
/// names this binary as it pastes here, with `--home` when a plain
/// `agency` here would not find `ws` (see `workspace::invocation`).
pub fn pasteable(text: &str, ws: Option<&Workspace>) -> String {
    const WORD: &str = "agency ";
    let me = ws.map_or_else(program, invocation);
    if me == "agency" || !text.contains(WORD) {
        return text.to_string();
    }
    use clap::CommandFactory;
    let cli = Cli::command();
    let is_command = |w: &str| cli.get_subcommands().any(|c| c.get_name() == w);
    let mut out = String::with_capacity(text.len() + me.len());
    let mut rest = text;
    while let Some(i) = rest.find(WORD) {
        let (before, after) = (&rest[..i], &rest[i + WORD.len()..]);
        // A word of its own (not `the-agency `, not a path's `bin/agency `).
        let alone = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || "`(\"'".contains(c));
        let next = after
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .next()
            .unwrap_or("");
        out.push_str(before);
        if alone && is_command(next) {
            out.push_str(&me);
            out.push(' ');
        } else {
            out.push_str(WORD);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Splits a comma-separated flag value, dropping blanks.
fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub use crate::workspace::{invocation, program, quote};

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and subcommand, with its path (`sandbox deploy`).
    fn all(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let p = format!("{path} {}", sub.get_name()).trim().to_string();
            out.push((p.clone(), sub.clone()));
            all(sub, p, out);
        }
    }

    #[test]
    fn pasteable_names_this_binary_in_every_command_and_nothing_else() {
        // The test binary is no `agency` on PATH: named by its full path.
        let me = super::program();
        assert_ne!(me, "agency");
        let text = "reopen it first: agency task reopen 3 (or `agency task show 3`; \
                    agency list): the-agency task, bin/agency task, an agency called A, agency --home";
        assert_eq!(
            super::pasteable(text, None),
            format!(
                "reopen it first: {me} task reopen 3 (or `{me} task show 3`; \
                 {me} list): the-agency task, bin/agency task, an agency called A, agency --home"
            )
        );
    }

    #[test]
    fn every_command_has_examples_and_every_argument_a_line_of_help() {
        let mut cmds = Vec::new();
        all(&super::Cli::command(), String::new(), &mut cmds);
        assert!(cmds.len() > 25);
        for (path, c) in &cmds {
            let after = c
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.starts_with("Examples:"),
                "`agency {path}` has no examples"
            );
            assert!(
                c.get_about().is_some(),
                "`agency {path}` has no description"
            );
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || a.is_global_set() {
                    continue;
                }
                assert!(a.get_help().is_some(), "`agency {path}`: {id} has no help");
                assert_ne!(id, "version", "`agency {path}` has --version");
            }
        }
        super::Cli::command().debug_assert();
    }
}
