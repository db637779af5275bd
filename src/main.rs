use std::io::ErrorKind;
use std::process::ExitCode;

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
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(1)
        }
    }
}
