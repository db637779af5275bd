//! Benchmark: the monitor at 700 agents. Run with `cargo bench --bench monitor`.
//!
//! 1. Frames: the screen with 700 agents (100 agencies × 7), 10,000 events
//!    and every kind of needs-you row, drawn on a TestBackend while the
//!    selection moves and the picture refreshes.
//! 2. Reading the fleet: 700 agents on a private tmux server, each a small
//!    CLI with a profile, read the way `agency status` does (every screen
//!    captured) against the monitor's incremental scan (only panes whose
//!    window showed output since the last look, at most 64 a look), idle
//!    and with 5% of the agents printing between looks; and the bare
//!    `agency status --json` for comparison.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agency::context::Ctx;
use agency::monitor::scan::Scanner;
use agency::monitor::{sample, Feed};
use agency::tui::monitor::app::{Action, App};
use agency::tui::monitor::draw::draw;
use agency::workspace::Workspace;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const FRAMES: usize = 2_000;
const AGENCIES: usize = 100;
const SPECIALISTS: usize = 6;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn stats(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    (
        mean,
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1]),
    )
}

fn frames() {
    println!("monitor screen: 700 agents, 10,000 events, {FRAMES} frames while moving");
    println!(
        "{:>9} {:>10} {:>10} {:>10}",
        "size", "mean ms", "p99 ms", "max ms"
    );
    for (w, h) in [(80u16, 24u16), (200, 50)] {
        let mut app = App::new(sample::now());
        app.update(Action::Loaded(Box::new(sample::fleet(AGENCIES, 7, 10_000))));
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        let mut times = Vec::with_capacity(FRAMES);
        for n in 0..FRAMES {
            app.update(Action::Move(if n % 10 == 0 { 10 } else { 1 }));
            if n % 200 == 199 {
                app.update(Action::Top);
            }
            let t = Instant::now();
            term.draw(|f| draw(&app, f)).unwrap();
            times.push(t.elapsed());
        }
        let (mean, p99, max) = stats(times);
        println!(
            "{:>9} {mean:>10.3} {p99:>10.3} {max:>10.3}",
            format!("{w}x{h}")
        );
    }
    // What a refresh costs besides drawing: the events read into the feed,
    // and the new picture taken in (rows rebuilt, selection kept).
    let snap = sample::fleet(AGENCIES, 7, 10_000);
    let events = snap.events.clone();
    let mut long = Vec::new();
    for i in 0..50 {
        long.extend(events.iter().cloned().map(|mut e| {
            e.id += i * 200;
            e
        }));
    }
    let t = Instant::now();
    let mut feed = Feed::default();
    feed.ingest(long);
    let ingest = t.elapsed();
    let mut app = App::new(sample::now());
    let t = Instant::now();
    for _ in 0..100 {
        app.update(Action::Loaded(Box::new(snap.clone())));
    }
    println!(
        "feed: 10,000 events in {:.3} ms; a new picture of 700 agents taken in {:.3} ms",
        ms(ingest),
        ms(t.elapsed()) / 100.0
    );
}

fn agency(home: &str, socket: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_agency"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("AGENCY_TMUX_SOCKET", socket)
        .env("SHELL", "/bin/sh")
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .output()
        .expect("run agency");
    assert!(
        out.status.success(),
        "agency {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

fn fleet() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let home_s = home.to_str().unwrap().to_string();
    let socket = format!("agency-bench-monitor-{}", std::process::id());
    agency(&home_s, &socket, &["init", &home_s]);
    // A small agent CLI: a prompt, and a line of output per line typed.
    let script = dir.path().join("cli.sh");
    std::fs::write(
        &script,
        "while :; do printf 'cli> '; IFS= read -r l || exit 0; echo \"got $l\"; done\n",
    )
    .unwrap();
    std::fs::write(
        home.join("profiles.toml"),
        "[cli]\nprograms = [\"timeout\"]\nready = '^cli>\\s*$'\nwaiting = 'Allow\\?'\n",
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 3600 sh {}", script.display());
    let agents: Vec<String> = (1..=SPECIALISTS).map(|i| format!("s{i}")).collect();
    let agents = agents.join(",");
    let t = Instant::now();
    for i in 0..AGENCIES {
        let name = format!("Fleet{i:03}");
        agency(
            &home_s,
            &socket,
            &[
                "create",
                &name,
                "--agents",
                &agents,
                "--agent-command",
                &cmd,
            ],
        );
    }
    println!(
        "\nreading the fleet: {} agents ({AGENCIES} agencies × {}) made in {:.1} s",
        AGENCIES * (SPECIALISTS + 1),
        SPECIALISTS + 1,
        t.elapsed().as_secs_f64()
    );
    let _ = agency(&home_s, &socket, &["router", "--stop"]);
    std::env::set_var("AGENCY_TMUX_SOCKET", &socket);
    let ctx = Ctx::open(Workspace::open(home.canonicalize().unwrap()).unwrap()).unwrap();
    let panes: Vec<String> = tmux(
        &socket,
        &["list-panes", "-a", "-F", "#{pane_id} #{window_name}"],
    )
    .lines()
    .filter(|l| !l.ends_with(" tools") && !l.ends_with(" sandbox"))
    .map(|l| l.split(' ').next().unwrap().to_string())
    .collect();
    // Let every CLI draw its prompt and the windows go quiet.
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "{:>34} {:>10} {:>10} {:>10}",
        "read", "ms/look", "screens", "looks"
    );
    let row = |label: &str, total: Duration, screens: usize, looks: usize| {
        println!(
            "{label:>34} {:>10.1} {screens:>10} {looks:>10}",
            ms(total) / looks as f64
        );
    };
    let looks = 5;
    let t = Instant::now();
    for _ in 0..looks {
        let _ = ctx.tmux.list_panes().unwrap();
        let _ = ctx.tmux.window_activity().unwrap();
    }
    row("tmux list-panes twice (no screen)", t.elapsed(), 0, looks);
    // As `status` reads: list the panes, capture every agent's screen.
    let t = Instant::now();
    for _ in 0..looks {
        let _ = ctx.tmux.list_panes().unwrap();
        let _ = ctx.tmux.capture(&panes).unwrap();
    }
    row("every screen (as status)", t.elapsed(), panes.len(), looks);
    let mut full = Scanner::new(0);
    let t = Instant::now();
    full.scan(&ctx, std::time::SystemTime::now()).unwrap();
    row(
        "monitor, first look (no budget)",
        t.elapsed(),
        full.captured,
        1,
    );
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    let mut captured = 0;
    for _ in 0..looks {
        full.scan(&ctx, std::time::SystemTime::now()).unwrap();
        captured += full.captured;
    }
    row(
        "monitor, nothing changed",
        t.elapsed(),
        captured / looks,
        looks,
    );
    let busy: Vec<&String> = panes.iter().step_by(20).collect();
    let mut total = Duration::ZERO;
    let mut captured = 0;
    let mut budgeted = Scanner::new(64);
    budgeted.scan(&ctx, std::time::SystemTime::now()).unwrap();
    for _ in 0..12 {
        budgeted.scan(&ctx, std::time::SystemTime::now()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..looks {
        // 5% of the agents print a line between looks.
        let mut args = Vec::new();
        for p in &busy {
            args.extend(["send-keys", "-t", p.as_str(), "work", "Enter", ";"]);
        }
        args.pop();
        tmux(&socket, &args);
        std::thread::sleep(Duration::from_millis(1100));
        let t = Instant::now();
        budgeted.scan(&ctx, std::time::SystemTime::now()).unwrap();
        total += t.elapsed();
        captured += budgeted.captured;
    }
    row(
        "monitor, 5% printing (budget 64)",
        total,
        captured / looks,
        looks,
    );
    let t = Instant::now();
    for _ in 0..3 {
        agency(&home_s, &socket, &["status", "--json"]);
    }
    row(
        "`agency status --json` (command)",
        t.elapsed(),
        panes.len(),
        3,
    );
    let t = Instant::now();
    for _ in 0..3 {
        agency(&home_s, &socket, &["monitor", "--json"]);
    }
    row(
        "`agency monitor --json` (command)",
        t.elapsed(),
        panes.len(),
        3,
    );
    let _ = agency(&home_s, &socket, &["router", "--stop"]);
    tmux(&socket, &["kill-server"]);
}

fn main() {
    frames();
    fleet();
}
