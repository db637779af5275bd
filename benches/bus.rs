//! Benchmark of the message bus on a private tmux server, printed as a table:
//! (a) `agency send` start → text in the receiver's pane (p50, p99);
//! (b) sustained messages per second spread over 10 panes;
//! (c) the router's resident memory;
//! (d) the same latency for the naive way this tool replaces:
//!     `tmux send-keys TEXT`, `sleep 0.5`, `tmux send-keys Enter`.
//! Run with `cargo bench --bench bus`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agency::store::{NewMessage, Store};

const LATENCY_MESSAGES: usize = 1000;
const THROUGHPUT_MESSAGES: usize = 5000;
const PANES: usize = 10;
const BASELINE_MESSAGES: usize = 20;

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    out: PathBuf,
    socket: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("ws");
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let socket = format!("agency-bench-bus-{}", std::process::id());
        let env = Env {
            _dir: dir,
            home,
            out,
            socket,
        };
        env.agency(&["init", env.home.to_str().unwrap()]);
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_agency"));
        c.arg("--home")
            .arg(&self.home)
            .args(args)
            .env("AGENCY_TMUX_SOCKET", &self.socket)
            .env("SHELL", "/bin/sh")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }

    fn agency(&self, args: &[&str]) {
        let st = self.cmd(args).status().unwrap();
        assert!(st.success(), "agency {args:?}");
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn router_pid(&self) -> Option<u32> {
        fs::read_to_string(self.home.join("registry/router.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(pid) = self.router_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let path = self.tmux(&["display-message", "-p", "#{socket_path}"]);
        let _ = self.tmux(&["kill-server"]);
        let _ = fs::remove_file(path.trim());
    }
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Waits until `path` grows past `len`; true if it did in time.
fn wait_growth(path: &Path, len: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if file_len(path) > len {
            return true;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    false
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let env = Env::new();
    let agents: Vec<String> = (0..PANES).map(|i| format!("rx{i}")).collect();
    let cmd = format!("cat >> {}/$AGENCY_AGENT.out", env.out.display());
    env.agency(&[
        "create",
        "Bench",
        "--agents",
        &agents.join(","),
        "--agent-command",
        &cmd,
    ]);
    env.agency(&["router"]);
    // Let every pane's `cat` start before timing.
    let first = env.out.join("rx0.out");
    env.agency(&["send", "Bench", "rx0", "warm-up"]);
    assert!(
        wait_growth(&first, 0, Duration::from_secs(10)),
        "warm-up never arrived"
    );

    // (a) latency, one message at a time.
    let mut lat = Vec::with_capacity(LATENCY_MESSAGES);
    for i in 0..LATENCY_MESSAGES {
        let before = file_len(&first);
        let start = Instant::now();
        let mut child = env
            .cmd(&["send", "Bench", "rx0", &format!("latency {i}")])
            .spawn()
            .unwrap();
        assert!(
            wait_growth(&first, before, Duration::from_secs(10)),
            "message {i} lost"
        );
        lat.push(start.elapsed());
        assert!(child.wait().unwrap().success());
    }
    lat.sort();

    // (b) throughput: messages queued straight into the registry with the
    // router stopped, then timed from the router's start to the last one
    // arriving.
    if let Some(pid) = env.router_pid() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
        while Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut store = Store::open(&env.home.join("registry")).unwrap();
    let msgs: Vec<NewMessage> = (0..THROUGHPUT_MESSAGES)
        .map(|i| NewMessage {
            from: "bench".into(),
            agency: "Bench".into(),
            agent: agents[i % PANES].clone(),
            kind: "NOTE".into(),
            body: format!("throughput {i}"),
            payload: None,
            origin: None,
            deliver_at: None,
        })
        .collect();
    store.queue_messages(&msgs).unwrap();
    let lines = |env: &Env| -> usize {
        agents
            .iter()
            .map(|a| {
                fs::read_to_string(env.out.join(format!("{a}.out")))
                    .map(|s| s.matches("throughput ").count())
                    .unwrap_or(0)
            })
            .sum()
    };
    let start = Instant::now();
    env.agency(&["router"]);
    let deadline = start + Duration::from_secs(120);
    while lines(&env) < THROUGHPUT_MESSAGES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let arrived = lines(&env);
    let rss_kb = env
        .router_pid()
        .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN);

    // (d) the naive baseline, on its own pane.
    let base_file = env.out.join("baseline.out");
    env.tmux(&[
        "new-window",
        "-d",
        "-t",
        "Bench:",
        "-n",
        "baseline",
        &format!("exec cat >> {}", base_file.display()),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let mut base = Vec::new();
    for i in 0..BASELINE_MESSAGES {
        let before = file_len(&base_file);
        let start = Instant::now();
        env.tmux(&[
            "send-keys",
            "-t",
            "Bench:baseline",
            &format!("baseline {i}"),
        ]);
        std::thread::sleep(Duration::from_millis(500));
        env.tmux(&["send-keys", "-t", "Bench:baseline", "Enter"]);
        assert!(wait_growth(&base_file, before, Duration::from_secs(10)));
        base.push(start.elapsed());
    }
    base.sort();

    println!("message bus, {PANES} receiver panes (cat), private tmux server");
    println!("{:<44} {:>12} {:>12}", "measure", "agency", "naive");
    println!(
        "{:<44} {:>10.2}ms {:>10.1}ms",
        format!("(a) send → pane p50 (n={LATENCY_MESSAGES}, naive n={BASELINE_MESSAGES})"),
        percentile(&lat, 0.5),
        percentile(&base, 0.5)
    );
    println!(
        "{:<44} {:>10.2}ms {:>10.1}ms",
        "(a) send → pane p99",
        percentile(&lat, 0.99),
        percentile(&base, 0.99)
    );
    println!(
        "{:<44} {:>12.0} {:>12.2}",
        format!("(b) messages/s over {PANES} panes ({arrived}/{THROUGHPUT_MESSAGES})"),
        arrived as f64 / elapsed.as_secs_f64(),
        1.0 / percentile(&base, 0.5) * 1e3
    );
    println!(
        "{:<44} {:>10.1}MB {:>12}",
        "(c) router RSS",
        rss_kb / 1024.0,
        "-"
    );
}
