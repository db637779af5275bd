use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use agency::cli::printable;
use clap::Parser;

fn main() -> ExitCode {
    let cli = match agency::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // A usage error quotes what was typed: escaped like every error.
        Err(e) if e.use_stderr() => {
            let _ = write!(
                std::io::stderr().lock(),
                "{}",
                printable(&e.render().to_string())
            );
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
        Err(e) => e.exit(),
    };
    let home = cli.home.clone();
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
                let _ = writeln!(
                    err,
                    "hint: {}",
                    printable(&pasteable(&hint, home.as_deref()))
                );
            }
            ExitCode::from(1)
        }
    }
}

/// A hint's commands as they paste here (see `cli::pasteable`), for the
/// workspace this command was run on, if any.
fn pasteable(hint: &str, home: Option<&std::path::Path>) -> String {
    let ws = agency::workspace::Workspace::locate(home).ok();
    agency::cli::pasteable(hint, ws.as_ref())
}
