//! Benchmark: create 14 agencies × 5 specialists (8 windows each: coordinator,
//! 5 specialists, tools, sandbox = 112 windows) on a private tmux server, and
//! print windows per second. Run with `cargo bench --bench create`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENCIES: usize = 14;
const SPECIALISTS: usize = 5;
const ROUNDS: usize = 3;

fn agency(home: &str, socket: &str, shell: Option<&str>, args: &[&str]) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agency"));
    if let Some(sh) = shell {
        // tmux takes its default shell from SHELL when its server starts.
        c.env("SHELL", sh);
    }
    let out = c
        .arg("--home")
        .arg(home)
        .args(args)
        .env("AGENCY_TMUX_SOCKET", socket)
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .output()
        .expect("run agency");
    assert!(
        out.status.success(),
        "agency {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Agents run `cat` and utility windows `sh`, so the figure is the tool's and
/// tmux's, not the start-up of whatever rc files the machine's shell reads.
fn main() {
    let agents: Vec<String> = (1..=SPECIALISTS).map(|i| format!("s{i}")).collect();
    let agents = agents.join(",");
    println!(
        "create {AGENCIES} agencies x {SPECIALISTS} specialists, {ROUNDS} rounds per scenario"
    );
    println!(
        "{:>14} {:>5} {:>8} {:>10} {:>10} {:>12} {:>12}",
        "scenario", "round", "windows", "total s", "windows/s", "agency p50", "agency max"
    );
    run("light agents", &agents, Some("cat"), Some("/bin/sh"));
}

fn run(label: &str, agents: &str, agent_command: Option<&str>, shell: Option<&str>) {
    for round in 1..=ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("ws");
        let home = home.to_str().unwrap().to_string();
        let socket = format!("agency-bench-{}-{round}", std::process::id());
        agency(&home, &socket, shell, &["init", &home]);
        let mut per: Vec<Duration> = Vec::new();
        let start = Instant::now();
        for i in 0..AGENCIES {
            let t = Instant::now();
            let name = format!("Bench{i}");
            let mut args = vec!["create", &name, "--agents", agents];
            if let Some(cmd) = agent_command {
                args.extend(["--agent-command", cmd]);
            }
            agency(&home, &socket, shell, &args);
            per.push(t.elapsed());
        }
        let total = start.elapsed();
        let windows = tmux(&socket, &["list-windows", "-a", "-F", "#{window_id}"])
            .lines()
            .count();
        let socket_path = tmux(&socket, &["display-message", "-p", "#{socket_path}"]);
        let _ = tmux(&socket, &["kill-server"]);
        let _ = std::fs::remove_file(socket_path.trim());
        assert_eq!(windows, AGENCIES * (SPECIALISTS + 3));
        per.sort();
        println!(
            "{:>14} {:>5} {:>8} {:>10.3} {:>10.1} {:>10.1}ms {:>10.1}ms",
            label,
            round,
            windows,
            total.as_secs_f64(),
            windows as f64 / total.as_secs_f64(),
            per[per.len() / 2].as_secs_f64() * 1e3,
            per[per.len() - 1].as_secs_f64() * 1e3
        );
    }
}
