//! Benchmark of the task graph, printed as a table:
//! (a) on 10,000 tasks with ~50,000 dependencies: `agency task list --ready`
//!     (tree and JSON) and `agency task add` (with 5 needs), each a whole
//!     process, against the bare query and insert through the `sqlite3`
//!     command-line tool; and the router's rewrite of `task_graph.json`;
//! (b) 16 processes calling `agency task next` at once on 1,000 ready tasks:
//!     every task claimed exactly once, double claims, claims per second,
//!     against 16 `sqlite3` processes running the bare claim.
//! Run with `cargo bench --bench tasks`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agency::store::{NewTask, Store};

const TASKS: i64 = 10_000;
const NEEDS_EACH: usize = 5;
const RUNS: usize = 20;
const POOL: i64 = 1_000;
const WORKERS: usize = 16;

/// A small deterministic generator (no crate for one benchmark).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as i64
    }
}

struct Ws {
    _dir: tempfile::TempDir,
    home: PathBuf,
    socket: String,
}

impl Ws {
    /// A workspace with agency `name` (its folder only: no tmux needed)
    /// whose specialists are `agents`.
    fn new(tag: &str, name: &str, agents: &[String]) -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("ws");
        let ws = Ws {
            _dir: dir,
            home,
            socket: format!("agency-bench-tasks-{tag}-{}", std::process::id()),
        };
        let st = ws
            .cmd(&["init", ws.home.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        let spec = serde_json::json!({
            "name": name,
            "coordinator": {"name": "lead", "role_file": "coordinator.md"},
            "agents": agents.iter().map(|a| serde_json::json!({"name": a, "role_file": "agents/x.md"})).collect::<Vec<_>>(),
        });
        let adir = ws.home.join("agencies").join(name);
        std::fs::create_dir_all(&adir).unwrap();
        std::fs::write(adir.join("agency.json"), spec.to_string()).unwrap();
        ws
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_agency"));
        c.args(args)
            .env("AGENCY_HOME", &self.home)
            .env("AGENCY_TMUX_SOCKET", &self.socket)
            .env_remove("AGENCY_NAME")
            .env_remove("AGENCY_AGENT")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }

    fn db(&self) -> PathBuf {
        self.home.join("registry/agency.db")
    }

    fn store(&self) -> Store {
        Store::open(&self.home.join("registry")).unwrap()
    }

    /// The router a claim started, stopped by its pid.
    fn stop_router(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.home.join("registry/router.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Median wall time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut(usize)) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn run_ok(mut c: Command) {
    let out = c.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sqlite3(db: &Path, sql: &str) -> Command {
    let mut c = Command::new("sqlite3");
    c.arg("-cmd")
        .arg(".timeout 10000")
        .arg(db)
        .arg(sql)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

fn have_sqlite3() -> bool {
    Command::new("sqlite3")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// 7,000 done tasks, then 1,000 ready (needing only done ones), then 2,000
/// waiting; each needs 5 earlier tasks (the first few fewer).
fn big_graph(ws: &Ws) -> usize {
    let mut store = ws.store();
    let mut rng = Lcg(42);
    let mut edges = 0;
    store
        .tasks_tx(true, |tx| {
            for i in 1..=TASKS {
                let (lo, hi) = match i {
                    8001..=9000 => (1, 7000),
                    _ => ((i - 2000).max(1), i - 1),
                };
                let mut needs: Vec<i64> = Vec::new();
                while needs.len() < NEEDS_EACH.min((hi - lo + 1).max(0) as usize) {
                    let n = lo + rng.below(hi - lo + 1);
                    if !needs.contains(&n) {
                        needs.push(n);
                    }
                }
                edges += needs.len();
                let state = match i {
                    ..=7000 => "done",
                    7001..=8000 if needs.iter().all(|n| *n <= 7000) => "ready",
                    8001..=9000 => "ready",
                    _ => "waiting",
                };
                let t = NewTask {
                    title: format!("Task {i}: build part {i} of the system"),
                    body: String::new(),
                    agency: Some("Big".into()),
                    priority: "normal".into(),
                    rank: 1,
                    needs,
                    ..NewTask::default()
                };
                tx.insert(&t, state)?;
            }
            Ok::<_, agency::store::StoreError>(())
        })
        .unwrap();
    edges
}

fn part_a(sq: bool) {
    let ws = Ws::new("a", "Big", &["dev".to_string()]);
    let t = Instant::now();
    let edges = big_graph(&ws);
    let built = t.elapsed();
    let ready: i64 = rusqlite::Connection::open(ws.db())
        .unwrap()
        .query_row(
            "SELECT count(*) FROM tasks WHERE state = 'ready'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!(
        "(a) {TASKS} tasks, {edges} dependencies ({ready} ready), built in {:.2}s; median of {RUNS} runs, each a whole process",
        built.as_secs_f64()
    );
    println!("{:<48} {:>12} {:>14}", "measure", "agency ms", "sqlite3 ms");
    let list = median(RUNS, |_| run_ok(ws.cmd(&["task", "list", "--ready"])));
    let list_json = median(RUNS, |_| {
        run_ok(ws.cmd(&["task", "list", "--ready", "--json"]))
    });
    let bare_list = sq.then(|| {
        median(RUNS, |_| {
            run_ok(sqlite3(
                &ws.db(),
                "SELECT t.id, t.title, t.state, t.agency, t.agent, t.priority,
                   (SELECT group_concat(need) FROM task_needs WHERE task = t.id)
                 FROM tasks t WHERE t.state = 'ready' ORDER BY t.id",
            ))
        })
    });
    let mut rng = Lcg(7);
    let add = median(RUNS, |i| {
        let needs: Vec<String> = (0..NEEDS_EACH)
            .map(|_| (9001 + rng.below(1000)).to_string())
            .collect();
        run_ok(ws.cmd(&[
            "task",
            "add",
            &format!("Added task {i}"),
            "--agency",
            "Big",
            "--needs",
            &needs.join(","),
        ]))
    });
    let bare_add = sq.then(|| {
        median(RUNS, |i| {
            run_ok(sqlite3(
                &ws.db(),
                &format!(
                    "BEGIN IMMEDIATE;
                     INSERT INTO tasks (title, agency, state, created_at, updated_at)
                       VALUES ('Bare {i}', 'Big', 'waiting', strftime('%Y-%m-%dT%H:%M:%fZ','now'),
                               strftime('%Y-%m-%dT%H:%M:%fZ','now'));
                     INSERT INTO task_needs (task, need) SELECT last_insert_rowid(), value
                       FROM json_each('[9001, 9002, 9003, 9004, 9005]');
                     COMMIT;"
                ),
            ))
        })
    });
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let bare = |d: Option<Duration>| d.map_or("no sqlite3".into(), ms);
    println!(
        "{:<48} {:>12} {:>14}",
        "task list --ready (tree)",
        ms(list),
        bare(bare_list)
    );
    println!(
        "{:<48} {:>12} {:>14}",
        "task list --ready --json",
        ms(list_json),
        bare(bare_list)
    );
    println!(
        "{:<48} {:>12} {:>14}",
        "task add, 5 needs",
        ms(add),
        bare(bare_add)
    );
    ws.stop_router();
    let store = ws.store();
    let rewrite = median(5, |_| store.write_task_mirror().unwrap());
    let size = std::fs::metadata(ws.home.join("registry/task_graph.json")).map_or(0, |m| m.len());
    println!(
        "{:<48} {:>12} {:>14}",
        format!(
            "task_graph.json rewrite, {:.1} MB (router)",
            size as f64 / 1e6
        ),
        ms(rewrite),
        "-"
    );
    ws.stop_router();
}

/// 16 workers, each running one process after another over its share of
/// `calls`; returns the wall time and what each call printed.
fn concurrently(calls: Vec<Command>) -> (Duration, Vec<String>) {
    let mut shares: Vec<Vec<Command>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, c) in calls.into_iter().enumerate() {
        shares[i % WORKERS].push(c);
    }
    let t = Instant::now();
    let outs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = shares
            .into_iter()
            .map(|share| {
                s.spawn(move || {
                    share
                        .into_iter()
                        .map(|mut c| {
                            let out = c
                                .stdout(Stdio::piped())
                                .stderr(Stdio::piped())
                                .output()
                                .unwrap();
                            assert!(
                                out.status.success(),
                                "{}",
                                String::from_utf8_lossy(&out.stderr)
                            );
                            String::from_utf8(out.stdout).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    (t.elapsed(), outs)
}

fn pool(ws: &Ws) {
    let mut store = ws.store();
    store
        .tasks_tx(true, |tx| {
            for i in 1..=POOL {
                let t = NewTask {
                    title: format!("Pool task {i}"),
                    agency: Some("Pool".into()),
                    priority: "normal".into(),
                    rank: 1,
                    ..NewTask::default()
                };
                tx.insert(&t, "ready")?;
            }
            Ok::<_, agency::store::StoreError>(())
        })
        .unwrap();
}

/// Task ids claimed more than once, and how many were claimed at all.
fn audit(ids: &[i64]) -> (usize, usize) {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let all = sorted.len();
    sorted.dedup();
    (all - sorted.len(), sorted.len())
}

fn part_b(sq: bool) {
    // One agent per claim: an agent that already holds a task gets that
    // task back from `task next`.
    let agents: Vec<String> = (0..POOL).map(|i| format!("a{i:04}")).collect();
    let ws = Ws::new("b", "Pool", &agents);
    pool(&ws);
    let calls: Vec<Command> = agents
        .iter()
        .map(|a| {
            let mut c = ws.cmd(&["task", "next", "Pool", a, "--json"]);
            // As an agent calls it in its own pane.
            c.env("AGENCY_NAME", "Pool").env("AGENCY_AGENT", a);
            c
        })
        .collect();
    let (wall, outs) = concurrently(calls);
    ws.stop_router();
    let ids: Vec<i64> = outs
        .iter()
        .filter_map(|o| serde_json::from_str::<serde_json::Value>(o).ok()?["id"].as_i64())
        .collect();
    let (doubles, distinct) = audit(&ids);
    let conn = rusqlite::Connection::open(ws.db()).unwrap();
    let claimed_rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM tasks WHERE state = 'claimed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let claim_events: i64 = conn
        .query_row(
            "SELECT count(*) FROM task_events WHERE kind = 'claimed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    println!();
    println!("(b) {WORKERS} processes at once calling `task next` on {POOL} ready tasks");
    println!("{:<48} {:>12} {:>14}", "measure", "agency", "sqlite3");
    let bare = sq.then(|| {
        let ws2 = Ws::new("b2", "Pool", &[]);
        pool(&ws2);
        let calls = (0..POOL)
            .map(|i| {
                let mut c = sqlite3(
                    &ws2.db(),
                    &format!(
                        "BEGIN IMMEDIATE;
                         UPDATE tasks SET state = 'claimed', agent = 'a{i}'
                           WHERE id = (SELECT id FROM tasks WHERE state = 'ready' AND agency = 'Pool'
                                       ORDER BY rank DESC, id LIMIT 1)
                           RETURNING id;
                         COMMIT;"
                    ),
                );
                c.stdout(Stdio::piped());
                c
            })
            .collect();
        let (wall, outs) = concurrently(calls);
        let ids: Vec<i64> = outs.iter().filter_map(|o| o.trim().parse().ok()).collect();
        (wall, audit(&ids))
    });
    let rate = |w: Duration, n: usize| format!("{:.0}", n as f64 / w.as_secs_f64());
    let (b_rate, b_doubles, b_distinct) = match &bare {
        Some((w, (d, n))) => (rate(*w, *n), d.to_string(), n.to_string()),
        None => ("no sqlite3".into(), "-".into(), "-".into()),
    };
    println!(
        "{:<48} {:>12} {:>14}",
        "tasks claimed (distinct)", distinct, b_distinct
    );
    println!("{:<48} {:>12} {:>14}", "double claims", doubles, b_doubles);
    println!(
        "{:<48} {:>12} {:>14}",
        "claimed in the registry / claim events",
        format!("{claimed_rows}/{claim_events}"),
        "-"
    );
    println!(
        "{:<48} {:>12} {:>14}",
        "claims per second",
        rate(wall, distinct),
        b_rate
    );
    println!(
        "{:<48} {:>12.2} {:>14}",
        "wall seconds",
        wall.as_secs_f64(),
        bare.map_or("-".into(), |(w, _)| format!("{:.2}", w.as_secs_f64()))
    );
    assert_eq!((doubles, distinct), (0, POOL as usize), "claims went wrong");
}

fn main() {
    let sq = have_sqlite3();
    part_a(sq);
    part_b(sq);
}
