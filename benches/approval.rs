//! Benchmark: `agency submit` + `agency approve` on a repository with 10,000
//! commits and a 500-file diff, excluding the test command's own time.
//! Run with `cargo bench --bench approval`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use support::{fast_import, git};

const COMMITS: usize = 10_000;
const FILES: usize = 1_000;
const CHANGED: usize = 500;
const ROUNDS: usize = 3;

/// 10,000 commits on main over 1,000 files, then `feature` changing 500.
fn make_repo(dir: &Path) {
    let mut s = String::new();
    let who = "bench <bench@example.com> 1700000000 +0000";
    for c in 0..COMMITS {
        let _ = write!(
            s,
            "commit refs/heads/main\nmark :{}\ncommitter {who}\ndata 8\ncommit {}\n",
            c + 1,
            c % 10
        );
        if c > 0 {
            let _ = writeln!(s, "from :{c}");
        }
        let files: Vec<usize> = if c == 0 {
            (0..FILES).collect()
        } else {
            vec![c % FILES]
        };
        for f in files {
            let body = format!("file {f} version {c}\n");
            let _ = write!(
                s,
                "M 644 inline src/f{f:04}.txt\ndata {}\n{body}\n",
                body.len()
            );
        }
    }
    let _ = write!(
        s,
        "commit refs/heads/feature\nmark :{}\ncommitter {who}\ndata 7\nfeature\nfrom :{COMMITS}\n",
        COMMITS + 1
    );
    for f in 0..CHANGED {
        let body = format!("feature change {f}\nsecond line\n");
        let _ = write!(
            s,
            "M 644 inline src/f{f:04}.txt\ndata {}\n{body}\n",
            body.len()
        );
    }
    fast_import(dir, &s);
}

fn agency(home: &Path, args: &[&str]) -> (f64, String) {
    let start = Instant::now();
    let user_home = home.parent().unwrap().join("user-home");
    let out = support::isolate(&mut Command::new(env!("CARGO_BIN_EXE_agency")), &user_home)
        .arg("--home")
        .arg(home)
        .args(args)
        .env(
            "AGENCY_TMUX_SOCKET",
            format!("agency-bench-approval-{}", std::process::id()),
        )
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let t = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "agency {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (t, String::from_utf8(out.stdout).unwrap())
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("project");
    std::fs::create_dir_all(&repo).unwrap();
    let t = Instant::now();
    make_repo(&repo);
    let commits = git(&repo, &["rev-list", "--count", "main"]);
    println!(
        "repository: {} commits on main, {FILES} files, feature changes {CHANGED} (built in {:.1}s)",
        commits.trim(),
        t.elapsed().as_secs_f64()
    );
    let home = dir.path().join("ws");
    agency(
        &home,
        &[
            "init",
            home.to_str().unwrap(),
            "--project",
            repo.to_str().unwrap(),
        ],
    );
    // An agency folder is all submit needs; no tmux session.
    std::fs::create_dir_all(home.join("agencies/CodeAgency")).unwrap();
    std::fs::write(
        home.join("agencies/CodeAgency/agency.json"),
        r#"{"name": "CodeAgency", "coordinator": {"name": "c", "role_file": "coordinator.md"}}"#,
    )
    .unwrap();
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>14} {:>12}",
        "round", "submit s", "tests s", "approve s", "total (no tests)", "git ff s"
    );
    for round in 1..=ROUNDS {
        // Each round re-creates the feature branch off the current main.
        if round > 1 {
            git(&repo, &["branch", "-f", "feature", "main"]);
            git(&repo, &["checkout", "-q", "feature"]);
            for f in 0..CHANGED {
                std::fs::write(
                    repo.join(format!("src/f{f:04}.txt")),
                    format!("round {round} change {f}\n"),
                )
                .unwrap();
            }
            git(&repo, &["commit", "-qam", "again"]);
            git(&repo, &["checkout", "-q", "main"]);
        }
        let (submit_s, out) = agency(
            &home,
            &[
                "submit",
                "CodeAgency",
                "--task",
                &format!("round {round}"),
                "--branch",
                "feature",
                "--test-command",
                "true",
                "--json",
            ],
        );
        let item: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(item["files_changed"], CHANGED);
        let tests_s = item["test_seconds"].as_f64().unwrap();
        let before = git(&repo, &["rev-parse", "main"]).trim().to_string();
        let (approve_s, _) = agency(&home, &["approve", &item["id"].to_string()]);
        // The bare tool on the same change: git fast-forwarding a checkout.
        let after = git(&repo, &["rev-parse", "main"]).trim().to_string();
        git(&repo, &["checkout", "-q", "--detach", &before]);
        let t = Instant::now();
        git(&repo, &["merge", "-q", "--ff-only", &after]);
        let git_s = t.elapsed().as_secs_f64();
        git(&repo, &["checkout", "-q", "main"]);
        println!(
            "{round:>5} {submit_s:>12.3} {tests_s:>12.3} {approve_s:>12.3} {:>14.3} {git_s:>12.3}",
            submit_s - tests_s + approve_s
        );
    }
}
