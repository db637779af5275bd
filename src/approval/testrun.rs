//! Running a test command in a sandbox, with a timeout, and reading a
//! summary from what it printed.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::os::interrupt;
use crate::os::process::{self, Ended};

/// What a test run reported.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Summary {
    #[serde(rename = "tests_passed")]
    pub passed: Option<u64>,
    #[serde(rename = "tests_failed")]
    pub failed: Option<u64>,
    pub coverage: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestRun {
    pub command: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
    pub log: String,
    #[serde(flatten)]
    pub summary: Summary,
}

impl TestRun {
    /// Passed: exited 0, in time, and no test reported failing.
    pub fn ok(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.summary.failed.unwrap_or(0) == 0
    }
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("valid pattern")
}

// cargo test: `test result: ok. 12 passed; 1 failed; 0 ignored; ...` (one per binary).
static CARGO: LazyLock<Regex> =
    LazyLock::new(|| re(r"test result: \w+\. (\d+) passed; (\d+) failed"));
// nextest: `Summary [ 0.5s] 12 tests run: 11 passed (1 slow), 1 failed, 0 skipped`.
static NEXTEST: LazyLock<Regex> =
    LazyLock::new(|| re(r"\d+ tests? run: (\d+) passed(?: \([^)]*\))?(?:, (\d+) failed)?"));
// pytest's last line: `==== 3 failed, 10 passed, 1 skipped in 0.12s ====`.
static PYTEST: LazyLock<Regex> = LazyLock::new(|| re(r"^=+ (.*) in [\d.]+s(?: \([^)]*\))? =+$"));
static COUNT: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+) (passed|failed|errors?)"));
// The plain line any runner can print: `N passed, N failed` (`, N skipped` may follow).
static PLAIN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:\w+: )?(\d+) passed, (\d+) failed(?:, \d+ skipped)?$"));
// Coverage: coverage.py `TOTAL ... 87%`, go `coverage: 87.5% of statements`,
// tarpaulin `87.50% coverage`, and a generic `coverage: 87%`.
static COVERAGE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        re(r"^TOTAL\s+.*?(\d+(?:\.\d+)?)%\s*$"),
        re(r"(?i)coverage:?\s+(\d+(?:\.\d+)?)%"),
        re(r"(?i)(\d+(?:\.\d+)?)%\s+coverage"),
    ]
});

/// Reads the counts from a test run's output. Runners are tried in turn;
/// cargo's per-binary lines are added up.
pub fn parse_summary(output: &str) -> Summary {
    let mut s = Summary::default();
    let lines: Vec<&str> = output.lines().map(str::trim_end).collect();
    let mut cargo = (0u64, 0u64, false);
    for l in &lines {
        if let Some(c) = CARGO.captures(l) {
            cargo.0 += c[1].parse::<u64>().unwrap_or(0);
            cargo.1 += c[2].parse::<u64>().unwrap_or(0);
            cargo.2 = true;
        }
    }
    if cargo.2 {
        s.passed = Some(cargo.0);
        s.failed = Some(cargo.1);
    }
    for l in lines.iter().rev() {
        if s.passed.is_some() {
            break;
        }
        if let Some(c) = NEXTEST.captures(l) {
            s.passed = c[1].parse().ok();
            s.failed = Some(c.get(2).map_or(0, |m| m.as_str().parse().unwrap_or(0)));
        } else if let Some(c) = PLAIN.captures(l.trim()) {
            s.passed = c[1].parse().ok();
            s.failed = c[2].parse().ok();
        } else if let Some(c) = PYTEST.captures(l.trim()) {
            let (mut passed, mut failed, mut any) = (0, 0, false);
            for m in COUNT.captures_iter(&c[1]) {
                let n: u64 = m[1].parse().unwrap_or(0);
                any = true;
                match &m[2] {
                    "passed" => passed += n,
                    _ => failed += n,
                }
            }
            if any {
                s.passed = Some(passed);
                s.failed = Some(failed);
            }
        }
    }
    'cov: for l in lines.iter().rev() {
        for r in COVERAGE.iter() {
            if let Some(c) = r.captures(l.trim()) {
                s.coverage = c[1].parse().ok();
                break 'cov;
            }
        }
    }
    s
}

/// The variable every test process carries: the folder it runs in, so the
/// processes of a run whose `agency` was killed can be found and ended.
pub const RUN_VAR: &str = "AGENCY_SANDBOX_RUN";

/// Runs `command` with `sh -c` in `dir`, output (both streams) to `log`,
/// killed with its whole process group after `timeout`, or as soon as a
/// signal is noted (see [`crate::os::interrupt`]); tells `watch` as it goes
/// how long it has run and what the command printed since the last call.
pub fn run_watched(
    dir: &Path,
    command: &str,
    timeout: Duration,
    log: &Path,
    watch: &mut dyn FnMut(Duration, &[u8]),
) -> Result<TestRun> {
    let env = [
        ("AGENCY_SANDBOX", OsStr::new("1")),
        (RUN_VAR, dir.as_os_str()),
    ];
    let run = process::Shell {
        command,
        dir,
        env: &env,
        log,
        timeout,
    };
    let ended = process::run_shell(&run, watch)
        .map_err(|e| Error::io(format!("running {command:?}"), e))?;
    let (exit_code, timed_out, seconds) = match ended {
        Ended::Finished {
            exit_code,
            timed_out,
            seconds,
        } => (exit_code, timed_out, seconds),
        Ended::Interrupted(sig) => {
            return Err(Error::user(
                format!(
                    "interrupted by {}: the tests were stopped",
                    interrupt::name(sig)
                ),
                "run it again when you are ready",
            ))
        }
    };
    let text = std::fs::read(log).map_err(|e| Error::io(log.display(), e))?;
    Ok(TestRun {
        command: command.to_string(),
        exit_code,
        timed_out,
        seconds,
        log: log.display().to_string(),
        summary: parse_summary(&String::from_utf8_lossy(&text)),
    })
}

/// Ends every process left from the test run named `run` (its folder's
/// name, found in each process's [`RUN_VAR`]). Returns how many were
/// signalled.
pub fn end_leftovers(run: &str) -> usize {
    process::kill_tagged(RUN_VAR, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(s: &str) -> (Option<u64>, Option<u64>) {
        let x = parse_summary(s);
        (x.passed, x.failed)
    }

    #[test]
    fn cargo_test_lines_add_up() {
        let out = "running 3 tests\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 5 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(counts(out), (Some(8), Some(2)));
    }

    #[test]
    fn nextest_summary() {
        assert_eq!(
            counts(
                "     Summary [   0.532s] 12 tests run: 11 passed (1 slow), 1 failed, 0 skipped"
            ),
            (Some(11), Some(1))
        );
        assert_eq!(
            counts("Summary [ 1.0s] 4 tests run: 4 passed, 0 skipped"),
            (Some(4), Some(0))
        );
    }

    #[test]
    fn pytest_summary() {
        assert_eq!(
            counts("==== 2 failed, 10 passed, 1 skipped in 0.52s ===="),
            (Some(10), Some(2))
        );
        assert_eq!(
            counts("============ 5 passed in 0.01s ============"),
            (Some(5), Some(0))
        );
        assert_eq!(
            counts("=== 1 passed, 1 error in 0.1s ==="),
            (Some(1), Some(1))
        );
    }

    #[test]
    fn plain_line_and_nothing() {
        assert_eq!(
            counts("lots of output\n7 passed, 0 failed\n"),
            (Some(7), Some(0))
        );
        assert_eq!(
            counts("tests: 3 passed, 2 failed, 1 skipped"),
            (Some(3), Some(2))
        );
        assert_eq!(counts("no summary here"), (None, None));
    }

    #[test]
    fn coverage_forms() {
        let cov = |s: &str| parse_summary(s).coverage;
        assert_eq!(cov("TOTAL      120     12    90%"), Some(90.0));
        assert_eq!(
            cov("ok  pkg  0.1s  coverage: 87.5% of statements"),
            Some(87.5)
        );
        assert_eq!(cov("|| 81.25% coverage, 13/16 lines covered"), Some(81.25));
        assert_eq!(cov("3 passed, 0 failed"), None);
    }
}
