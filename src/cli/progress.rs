//! What a long test run shows while it goes: on a terminal, a spinner with
//! the elapsed time, the test command and its last line of output; with
//! `--stream`, the output itself. All on stderr, so stdout keeps only the
//! result (and `--json` stays one document).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::approval::Watch;

pub struct Progress {
    bar: Option<ProgressBar>,
    stream: bool,
    command: String,
    /// Output after the last newline, waiting for the rest of its line.
    partial: String,
    last: String,
}

impl Progress {
    /// `what` names the run (e.g. `testing feature/x`).
    pub fn new(what: &str, stream: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix} {wide_msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            stream,
            command: String::new(),
            partial: String::new(),
            last: String::new(),
        }
    }

    fn show(&self) {
        if let Some(bar) = &self.bar {
            let last = if self.last.is_empty() {
                String::new()
            } else {
                format!(" · {}", self.last)
            };
            bar.set_message(format!("`{}`{last}", self.command));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Output as it may reach the human's terminal: no escape sequences (a
/// branch's tests print whatever they like), only text, newlines and tabs.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

impl Watch for Progress {
    fn started(&mut self, command: &str, commit: &str) {
        self.command = clean(command).replace('\n', " ");
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!(
                "{} at {}",
                bar.prefix(),
                &commit[..commit.len().min(10)]
            ));
        }
        self.show();
    }

    fn progress(&mut self, _elapsed: Duration, output: &[u8]) {
        if output.is_empty() {
            return;
        }
        let text = clean(&String::from_utf8_lossy(output));
        if self.stream {
            let write = || {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(text.as_bytes());
                let _ = err.flush();
            };
            match &self.bar {
                Some(bar) => bar.suspend(write),
                None => write(),
            }
        }
        self.partial.push_str(&text);
        if let Some(i) = self.partial.rfind('\n') {
            if let Some(line) = self.partial[..i]
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
            {
                self.last = line.trim().to_string();
            }
            self.partial.drain(..=i);
        }
        self.show();
    }
}
