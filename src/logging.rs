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

/// Sends this process's log lines to `path` (appended). Without a file
/// that can be opened, they go nowhere.
pub fn to_file(path: &Path) {
    let file = OpenOptions::new().create(true).append(true).open(path).ok();
    let filter = EnvFilter::try_from_env("AGENCY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Mutex::new(Quiet(file)))
        .with_ansi(false)
        .with_target(false)
        .log_internal_errors(false)
        .try_init();
}

/// A writer that reports success whatever happens: a failed log write is
/// not worth stopping for (and reporting it would need another write).
struct Quiet(Option<File>);

impl Write for Quiet {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
