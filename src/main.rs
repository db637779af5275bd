use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = agency::cli::Cli::parse();
    let home = cli.home.clone();
    match agency::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`agency list | head`) is not an error worth a word.
        Err(agency::error::Error::Io { source, .. }) if source.kind() == ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {}", pasteable(&hint, home.as_deref()));
            }
            ExitCode::from(1)
        }
    }
}

/// A hint's commands (`` `agency ...` ``) as they paste here: the binary
/// by its full path when `agency` on PATH is not this one, and the
/// `--home` this command was given.
fn pasteable(hint: &str, home: Option<&std::path::Path>) -> String {
    let mut me = agency::cli::program();
    if let Some(h) = home {
        me = format!(
            "{me} --home {}",
            agency::cli::quote(&h.display().to_string())
        );
    }
    if me == "agency" {
        return hint.to_string();
    }
    hint.replace("`agency ", &format!("`{me} "))
}
