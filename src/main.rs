use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use agency::cli::printable;
use clap::Parser;

fn main() -> ExitCode {
    let cli = agency::cli::Cli::parse();
    match agency::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`agency list | head`) is not an error worth a word.
        Err(agency::error::Error::Io { source, .. }) if source.kind() == ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // Errors quote names, paths and messages: printed escaped, and
            // a closed or full stderr is no reason to panic.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", printable(&e.to_string()));
            if let Some(hint) = e.hint() {
                let _ = writeln!(err, "hint: {}", printable(&hint));
            }
            ExitCode::from(1)
        }
    }
}
