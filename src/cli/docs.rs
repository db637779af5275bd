//! `agency completions` and `agency man`: generated from the clap
//! definitions, so they never drift from the real commands.

use std::io::Write;

use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;
use crate::error::{Error, Result};

/// Print a shell completion script
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency completions bash > ~/.local/share/bash-completion/completions/agency
  agency completions zsh > ~/.zfunc/_agency      # with `fpath+=~/.zfunc` before compinit
  agency completions fish > ~/.config/fish/completions/agency.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for
    pub shell: Shell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "agency", &mut out);
    write_stdout(&out)
}

/// Print the manual page (roff), or write every page to a folder
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  agency man | man -l -                          the overview, now
  agency man create | man -l -                   one command's page
  agency man --out-dir ~/.local/share/man/man1   every page, for `man agency`, `man agency-create`")]
pub struct ManArgs {
    /// One command's page (e.g. `create`) instead of the overview
    pub command: Option<String>,
    /// Write agency.1 and one agency-COMMAND.1 per command into this folder
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out_dir: Option<std::path::PathBuf>,
}

pub fn man(args: &ManArgs) -> Result<()> {
    let cmd = Cli::command();
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        clap_mangen::generate_to(cmd, dir).map_err(|e| Error::io(dir.display(), e))?;
        return super::print_lines([format!("manual pages written to {}", dir.display())]);
    }
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                let names: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
                Error::user(
                    format!("no command {name:?}"),
                    format!("one of: {}", names.join(", ")),
                )
            })?;
            sub.name(format!("agency-{name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::io("rendering the manual", e))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    std::io::stdout()
        .lock()
        .write_all(bytes)
        .map_err(|e| Error::io("stdout", e))
}
