//! Logs a person can read: one line per event with its time and level,
//! through `tracing`. `AGENCY_LOG` sets what is written (`info` by
//! default; `debug` adds every delivery; any `tracing` filter works).
//!
//! Writing a log line never fails its caller: on a full disk the router
//! loses log lines, not messages.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Sends this process's log lines to `path` (appended), and to stderr as
/// well if `also_stderr`. Without a file that can be opened, they go to
/// stderr alone, if at all.
pub fn to_file(path: &Path, also_stderr: bool) {
    let file = OpenOptions::new().create(true).append(true).open(path).ok();
    let filter = EnvFilter::try_from_env("AGENCY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(Quiet { file, also_stderr }))
        .with_ansi(false)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
}

/// A writer that reports success whatever happens: a failed log write is
/// not worth stopping for (and reporting it would need another write).
struct Quiet {
    file: Option<File>,
    also_stderr: bool,
}

impl Write for Quiet {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.file {
            let _ = f.write_all(buf);
        }
        if self.also_stderr {
            let _ = io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
