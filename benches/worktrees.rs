//! Benchmark: create an agency of 10 specialists, each with its own worktree,
//! on a repository of 5,000 files. Run with `cargo bench --bench worktrees`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const FILES: usize = 5_000;
const SPECIALISTS: usize = 10;
const ROUNDS: usize = 2;

fn make_repo(dir: &Path) {
    let mut s = String::from(
        "commit refs/heads/main\ncommitter bench <b@example.com> 1700000000 +0000\ndata 4\ninit\n",
    );
    for f in 0..FILES {
        let body = format!("file {f}\n{}\n", "x".repeat(200));
        let _ = write!(
            s,
            "M 644 inline d{:02}/f{f:04}.txt\ndata {}\n{body}\n",
            f % 50,
            body.len()
        );
    }
    support::fast_import(dir, &s);
}

fn main() {
    let agents: Vec<String> = (1..=SPECIALISTS).map(|i| format!("s{i}")).collect();
    println!("create 1 agency x {SPECIALISTS} specialists with worktrees, {FILES}-file repository");
    println!(
        "{:>5} {:>10} {:>16}",
        "round", "create s", "files checked out"
    );
    for round in 1..=ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("project");
        std::fs::create_dir_all(&repo).unwrap();
        make_repo(&repo);
        let home = dir.path().join("ws");
        let socket = format!("agency-bench-wt-{}-{round}", std::process::id());
        let agency = |args: &[&str]| {
            let cmd = &mut Command::new(env!("CARGO_BIN_EXE_agency"));
            let out = support::isolate(cmd, &dir.path().join("user-home"))
                .arg("--home")
                .arg(&home)
                .args(args)
                .env("AGENCY_TMUX_SOCKET", &socket)
                .env("SHELL", "/bin/sh")
                .env_remove("TMUX")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "agency {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        agency(&[
            "init",
            home.to_str().unwrap(),
            "--project",
            repo.to_str().unwrap(),
        ]);
        let start = Instant::now();
        agency(&[
            "create",
            "Big",
            "--agents",
            &agents.join(","),
            "--agent-command",
            "cat",
        ]);
        let secs = start.elapsed().as_secs_f64();
        let checked_out: usize = agents
            .iter()
            .map(|a| walk(&home.join("agencies/Big/worktrees").join(a)))
            .sum();
        println!("{round:>5} {secs:>10.3} {checked_out:>16}");
        if let Ok(pid) = std::fs::read_to_string(home.join("registry/router.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let path = Command::new("tmux")
            .args(["-L", &socket, "display-message", "-p", "#{socket_path}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let _ = Command::new("tmux")
            .args(["-L", &socket, "kill-server"])
            .status();
        let _ = std::fs::remove_file(path);
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.file_name().is_some_and(|n| n == ".git") {
                        0
                    } else if p.is_dir() {
                        walk(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
