//! `agency monitor`, `agency metrics` and `[notify]` end to end: the real
//! binary, its screen in a tmux pane of the test's private server (driven
//! by `send-keys`, read with `capture-pane`), checked against the registry.

use std::fs;
use std::path::PathBuf;

use crate::common::{commit, git, lines_of, wait_until, TestEnv};

/// The monitor open in a 200×50 pane of the test's server.
struct Screen<'t> {
    t: &'t TestEnv,
}

impl<'t> Screen<'t> {
    /// `env` goes before the command (e.g. `env -u TMUX`: as if run outside
    /// tmux).
    fn open(t: &'t TestEnv, env: &str) -> Screen<'t> {
        let cmd = format!(
            "{env} AGENCY_TMUX_SOCKET={} {} --home {} monitor; echo \"exit $?\"; sleep 600",
            t.socket,
            env!("CARGO_BIN_EXE_agency"),
            t.home.display(),
        );
        t.tmux_ok(&[
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            "200",
            "-y",
            "50",
            &cmd,
        ]);
        let s = Screen { t };
        s.wait_for("AGENCY MONITOR");
        s
    }

    fn screen(&self) -> String {
        self.t.tmux_ok(&["capture-pane", "-p", "-t", "ui"])
    }

    fn wait_for(&self, text: &str) {
        wait_until(&format!("{text:?} on the screen"), || {
            self.screen().contains(text)
        });
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.t.tmux_ok(&["send-keys", "-t", "ui", k]);
        }
    }

    /// The marked (selected) row: its line number and text.
    fn marked(&self) -> Option<(usize, String)> {
        self.screen()
            .lines()
            .enumerate()
            .find(|(_, l)| l.starts_with('›'))
            .map(|(i, l)| (i, l.to_string()))
    }

    /// Moves the selection from the top down until the marked row
    /// contains `text`, each key's effect seen on the screen before the
    /// next.
    fn select(&self, text: &str) {
        self.keys(&["g"]);
        let first_marked = within(crate::common::PATIENCE, || {
            let screen = self.screen();
            let lines: Vec<&str> = screen.lines().collect();
            // The first row: under the needs-you header, or the first agency.
            let first = lines
                .iter()
                .position(|l| l.trim_start().starts_with("KIND"))
                .or_else(|| {
                    lines
                        .iter()
                        .position(|l| l.trim_start().starts_with("AGENCY") && l.contains("STATE"))
                })
                .map(|i| i + 1);
            self.marked().is_some_and(|(i, _)| Some(i) == first)
        });
        assert!(
            first_marked,
            "the first row is not marked:\n{}",
            self.screen()
        );
        for _ in 0..30 {
            let Some((at, line)) = self.marked() else {
                panic!("nothing marked:\n{}", self.screen());
            };
            if line.contains(text) {
                return;
            }
            self.keys(&["j"]);
            // A slow redraw on a loaded machine is no bottom row.
            let moved = within(std::time::Duration::from_secs(10), || {
                self.marked().is_some_and(|(i, _)| i != at)
            });
            if !moved {
                break;
            }
        }
        panic!("no row with {text:?}:\n{}", self.screen());
    }
}

/// Whether `pred` holds within `limit` (a bottom row has no row below: the
/// selection does not move, and that is no failure).
fn within(limit: std::time::Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

fn submit(t: &TestEnv, repo: &std::path::Path, i: usize) {
    let branch = format!("feature/f{i}");
    git(repo, &["checkout", "-qb", &branch, "main"]);
    commit(
        repo,
        &[(&format!("f{i}.txt"), "x\n")],
        &format!("feature {i}"),
    );
    git(repo, &["checkout", "-q", "main"]);
    t.ok(&[
        "submit",
        "CodeAgency",
        "--task",
        &format!("task {i}"),
        "--title",
        &format!("Feature number {i}"),
        "--branch",
        &branch,
        "--test-command",
        "echo '3 passed, 0 failed'",
    ]);
}

fn pane_of(t: &TestEnv, agency: &str, agent: &str) -> String {
    t.db()
        .query_row(
            "SELECT pane_id FROM agents WHERE agency = ?1 AND name = ?2",
            [agency, agent],
            |r| r.get(0),
        )
        .unwrap()
}

fn state_of(t: &TestEnv, agent: &str) -> String {
    let st = t.json(&["status", "CodeAgency", "--json"]);
    st["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent)
        .map(|a| a["state"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn from_the_monitor_an_approval_is_approved_an_exited_agent_restarted_a_failed_message_retried() {
    let (t, repo) = TestEnv::with_project();
    let out = t.receivers("CodeAgency", "a");
    submit(&t, &repo, 1);
    let s = Screen::open(&t, "env -u TMUX");
    s.wait_for("Feature number 1");
    s.select("approval");
    s.keys(&["a"]);
    s.wait_for("Approve #1");
    s.keys(&["y"]);
    s.wait_for("approved #1");
    let status: String = t
        .db()
        .query_row("SELECT status FROM approvals WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "approved");
    assert!(repo.join("f1.txt").is_file(), "merged into main's checkout");

    // The agent's program ends (cat reads end of input): it exited.
    t.tmux_ok(&["send-keys", "-t", &pane_of(&t, "CodeAgency", "a"), "C-d"]);
    s.wait_for("its program exited");
    s.select("exited");
    s.keys(&["R"]);
    s.wait_for("Start CodeAgency/a again");
    s.keys(&["y"]);
    s.wait_for("started CodeAgency/a again");
    wait_until("a to run again", || state_of(&t, "a") != "exited");
    wait_until("the exited row gone", || {
        !s.screen().contains("its program exited")
    });

    // A message that could not be delivered: queued again with R, y.
    let id = t.ok(&["send", "CodeAgency", "a", "hello again", "-q"]);
    let id: i64 = id.trim().parse().unwrap();
    wait_until("the message delivered", || {
        fs::read_to_string(out.join("a.out")).is_ok_and(|s| s.contains("hello again"))
    });
    t.db()
        .execute(
            "UPDATE messages SET state = 'failed', last_error = 'pane %99 is gone' WHERE id = ?1",
            [id],
        )
        .unwrap();
    s.wait_for("pane %99 is gone");
    s.select("failed");
    s.keys(&["R"]);
    s.wait_for(&format!("Queue message #{id} again"));
    s.keys(&["y"]);
    s.wait_for(&format!("message #{id} to CodeAgency/a is queued again"));
    wait_until("delivered a second time", || {
        fs::read_to_string(out.join("a.out")).is_ok_and(|s| s.matches("hello again").count() == 2)
    });

    // p on an agent, outside tmux: the screen closes and prints how to attach.
    s.select("▸ CodeAgency");
    s.keys(&["Enter"]);
    s.select("    a ");
    s.keys(&["p"]);
    s.wait_for("exit 0");
    let screen = s.screen();
    assert!(screen.contains("to watch it: "), "{screen}");
    let line = screen.lines().find(|l| l.contains("to watch it")).unwrap();
    assert!(line.trim_end().ends_with("attach CodeAgency a"), "{line}");
}

#[test]
fn from_the_monitor_a_waiting_agent_is_answered_and_the_wait_is_measured() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    // A fake agent CLI: at `ASK` it asks a question and reads one line,
    // the answer.
    let script = t.root().join("asker.sh");
    fs::write(
        &script,
        format!(
            r#"while :; do
  printf 'fake> '
  IFS= read -r line || exit 0
  case "$line" in
    *ASK*) printf 'Run rm -rf build? Allow this? [y/n] '; IFS= read -r a; echo "$a" >> {got} ;;
  esac
done
"#,
            got = got.display()
        ),
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        r#"[fake]
programs = ["timeout"]
ready = '^fake>\s*$'
waiting = 'Allow this\? \[y/n\]\s*$'
question = ['Run (.+)\? Allow this']
[fake.answer]
yes = '\[(y)/n\]'
no = '\[y/(n)\]'
then = "Enter"
"#,
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 sh {}", script.display());
    t.ok(&["create", "Ask", "--agents", "bot", "--agent-command", &cmd]);
    let s = Screen::open(&t, "");
    t.ok(&["send", "Ask", "bot", "ASK"]);
    s.wait_for("asks: rm -rf build");
    // The router saw the prompt come up.
    wait_until("agent.waiting in the log", || {
        kinds_of(&t, "Ask").contains(&"agent.waiting".into())
    });
    s.select("waiting");
    s.keys(&["y"]);
    s.wait_for("Answer YES to Ask/bot?");
    s.wait_for("It asks: rm -rf build");
    assert!(!got.exists(), "nothing before the confirmation");
    s.keys(&["y"]);
    s.wait_for("answered yes to Ask/bot: rm -rf build");
    wait_until("the answer typed", || {
        fs::read_to_string(&got).is_ok_and(|a| a == "y\n")
    });
    wait_until("the waiting row gone", || {
        !s.screen().contains("asks: rm -rf build")
    });
    // Recorded as `agency answer` records it, and measured.
    wait_until("agent.resumed in the log", || {
        kinds_of(&t, "Ask").contains(&"agent.resumed".into())
    });
    let log = t.json(&["log", "--agency", "Ask", "--json"]);
    let answer = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "answer")
        .expect("an answer event");
    assert_eq!(answer["detail"]["choice"], "yes");
    assert_eq!(answer["detail"]["by"], "human");
    let m = t.json(&["metrics", "--agency", "Ask", "--json"]);
    assert_eq!(m["overall"]["prompt_wait"]["count"], 1, "{m}");
    assert_eq!(m["overall"]["prompts_open"], 0, "{m}");
}

#[test]
fn the_monitor_answers_only_the_question_it_showed() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    let switch = t.root().join("switch");
    // A fake agent CLI whose prompt changes to another question (once
    // `switch` exists) while the human reads the first.
    let script = t.root().join("asker.sh");
    fs::write(
        &script,
        format!(
            r#"while :; do
  printf 'fake> '
  IFS= read -r line || exit 0
  case "$line" in
    *ASK*) printf 'Run ls -la? Allow this? [y/n] '
      while [ ! -e {switch} ]; do sleep 0.1; done
      printf '\rRun rm -rf ~/project? Allow this? [y/n] '
      IFS= read -r a; echo "$a" >> {got} ;;
  esac
done
"#,
            got = got.display(),
            switch = switch.display()
        ),
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        r#"[fake]
programs = ["timeout"]
ready = '^fake>\s*$'
waiting = 'Allow this\? \[y/n\]\s*$'
question = ['Run (.+)\? Allow this']
[fake.answer]
yes = '\[(y)/n\]'
no = '\[y/(n)\]'
then = "Enter"
"#,
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 sh {}", script.display());
    t.ok(&["create", "Ask", "--agents", "bot", "--agent-command", &cmd]);
    let s = Screen::open(&t, "");
    t.ok(&["send", "Ask", "bot", "ASK"]);
    s.wait_for("asks: ls -la");
    s.select("waiting");
    s.keys(&["y"]);
    s.wait_for("It asks: ls -la");
    // The prompt changes before the human confirms.
    fs::write(&switch, "").unwrap();
    let question = || t.json(&["status", "Ask", "--json"])["agents"][1]["question"].clone();
    wait_until("the new question", || question() == "rm -rf ~/project");
    s.keys(&["y"]);
    s.wait_for("it now asks rm -rf ~/project; nothing was typed");
    assert!(!got.exists(), "the changed prompt was answered");
}

#[test]
fn the_scanner_reads_again_only_screens_that_changed_and_at_most_its_budget() {
    use agency::monitor::scan::Scanner;
    let t = TestEnv::new();
    // Agents with a profile that reads their screen: a prompt, and a line
    // of output per line typed.
    let script = t.root().join("cli.sh");
    fs::write(
        &script,
        "while :; do printf 'cli> '; IFS= read -r l || exit 0; echo \"got $l\"; done\n",
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        "[cli]\nprograms = [\"timeout\"]\nready = '^cli>\\s*$'\n",
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 sh {}", script.display());
    t.ok(&[
        "create",
        "Fleet",
        "--agents",
        "a,b,c",
        "--agent-command",
        &cmd,
    ]);
    // The library reads the server from agency.toml here, not from the
    // environment (tests run side by side in this process).
    t.set_config("socket = \"\"", &format!("socket = \"{}\"", t.socket));
    let ws = agency::workspace::Workspace::open(t.home.clone()).unwrap();
    let ctx = agency::context::Ctx::open(ws).unwrap();
    let now = std::time::SystemTime::now;
    let state = |live: &[agency::monitor::scan::AgencyLive], name: &str| {
        live[0]
            .agents
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .state
            .clone()
    };
    let mut all = Scanner::new(0);
    wait_until("every agent idle", || {
        let live = all.scan(&ctx, now()).unwrap();
        ["coordinator", "a", "b", "c"]
            .iter()
            .all(|n| state(&live, n) == "idle")
    });
    // Quiet windows are not read again.
    wait_until("a look that reads nothing", || {
        all.scan(&ctx, now()).unwrap();
        all.captured == 0
    });
    for _ in 0..3 {
        all.scan(&ctx, now()).unwrap();
        assert_eq!(all.captured, 0);
    }
    // One agent prints: only its screen is read, and it reads busy then
    // idle as it changes.
    t.tmux_ok(&[
        "send-keys",
        "-t",
        &pane_of(&t, "Fleet", "b"),
        "work",
        "Enter",
    ]);
    let mut read = Vec::new();
    wait_until("b's screen read again", || {
        all.scan(&ctx, now()).unwrap();
        read.push(all.captured);
        all.captured > 0
    });
    assert_eq!(read.last(), Some(&1), "{read:?}");
    // A budget of one: a first look reads one screen, the one never read.
    let mut one = Scanner::new(1);
    let live = one.scan(&ctx, now()).unwrap();
    assert_eq!(one.captured, 1);
    let unread = live[0].agents.iter().filter(|a| a.unread).count();
    assert_eq!(unread, 3, "{live:?}");
    for _ in 0..3 {
        one.scan(&ctx, now()).unwrap();
    }
    let live = one.scan(&ctx, now()).unwrap();
    assert!(live[0].agents.iter().all(|a| !a.unread), "{live:?}");
}

#[test]
fn monitor_json_ranks_what_needs_you() {
    let (t, repo) = TestEnv::with_project();
    t.receivers("CodeAgency", "a,b");
    submit(&t, &repo, 1);
    submit(&t, &repo, 2);
    t.ok(&["task", "add", "Deploy", "--agency", "CodeAgency"]);
    t.ok(&["task", "block", "1", "--note", "needs the key"]);
    let id = t.ok(&["send", "CodeAgency", "a", "hi", "-q"]);
    let id: i64 = id.trim().parse().unwrap();
    t.db()
        .execute(
            "UPDATE messages SET state = 'failed', last_error = 'gone' WHERE id = ?1",
            [id],
        )
        .unwrap();
    t.tmux_ok(&["send-keys", "-t", &pane_of(&t, "CodeAgency", "b"), "C-d"]);
    wait_until("b exited", || state_of(&t, "b") == "exited");
    // Recorded by the router: its time, not each run's first look, is when
    // it exited (the two runs below could fall in different seconds).
    wait_until("the router to record the exit", || {
        kinds(&t).contains(&"agent.exited".into())
    });
    // Not a terminal: JSON, with or without --json.
    let doc = t.json(&["monitor"]);
    assert_eq!(doc, {
        let mut d = t.json(&["monitor", "--json"]);
        // Ages and the events move on between the two runs.
        d["events"] = doc["events"].clone();
        d["agencies"] = doc["agencies"].clone();
        d
    });
    let needs = doc["needs_you"].as_array().unwrap();
    let summary: Vec<(String, String, serde_json::Value)> = needs
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_string(),
                n["agent"].as_str().unwrap_or("-").to_string(),
                n["id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("approval".into(), "-".into(), 1.into()),
            ("approval".into(), "-".into(), 2.into()),
            ("blocked".into(), "-".into(), 1.into()),
            ("failed".into(), "a".into(), id.into()),
            ("exited".into(), "b".into(), serde_json::Value::Null),
        ]
    );
    for n in needs {
        for key in ["kind", "agency", "agent", "id", "what", "since", "command"] {
            assert!(n.get(key).is_some(), "{key} in {n}");
        }
        assert!(n["since"].as_str().unwrap().ends_with('Z'), "{n}");
    }
    assert!(needs[2]["what"].as_str().unwrap().contains("needs the key"));
    let agency = &doc["agencies"][0];
    assert_eq!(agency["name"], "CodeAgency");
    assert_eq!(agency["exited"], 1);
    assert_eq!(
        (agency["tasks_done"].clone(), agency["tasks_total"].clone()),
        (0.into(), 1.into())
    );
    assert!(!doc["events"].as_array().unwrap().is_empty());
    // Every command printed pastes.
    let show = needs[2]["command"].as_str().unwrap();
    let words = shlex::split(show).unwrap();
    let pasted = t.ok(&words[1..].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(pasted.contains("Deploy"), "{pasted}");
}

fn kinds(t: &TestEnv) -> Vec<String> {
    kinds_of(t, "CodeAgency")
}

fn kinds_of(t: &TestEnv, agency: &str) -> Vec<String> {
    let log = t.json(&["log", "--agency", agency, "--json"]);
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_router_records_an_agent_that_exits_and_comes_back_but_not_a_kill() {
    let t = TestEnv::new();
    t.receivers("CodeAgency", "a,b");
    t.tmux_ok(&["send-keys", "-t", &pane_of(&t, "CodeAgency", "a"), "C-d"]);
    wait_until("agent.exited", || {
        kinds(&t).contains(&"agent.exited".into())
    });
    let log = t.json(&["log", "--agency", "CodeAgency", "--json"]);
    let exited = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "agent.exited")
        .unwrap();
    assert_eq!(exited["detail"]["agent"], "a");
    t.ok(&["status", "CodeAgency", "--restart"]);
    wait_until("agent.restarted", || {
        kinds(&t).contains(&"agent.restarted".into())
    });
    t.ok(&["create", "Other", "--agents", "x", "--agent-command", "cat"]);
    t.ok(&["kill", "CodeAgency"]);
    // A look after the kill: it sees Other's agent exit, and CodeAgency's
    // panes gone, which is no exit.
    t.tmux_ok(&["send-keys", "-t", &pane_of(&t, "Other", "x"), "C-d"]);
    wait_until("Other's exit", || {
        kinds_of(&t, "Other").contains(&"agent.exited".into())
    });
    let exits = kinds(&t).iter().filter(|k| *k == "agent.exited").count();
    assert_eq!(exits, 1, "{:?}", kinds(&t));
}

/// One scripted history: (minute after `t0`, agency, kind, detail).
fn history() -> Vec<(f64, &'static str, &'static str, serde_json::Value)> {
    use serde_json::json;
    let task = |id: i64, state: &str, by: &str| json!({"id": id, "state": state, "by": by});
    let claim = |id: i64, who: &str| json!({"id": id, "state": "claimed", "by": who, "agent": who});
    vec![
        // Task 1: taken and finished by agents; merged by the approval.
        (0.0, "Code", "task.created", task(1, "waiting", "human")),
        (0.0, "Code", "task.ready", task(1, "ready", "human")),
        (1.0, "Code", "task.claimed", claim(1, "Code/dev")),
        (10.0, "Code", "task.review", task(1, "review", "Code/dev")),
        (
            10.0,
            "Code",
            "approval.submitted",
            json!({"id": 1, "task": "1"}),
        ),
        (
            20.0,
            "Code",
            "approval.approved",
            json!({"id": 1, "status": "approved"}),
        ),
        (20.0, "Code", "task.done", task(1, "done", "human")),
        // Task 2: its agent stopped at a prompt someone answered in the
        // pane, and its first submission was rejected.
        (0.0, "Code", "task.created", task(2, "waiting", "human")),
        (0.0, "Code", "task.ready", task(2, "ready", "human")),
        (2.0, "Code", "task.claimed", claim(2, "Code/dev2")),
        (
            5.0,
            "Code",
            "agent.waiting",
            json!({"agent": "dev2", "question": "rm -rf build"}),
        ),
        (8.0, "Code", "agent.resumed", json!({"agent": "dev2"})),
        (
            12.0,
            "Code",
            "approval.submitted",
            json!({"id": 2, "task": "2"}),
        ),
        (
            15.0,
            "Code",
            "approval.rejected",
            json!({"id": 2, "status": "rejected"}),
        ),
        (
            25.0,
            "Code",
            "approval.submitted",
            json!({"id": 3, "task": "2"}),
        ),
        (
            30.0,
            "Code",
            "approval.approved",
            json!({"id": 3, "status": "approved"}),
        ),
        (30.0, "Code", "task.done", task(2, "done", "human")),
        // Task 3: handed to QA, acked three minutes later, done there.
        (0.0, "Code", "task.created", task(3, "waiting", "human")),
        (0.0, "Code", "task.ready", task(3, "ready", "human")),
        (
            40.0,
            "QA",
            "handoff",
            json!({"id": 1, "task": "3", "from": "Code", "to": "QA", "message": 50}),
        ),
        (
            40.0,
            "QA",
            "task.handoff",
            task(3, "ready", "Code/coordinator"),
        ),
        (43.0, "QA", "message.acked", json!({"id": 50})),
        (45.0, "QA", "task.claimed", claim(3, "QA/tester")),
        (60.0, "QA", "task.done", task(3, "done", "QA/tester")),
        // A prompt answered with `agency answer` by the human.
        (65.0, "QA", "agent.waiting", json!({"agent": "tester"})),
        (
            66.0,
            "QA",
            "answer",
            json!({"agent": "tester", "choice": "yes", "by": "human"}),
        ),
        (66.5, "QA", "agent.resumed", json!({"agent": "tester"})),
        // A handoff nobody acted on yet, and a prompt still up.
        (
            70.0,
            "Code",
            "handoff",
            json!({"id": 2, "task": "x-label", "from": "QA", "to": "Code", "message": 51}),
        ),
        (80.0, "Code", "agent.waiting", json!({"agent": "dev"})),
        // Messages.
        (3.0, "Code", "message.delivered", json!({"id": 10})),
        (4.0, "Code", "message.delivered", json!({"id": 11})),
        (41.0, "QA", "message.delivered", json!({"id": 50})),
        (42.0, "QA", "message.failed", json!({"id": 12})),
        (43.0, "Code", "message.resubmitted", json!({"id": 11})),
        (44.0, "QA", "message.retried", json!({"id": 12})),
        // Before the last day: only in the whole history.
        (-1800.0, "Code", "message.delivered", json!({"id": 1})),
    ]
}

#[test]
fn metrics_of_a_scripted_history() {
    let t = TestEnv::new();
    t.ok(&["list"]);
    let now = std::time::SystemTime::now();
    let t0 = now - std::time::Duration::from_secs(10 * 3600);
    let mut rows = history();
    // In time order, as the log is written.
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let db = t.db();
    for (minute, agency, kind, detail) in rows {
        let offset = std::time::Duration::from_secs_f64(minute.abs() * 60.0);
        let at = if minute < 0.0 {
            t0 - offset
        } else {
            t0 + offset
        };
        let at = humantime::format_rfc3339_millis(at).to_string();
        db.execute(
            "INSERT INTO events (at, agency, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![at, agency, kind, detail.to_string()],
        )
        .unwrap();
    }
    let m = t.json(&["metrics", "--since", "24h", "--json"]);
    let all = &m["overall"];
    let want = serde_json::json!({
        "agency": null,
        "tasks_completed": 3, "tasks_without_human": 2, "without_human_share": 0.667,
        "approved": 2, "rejected": 1, "approved_first_pass": 1, "first_pass_rate": 0.5,
        "handoff": {"count": 1, "mean_s": 180.0, "median_s": 180.0},
        "handoffs_open": 1,
        "ready_to_done": {"count": 3, "mean_s": 2200.0, "median_s": 1800.0},
        "approval_wait": {"count": 3, "mean_s": 360.0, "median_s": 300.0},
        "prompt_wait": {"count": 2, "mean_s": 120.0, "median_s": 120.0},
        "prompts_open": 1,
        "messages": {"delivered": 3, "failed": 1, "resubmitted": 1, "retried": 1},
    });
    assert_eq!(all, &want, "{}", serde_json::to_string_pretty(all).unwrap());
    let qa = m["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agency"] == "QA")
        .unwrap();
    assert_eq!(
        (
            qa["tasks_completed"].clone(),
            qa["tasks_without_human"].clone()
        ),
        (1.into(), 1.into())
    );
    assert_eq!(qa["handoff"]["mean_s"], 180.0);
    assert_eq!(qa["prompt_wait"]["mean_s"], 60.0);
    assert_eq!(
        qa["messages"],
        serde_json::json!({"delivered": 1, "failed": 1, "resubmitted": 0, "retried": 1})
    );
    let code = m["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agency"] == "Code")
        .unwrap();
    assert_eq!(code["handoffs_open"], 1);
    assert_eq!(code["first_pass_rate"], 0.5);
    assert_eq!(code["ready_to_done"]["median_s"], 1500.0);

    // All history counts the older delivery too; one agency alone.
    let all_time = t.json(&["metrics", "--json"]);
    assert_eq!(all_time["overall"]["messages"]["delivered"], 4);
    assert_eq!(all_time["since"], serde_json::Value::Null);
    let one = t.json(&["metrics", "--agency", "QA", "--since", "24h", "--json"]);
    assert_eq!(one["overall"], *qa);
    assert_eq!(one["agencies"].as_array().unwrap().len(), 1);
    // As text.
    let text = t.ok(&["metrics", "--since", "24h"]);
    assert!(
        text.contains("approved on the first pass     1 of 2 (50%) (1 rejected)"),
        "{text}"
    );
    assert!(
        text.contains("handoff to first action        mean 3m, median 3m (1), 1 open"),
        "{text}"
    );
    // Bad input.
    let err = t.fails(&["metrics", "--since", "soon"]);
    assert!(err.contains("30m, 24h or 7d"), "{err}");
    let err = t.fails(&["metrics", "--agency", "Nope"]);
    assert!(err.contains("no agency \"Nope\""), "{err}");
}

/// A workspace whose `[notify]` command writes each call's stdin to a
/// file of its own in `calls/`, and whose router reads its clock from a
/// file (`AGENCY_TEST_CLOCK`, debug builds only).
struct Notified {
    t: TestEnv,
    calls: PathBuf,
    clock: PathBuf,
}

impl Notified {
    fn new(settings: &str) -> Notified {
        let t = TestEnv::new();
        let calls = t.root().join("calls");
        fs::create_dir_all(&calls).unwrap();
        let clock = t.root().join("clock");
        let config = t.home.join("agency.toml");
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[notify]\ncommand = 'cat > {}/call-$$.json'\n{settings}\n",
            calls.display()
        ));
        fs::write(&config, text).unwrap();
        Notified { t, calls, clock }
    }

    fn set_clock(&self, at: &str) {
        fs::write(&self.clock, at).unwrap();
    }

    /// Brings an agency up; its router gets the clock and UTC.
    fn start(&self) {
        let out = self
            .t
            .cmd(&[
                "create",
                "CodeAgency",
                "--agents",
                "a",
                "--agent-command",
                "cat",
            ])
            .env("AGENCY_TEST_CLOCK", &self.clock)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn calls(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.calls)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| serde_json::from_str(&fs::read_to_string(f).ok()?).ok())
            .collect()
    }

    fn block(&self, title: &str) {
        let added = self
            .t
            .json(&["task", "add", title, "--agency", "CodeAgency", "--json"]);
        let id = added["id"].to_string();
        self.t
            .ok(&["task", "block", &id, "--note", &format!("{title} is stuck")]);
    }

    fn log_has(&self, line: &str) -> bool {
        lines_of(&self.t.home.join("registry/router.log"))
            .iter()
            .any(|l| l.contains(line))
    }
}

#[test]
fn notify_batches_what_comes_within_the_window_into_one_call() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the test clock is read by debug builds only");
        return;
    }
    let n = Notified::new("batch = \"2m\"");
    n.set_clock("2030-01-01T12:00:00Z");
    n.start();
    for title in ["one", "two", "three"] {
        n.block(title);
    }
    wait_until("the router to hold three", || {
        n.log_has("notify: 3 item(s) held (batch until 2030-01-01T12:02:00Z)")
    });
    assert!(n.calls().is_empty(), "nothing before the window ends");
    n.set_clock("2030-01-01T12:02:00Z");
    wait_until("one call", || n.calls().len() == 1);
    let call = &n.calls()[0];
    assert_eq!(call["count"], 3, "{call}");
    let titles: Vec<&str> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["kind"], "blocked");
            assert_eq!(e["agency"], "CodeAgency");
            e["what"].as_str().unwrap()
        })
        .collect();
    assert_eq!(titles.len(), 3);
    assert!(titles[0].contains("one is stuck"), "{titles:?}");
    assert!(call["summary"]
        .as_str()
        .unwrap()
        .starts_with("agency: 3 items need you"));
    // The command to act pastes.
    let words = shlex::split(call["events"][0]["command"].as_str().unwrap()).unwrap();
    assert!(words.contains(&"task".to_string()) && words.contains(&"show".to_string()));
    wait_until("the call logged", || n.log_has("notify: 3 item(s) sent"));
    // One more, later: a call of its own.
    n.block("four");
    wait_until("held", || n.log_has("notify: 1 item(s) held"));
    n.set_clock("2030-01-01T12:10:00Z");
    wait_until("a second call", || n.calls().len() == 2);
    assert_eq!(
        n.calls()
            .iter()
            .map(|c| c["count"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
}

#[test]
fn notify_holds_everything_in_quiet_hours_and_sends_it_as_one_call_after() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the test clock is read by debug builds only");
        return;
    }
    let n = Notified::new("batch = \"1m\"\nquiet = \"22:00-08:00\"");
    n.set_clock("2030-01-01T23:00:00Z");
    n.start();
    n.block("one");
    n.block("two");
    wait_until("held for the night", || {
        n.log_has("notify: 2 item(s) held (quiet hours)")
    });
    // Hours later, still night: the batch window is long past, and still
    // nothing goes out (a third item shows the router looked then).
    n.set_clock("2030-01-02T03:00:00Z");
    n.block("three");
    wait_until("held at three", || {
        n.log_has("notify: 3 item(s) held (quiet hours)")
    });
    assert!(n.calls().is_empty(), "{:?}", n.calls());
    // One dealt with in the night is left out of the morning's call.
    let id: i64 =
        n.t.db()
            .query_row("SELECT id FROM tasks WHERE title = 'two'", [], |r| r.get(0))
            .unwrap();
    n.t.ok(&["task", "reopen", &id.to_string()]);
    n.set_clock("2030-01-02T08:00:00Z");
    wait_until("the morning call", || n.calls().len() == 1);
    let call = &n.calls()[0];
    assert_eq!(call["count"], 2, "{call}");
    let what = call["events"].to_string();
    assert!(
        what.contains("one is stuck") && what.contains("three is stuck"),
        "{what}"
    );
    assert!(!what.contains("two is stuck"), "{what}");
}

#[test]
fn a_failing_notify_command_is_logged_and_delivery_goes_on() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the test clock is read by debug builds only");
        return;
    }
    let n = Notified::new("batch = \"0s\"");
    let config = n.t.home.join("agency.toml");
    let text = fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "command = 'cat > ",
        "command = 'echo broken >&2; exit 3; cat > ",
    );
    fs::write(&config, text).unwrap();
    n.set_clock("2030-01-01T12:00:00Z");
    n.start();
    n.block("one");
    wait_until("the failure logged", || n.log_has("notify: the command"));
    assert!(n.log_has("failed: exit status: 3"));
    assert!(lines_of(&n.t.home.join("registry/notify.log")).contains(&"broken".to_string()));
    n.t.ok(&["send", "CodeAgency", "a", "still delivered"]);
    let pane = pane_of(&n.t, "CodeAgency", "a");
    wait_until("the message typed", || {
        n.t.tmux_ok(&["capture-pane", "-p", "-t", &pane])
            .contains("still delivered")
    });
}

#[test]
fn a_notify_timeout_too_long_for_the_clock_is_refused_and_the_router_lives_on() {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the test clock is read by debug builds only");
        return;
    }
    let n = Notified::new("batch = \"0s\"\ntimeout = \"500000000000y\"");
    n.set_clock("2030-01-01T12:00:00Z");
    n.start();
    n.block("one");
    wait_until("the setting refused in the log", || {
        n.log_has("[notify] timeout = \"500000000000y\" in agency.toml: longer than a day")
    });
    assert!(n.log_has("at most"), "the hint");
    n.t.ok(&["send", "CodeAgency", "a", "still delivered"]);
    let pane = pane_of(&n.t, "CodeAgency", "a");
    wait_until("the message typed", || {
        n.t.tmux_ok(&["capture-pane", "-p", "-t", &pane])
            .contains("still delivered")
    });
    assert!(!n.log_has("panicked"));
    let pid = n.t.router_pid().expect("a router");
    assert!(crate::common::process_alive(pid), "the router died");
    assert!(n.calls().is_empty(), "notified with a broken setting");
}

#[test]
fn the_router_and_the_notify_command_run_as_the_human_whoever_starts_them() {
    // An agent starts it (its `send` would).
    run_as_the_human(false);
}

#[test]
fn a_router_run_by_hand_in_an_agents_pane_still_notifies_as_the_human() {
    run_as_the_human(true);
}

/// A router started with an agent's identity, branch and binary, and its
/// PATH led by the workspace's registry/bin: detached (`router`), or in
/// the foreground (`router --foreground`, by hand); its notify command and
/// the commands it prints are the human's all the same.
fn run_as_the_human(foreground: bool) {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: the test clock is read by debug builds only");
        return;
    }
    let n = Notified::new("batch = \"0s\"");
    let calls = n.calls.display().to_string();
    n.t.set_config(
        "command = 'cat > ",
        &format!("command = 'env > {calls}/env.txt; cat > "),
    );
    n.set_clock("2030-01-01T12:00:00Z");
    n.start();
    n.t.ok(&["router", "--stop"]);
    let bin = n.t.home.join("registry/bin");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let home = n.t.home.to_str().unwrap();
    let args: &[&str] = if foreground {
        &["--home", home, "router", "--foreground"]
    } else {
        &["router"]
    };
    let mut router = n.t.cmd(args);
    router
        .env("AGENCY_TEST_CLOCK", &n.clock)
        .env("TZ", "UTC")
        .env("AGENCY_NAME", "CodeAgency")
        .env("AGENCY_AGENT", "a")
        .env("AGENCY_BRANCH", "agency/CodeAgency/a")
        .env("AGENCY_WORKTREE", n.t.root())
        .env("AGENCY_BIN", bin.join("agency"))
        .env("PATH", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut by_hand = None;
    if foreground {
        by_hand = Some(router.spawn().unwrap());
        wait_until("the router by hand", || n.t.router_pid().is_some());
    } else {
        assert!(router.status().unwrap().success());
    }
    n.block("one");
    wait_until("the call", || n.calls().len() == 1);
    if let Some(mut child) = by_hand {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let env = fs::read_to_string(n.calls.join("env.txt")).unwrap();
    for var in [
        "AGENCY_NAME",
        "AGENCY_AGENT",
        "AGENCY_BRANCH",
        "AGENCY_WORKTREE",
        "AGENCY_BIN",
    ] {
        assert!(
            !env.lines().any(|l| l.starts_with(&format!("{var}="))),
            "{var}: {env}"
        );
    }
    let path = env.lines().find(|l| l.starts_with("PATH=")).unwrap();
    assert!(!path.contains("registry/bin"), "{path}");
    assert!(env.contains(&format!("AGENCY_HOME={}", n.t.home.display())));
    // Its commands paste where `agency` is not on PATH: the binary by its
    // full path, as every printed command names it.
    let exe = fs::canonicalize(env!("CARGO_BIN_EXE_agency")).unwrap();
    let doc = n.calls()[0].to_string();
    assert!(
        doc.contains(&format!("\"{} --home ", exe.display())),
        "{doc}"
    );
    assert!(!doc.contains("\"agency "), "{doc}");
}
