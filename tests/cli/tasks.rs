//! The task graph against real SQLite and real tmux: refused graphs write
//! nothing, scripted agencies work a DAG through by themselves, dependents
//! are dispatched in the transaction of their last need, claims are never
//! doubled, dead claimers lose their claims, the git path moves tasks, and
//! plans reconcile.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::{commit, git, lines_of, wait_for_progress, wait_until, TestEnv};

/// Counts of every table a task change could write, and when each task
/// last changed.
fn snapshot(t: &TestEnv) -> (Vec<i64>, Vec<String>) {
    let db = t.db();
    // Not what the router writes meanwhile (deliveries, acks).
    let counts = [
        "tasks",
        "task_needs",
        "task_events",
        "messages",
        "events WHERE kind NOT IN ('message.delivered', 'message.acked', 'message.failed')",
    ]
    .iter()
    .map(|table| {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    })
    .collect();
    let stamps: Vec<String> = {
        let mut st = db
            .prepare("SELECT updated_at FROM tasks ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    (counts, stamps)
}

fn add(t: &TestEnv, args: &[&str]) -> i64 {
    let mut all = vec!["task", "add"];
    all.extend(args);
    all.push("--json");
    t.json(&all)["id"].as_i64().unwrap()
}

fn task(t: &TestEnv, id: i64) -> serde_json::Value {
    t.json(&["task", "show", &id.to_string(), "--json"])
}

fn state(t: &TestEnv, id: i64) -> String {
    task(t, id)["state"].as_str().unwrap().to_string()
}

fn history(t: &TestEnv, id: i64) -> Vec<String> {
    task(t, id)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

#[test]
fn cycles_self_edges_and_unknown_ids_are_refused_with_nothing_written() {
    let t = TestEnv::new();
    t.receivers("Code", "dev");
    let a = add(&t, &["Design", "--agency", "Code"]);
    let b = add(
        &t,
        &["Build", "--agency", "Code", "--needs", &a.to_string()],
    );
    let c = add(&t, &["Test", "--agency", "Code", "--needs", &b.to_string()]);
    let before = snapshot(&t);
    let (a, c) = (a.to_string(), c.to_string());
    let loop_err = t.fails(&["task", "edit", &a, "--needs", &c]);
    assert!(
        loop_err.contains("loop: 1 needs 3 needs 2 needs 1"),
        "{loop_err}"
    );
    let self_err = t.fails(&["task", "edit", &a, "--needs", &format!("{c},{a}")]);
    assert!(self_err.contains("cannot need itself"), "{self_err}");
    let unknown = t.fails(&["task", "add", "X", "--agency", "Code", "--needs", "1,99"]);
    assert!(unknown.contains("no task 99"), "{unknown}");
    t.fails(&["task", "add", "X", "--agency", "Code", "--parent", "42"]);
    t.fails(&["task", "edit", &a, "--needs", "77"]);
    t.fails(&["task", "add", "X", "--agency", "Nowhere"]);
    // Hostile names never get in.
    t.fails(&["task", "add", "X", "--capability", "#{pane_id};x"]);
    t.fails(&["task", "add", "X", "--agency", "../Code"]);
    t.fails(&["task", "claim", &a, "--agent", "Code/$(touch x)"]);
    t.fails(&["task", "claim", &a, "--agent", "Code/nobody"]);
    t.fails(&["task", "add", " \n\t "]);
    // Usage errors (not an id, both places) are clap's: exit 2.
    for usage in [
        &["task", "add", "X", "--agency", "Code", "--needs", "one"][..],
        &["task", "add", "X", "--agency", "Code", "--capability", "qa"],
    ] {
        assert_eq!(t.run(usage).status.code(), Some(2), "{usage:?}");
    }
    let plans = [
        (
            "loop",
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\nagency = \"Code\"\nneeds = [\"b\"]\n\
             [[task]]\nkey = \"b\"\ntitle = \"B\"\nagency = \"Code\"\nneeds = [\"a\"]\n",
            "loop",
        ),
        (
            "selfish",
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\nagency = \"Code\"\nneeds = [\"a\"]\n",
            "needs itself",
        ),
        (
            "unknown",
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\nagency = \"Code\"\nneeds = [\"zzz\"]\n",
            "not a key",
        ),
        (
            "typo",
            "[[task]]\nkey = \"a\"\ntitle = \"A\"\nagnecy = \"Code\"\n",
            "unknown field `agnecy`",
        ),
        (
            "badkey",
            "[[task]]\nkey = \"../a\"\ntitle = \"A\"\nagency = \"Code\"\n",
            "invalid task key",
        ),
    ];
    for (name, text, says) in plans {
        let path = t.root().join(format!("{name}.toml"));
        write(&path, text);
        let err = t.fails(&["plan", "apply", path.to_str().unwrap()]);
        assert!(err.contains(says), "{name}: {err}");
    }
    assert_eq!(snapshot(&t), before, "a refused change wrote something");
}

/// A scripted coordinator assigns each task it is told of to its worker; the
/// worker notes it and marks it done.
fn scripted_agency(t: &TestEnv, name: &str, capabilities: &str, log: &Path) {
    let dir = t.root().join(format!("rules-{name}"));
    fs::create_dir_all(&dir).unwrap();
    // One TASK message names every task of the agency that became ready
    // together, a line each: claim them all.
    write(
        &dir.join("coordinator.toml"),
        r#"[[rule]]
type = "TASK"
when = 'task #\d+ ready'
run = ['for id in $(printf "%s\\n" "$MSG_BODY" | sed -n "s/^task #\\([0-9]*\\) ready.*/\\1/p"); do agency task claim "$id" --agent "$AGENCY_NAME/worker"; done']
"#,
    );
    write(
        &dir.join("worker.toml"),
        &format!(
            "[[rule]]\ntype = \"TASK\"\nwhen = 'task #(?P<task>\\d+) assigned'\n\
             run = ['echo \"$AGENCY_NAME $MSG_TASK\" >> {}', 'agency task done \"$MSG_TASK\"']\n",
            log.display()
        ),
    );
    let spec = serde_json::json!({
        "name": name,
        "capabilities": capabilities.split(',').collect::<Vec<_>>(),
        "coordinator": {"name": "lead", "role_file": "coordinator.md",
            "command": format!("\"$AGENCY_BIN\" agent scripted --rules {}", dir.join("coordinator.toml").display())},
        "agents": [{"name": "worker", "role_file": "agents/worker.md",
            "command": format!("\"$AGENCY_BIN\" agent scripted --rules {}", dir.join("worker.toml").display())}],
    });
    let adir = t.home.join("agencies").join(name);
    fs::create_dir_all(adir.join("agents")).unwrap();
    write(&adir.join("agency.json"), &spec.to_string());
    write(&adir.join("coordinator.md"), "# lead\n");
    write(&adir.join("agents/worker.md"), "# worker\n");
    t.ok(&["create", name]);
}

#[test]
fn a_three_level_dag_across_two_agencies_runs_in_order_by_itself() {
    let t = TestEnv::new();
    let log = t.root().join("work.log");
    scripted_agency(&t, "Code", "backend", &log);
    scripted_agency(&t, "Qa", "testing", &log);
    // design → (frontend in Code, api by capability) → integration tests in Qa.
    let plan = t.root().join("release.toml");
    write(
        &plan,
        r#"
[[task]]
key = "design"
title = "Design the API"
agency = "Code"

[[task]]
key = "frontend"
title = "Build the frontend"
agency = "Code"
needs = ["design"]

[[task]]
key = "api"
title = "Build the API"
capability = "backend"
needs = ["design"]

[[task]]
key = "integration"
title = "Integration tests"
capability = "testing"
needs = ["frontend", "api"]
"#,
    );
    let r = t.json(&["plan", "apply", plan.to_str().unwrap(), "--json"]);
    let id = |k: &str| r["tasks"][k].as_i64().unwrap();
    // No key is pressed from here on: the agents do it all. Each step runs
    // a few `agency` commands, slow on a loaded machine: the deadline is
    // for the next task to be done, not for all four.
    wait_for_progress("every task to be done", Duration::from_secs(60), 4, || {
        ["design", "frontend", "api", "integration"]
            .iter()
            .filter(|k| state(&t, id(k)) == "done")
            .count()
    });
    let done: Vec<String> = lines_of(&log);
    let pos = |who: &str, k: &str| {
        done.iter()
            .position(|l| *l == format!("{who} {}", id(k)))
            .unwrap_or_else(|| panic!("{who} {k} missing from {done:?}"))
    };
    assert_eq!(done.len(), 4, "each task worked once: {done:?}");
    assert!(pos("Code", "design") < pos("Code", "frontend"));
    assert!(pos("Code", "design") < pos("Code", "api"));
    assert!(pos("Code", "frontend") < pos("Qa", "integration"));
    assert!(pos("Code", "api") < pos("Qa", "integration"));
    for k in ["design", "frontend", "api", "integration"] {
        let h = history(&t, id(k));
        let dispatched = h.iter().filter(|k| *k == "dispatched").count();
        assert_eq!(dispatched, 1, "{k}: dispatched once per readiness: {h:?}");
    }
    assert_eq!(task(&t, id("integration"))["agency"], "Qa");
    // Ready together for one agency: one wake-up for its coordinator.
    let message = |k: &str| {
        task(&t, id(k))["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "dispatched")
            .unwrap()["detail"]["message"]
            .clone()
    };
    assert_eq!(message("frontend"), message("api"));
    assert_ne!(message("design"), message("api"));
}

#[test]
fn a_dependent_is_dispatched_in_the_transaction_that_finishes_its_last_need() {
    let t = TestEnv::new();
    let out = t.receivers("Code", "dev");
    let a = add(&t, &["Design", "--agency", "Code"]);
    let b = add(&t, &["Review", "--agency", "Code"]);
    // Hostile text reaches the pane only as text.
    let c = add(
        &t,
        &[
            "Ship #{pane_id} $(touch pwned); \u{1b}[201~\u{1b}]0;x\u{7}",
            "--agency",
            "Code",
            "--needs",
            &format!("{a},{b}"),
        ],
    );
    t.ok(&["task", "done", &a.to_string()]);
    assert_eq!(state(&t, c), "waiting");
    t.ok(&["task", "done", &b.to_string()]);
    // When `done` returns, the TASK message is already queued: no tick, no poll.
    let db = t.db();
    let (queued_at, body): (String, String) = db
        .query_row(
            "SELECT created_at, body FROM messages WHERE kind = 'TASK' AND body LIKE ?1",
            [format!("task #{c} ready%")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the dependent's TASK message");
    let done_at: String = db
        .query_row(
            "SELECT at FROM task_events WHERE task = ?1 AND kind = 'done'",
            [b],
            |r| r.get(0),
        )
        .unwrap();
    let secs = |s: &str| {
        humantime::parse_rfc3339(s)
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    assert!(
        (secs(&queued_at) - secs(&done_at)).abs() < 1.0,
        "{done_at} → {queued_at}"
    );
    assert!(
        !body.contains('\u{1b}') && !body.contains('\u{7}'),
        "{body:?}"
    );
    let file = out.join("coordinator.out");
    wait_until("the TASK message in the coordinator's pane", || {
        fs::read_to_string(&file).is_ok_and(|s| s.contains(&format!("task #{c} ready")))
    });
    let got = fs::read_to_string(&file).unwrap();
    assert!(
        got.contains("Ship #{pane_id} $(touch pwned); [201~]0;x"),
        "{got}"
    );
    assert!(!t.home.join("pwned").exists());
    assert_eq!(history(&t, c), ["created", "ready", "dispatched"]);
}

#[test]
fn concurrent_next_never_claims_a_task_twice() {
    let t = TestEnv::new();
    let agents: Vec<String> = (1..=8).map(|i| format!("w{i}")).collect();
    t.receivers("Pool", &agents.join(","));
    let plan = t.root().join("pool.toml");
    let mut text = String::from("agency = \"Pool\"\n");
    for i in 0..40 {
        text.push_str(&format!("[[task]]\nkey = \"t{i}\"\ntitle = \"Task {i}\"\n"));
    }
    write(&plan, &text);
    t.ok(&["plan", "apply", plan.to_str().unwrap()]);
    // Every agent takes, finishes, and takes again, all at once.
    let claimed: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter()
            .map(|a| {
                let t = &t;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let n = t.json(&["task", "next", "Pool", a, "--json"]);
                        let Some(id) = n["id"].as_i64() else {
                            return mine;
                        };
                        assert_eq!(n["agent"], a.as_str());
                        mine.push(id);
                        t.ok(&["task", "done", &id.to_string()]);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.concat();
    all.sort_unstable();
    let unique = {
        let mut u = all.clone();
        u.dedup();
        u
    };
    assert_eq!(all, unique, "a task was claimed twice");
    assert_eq!(all.len(), 40, "every task claimed: {claimed:?}");
    let claims: i64 = t
        .db()
        .query_row(
            "SELECT count(*) FROM task_events WHERE kind = 'claimed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(claims, 40);
    // Nothing left: not an error.
    assert_eq!(
        t.json(&["task", "next", "Pool", "w1", "--json"]),
        serde_json::Value::Null
    );
    assert!(t
        .ok(&["task", "next", "Pool", "w1"])
        .starts_with("nothing ready"));
}

#[test]
fn task_add_says_where_the_task_went_and_q_prints_the_id() {
    let t = TestEnv::new();
    t.receivers("Code", "dev");
    assert_eq!(
        t.ok(&["task", "add", "Design", "--agency", "Code"]).trim(),
        "task 1 added for Code (ready: its coordinator is told)"
    );
    assert_eq!(
        t.ok(&["task", "add", "Build", "--agency", "Code", "--needs", "1"])
            .trim(),
        "task 2 added for Code (waiting for the tasks it needs)"
    );
    assert_eq!(
        t.ok(&["task", "add", "Ship", "--agency", "Code", "-q"])
            .trim(),
        "3"
    );
    assert_eq!(
        t.json(&["task", "add", "Tell", "--agency", "Code", "--json"]),
        serde_json::json!({"id": 4})
    );
}

#[test]
fn task_next_says_how_to_finish_as_the_briefing_does() {
    // An agent on its own branch: the work goes through approval.
    let (t, _repo) = TestEnv::with_project();
    t.receivers("CodeAgency", "dev");
    let id = add(&t, &["Parse it", "--agency", "CodeAgency"]);
    let out = t.ok(&["task", "next", "CodeAgency", "dev"]);
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "when finished: commit on agency/CodeAgency/dev and report it to your coordinator, who submits it for review (it is done once the human approves): agency send CodeAgency coordinator \"COMPLETE task {id} on agency/CodeAgency/dev\"; work with nothing to merge: agency task done {id}"
        )
    );
    // No branch of its own (the project is no git repository): done.
    let t = TestEnv::new();
    t.receivers("Code", "dev");
    let id = add(&t, &["Write it up", "--agency", "Code"]);
    let out = t.ok(&["task", "next", "Code", "dev"]);
    assert_eq!(
        out.lines().last().unwrap(),
        format!("when finished: agency task done {id}")
    );
}

#[test]
fn a_dead_claimers_task_is_reclaimed_after_the_lease_and_a_live_ones_is_not() {
    let t = TestEnv::new();
    t.set_config("lease = \"10m\"", "lease = \"1s\"");
    let out = t.receivers("Code", "dead,gone,alive");
    let ids: Vec<i64> = ["dead", "gone", "alive"]
        .iter()
        .map(|a| {
            let id = add(&t, &[&format!("Work of {a}"), "--agency", "Code"]);
            t.ok(&[
                "task",
                "claim",
                &id.to_string(),
                "--agent",
                &format!("Code/{a}"),
            ]);
            id
        })
        .collect();
    let status = t.json(&["status", "Code", "--json"]);
    let pane = |name: &str| {
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["pane"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        status["agents"][1]["tasks"][0]["id"], ids[0],
        "status shows the claim: {status}"
    );
    let killed_at = SystemTime::now();
    // `dead`'s program exits (its pane stays, dead); `gone`'s pane goes.
    let pid = t.tmux_ok(&["display-message", "-p", "-t", &pane("dead"), "#{pane_pid}"]);
    let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    t.tmux_ok(&["kill-pane", "-t", &pane("gone")]);
    for id in &ids[..2] {
        wait_until("the claim to lapse", || state(&t, *id) == "ready");
        let h = task(&t, *id)["history"].clone();
        let reclaimed = h
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "reclaimed")
            .unwrap_or_else(|| panic!("no reclaimed event: {h}"));
        let at = humantime::parse_rfc3339(reclaimed["at"].as_str().unwrap()).unwrap();
        assert!(
            at.duration_since(killed_at).unwrap_or_default() >= Duration::from_millis(990),
            "reclaimed before the lease ran out"
        );
        assert_eq!(task(&t, *id)["agent"], serde_json::Value::Null);
    }
    // Dispatched again, saying why.
    wait_until("the coordinator to hear of it again", || {
        fs::read_to_string(out.join("coordinator.out"))
            .is_ok_and(|s| s.contains(&format!("task #{} ready again", ids[0])))
    });
    assert_eq!(
        state(&t, ids[2]),
        "claimed",
        "a live claimer keeps its task"
    );
    assert!(!history(&t, ids[2]).contains(&"reclaimed".to_string()));
}

#[test]
fn submit_approve_and_reject_move_the_task_and_approval_unblocks_the_next() {
    let (t, repo) = TestEnv::with_project();
    let out = t.receivers("CodeAgency", "dev");
    t.receivers("QAAgency", "tester");
    let a = add(&t, &["Add the parser", "--agency", "CodeAgency"]);
    let b = add(
        &t,
        &[
            "Use the parser",
            "--agency",
            "CodeAgency",
            "--needs",
            &a.to_string(),
        ],
    );
    let (a_s, b_s) = (a.to_string(), b.to_string());
    t.ok(&["task", "claim", &a_s, "--agent", "CodeAgency/dev"]);
    git(&repo, &["checkout", "-qb", "feature/parser", "main"]);
    commit(&repo, &[("parser.txt", "x\n")], "parser");
    git(&repo, &["checkout", "-q", "main"]);
    let submit = || {
        t.json(&[
            "submit",
            "CodeAgency",
            "--task",
            &a_s,
            "--branch",
            "feature/parser",
            "--test-command",
            "true",
            "--json",
        ])
    };
    let item = submit();
    assert_eq!(
        item["title"], "Add the parser",
        "the task's title names the item"
    );
    assert_eq!(state(&t, a), "review");
    assert_eq!(task(&t, a)["branch"], "feature/parser");
    // Only the human's decision finishes it: neither its agent nor anyone
    // else marks it done or cancelled (what needs it would start).
    let done = ["task", "done", &a_s, "--note", "done, trust me"];
    let as_dev = t
        .cmd(&done)
        .env("AGENCY_NAME", "CodeAgency")
        .env("AGENCY_AGENT", "dev")
        .output()
        .unwrap();
    let err = crate::common::expect_user_error(&as_dev, &done);
    assert!(err.contains("waits for the human's decision"), "{err}");
    t.fails(&["task", "cancel", &a_s]);
    assert_eq!(
        (state(&t, a), state(&t, b)),
        ("review".into(), "waiting".into())
    );
    // A task in review cannot be submitted under a waiting task's id.
    t.fails(&[
        "submit",
        "CodeAgency",
        "--task",
        &b_s,
        "--branch",
        "feature/parser",
        "--test-command",
        "true",
    ]);
    t.ok(&[
        "reject",
        &item["id"].to_string(),
        "--feedback",
        "name it parse.txt",
    ]);
    assert_eq!(state(&t, a), "claimed");
    assert_eq!(task(&t, a)["agent"], "dev");
    let h = task(&t, a)["history"].clone();
    assert!(
        h.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "rejected" && e["note"] == "name it parse.txt"),
        "{h}"
    );
    wait_until("the claimer to hear of the rejection", || {
        fs::read_to_string(out.join("dev.out")).is_ok_and(|s| {
            s.contains(&format!("task #{a} rejected in review")) && s.contains("name it parse.txt")
        })
    });
    let item = submit();
    assert_eq!(state(&t, b), "waiting");
    t.ok(&["approve", &item["id"].to_string()]);
    assert_eq!(state(&t, a), "done");
    assert_eq!(state(&t, b), "ready", "approval unblocks what needed it");
    wait_until("the next task's dispatch", || {
        fs::read_to_string(out.join("coordinator.out"))
            .is_ok_and(|s| s.contains(&format!("task #{b} ready")))
    });
    // A handoff with a task id moves the task; a label stays a label.
    t.ok(&["task", "claim", &b_s, "--agent", "CodeAgency/dev"]);
    let out = t.ok(&[
        "handoff",
        "CodeAgency",
        "QAAgency",
        "--task",
        &b_s,
        "--branch",
        "feature/parser",
    ]);
    // It says so: the task moved, and dev's claim ended.
    assert!(
        out.contains(&format!(
            "task {b} \"Use the parser\" moved to QAAgency (ready, unclaimed); the claim of CodeAgency/dev on it ended"
        )),
        "{out}"
    );
    let moved = task(&t, b);
    assert_eq!(
        (moved["agency"].as_str(), moved["state"].as_str()),
        (Some("QAAgency"), Some("ready"))
    );
    assert_eq!(moved["agent"], serde_json::Value::Null);
    let before = snapshot(&t).0[0..3].to_vec();
    t.ok(&[
        "handoff",
        "CodeAgency",
        "QAAgency",
        "--task",
        "999",
        "--branch",
        "feature/parser",
    ]);
    let label = t.json(&[
        "handoff",
        "CodeAgency",
        "QAAgency",
        "--task",
        "the parser",
        "--branch",
        "feature/parser",
        "--json",
    ]);
    assert!(label.get("moved").is_none(), "{label}");
    assert_eq!(label["task"], "the parser");
    assert_eq!(
        snapshot(&t).0[0..3].to_vec(),
        before,
        "labels touch no task"
    );
}

#[test]
fn applying_a_plan_twice_changes_nothing_and_an_edited_plan_reconciles() {
    let t = TestEnv::new();
    t.receivers("Code", "dev");
    let plan = t.root().join("release.toml");
    let text = r#"
plan = "release"
agency = "Code"

[[task]]
key = "design"
title = "Design"
priority = "high"

[[task]]
key = "build"
title = "Build"
needs = ["design"]
parent = "design"
body = "all of it"

[[task]]
key = "docs"
title = "Docs"
needs = ["design"]
"#;
    write(&plan, text);
    let p = plan.to_str().unwrap();
    let first = t.json(&["plan", "apply", p, "--json"]);
    assert_eq!(first["created"].as_array().unwrap().len(), 3);
    let before = snapshot(&t);
    let again = t.json(&["plan", "apply", p, "--json"]);
    assert_eq!(again["tasks"], first["tasks"]);
    assert_eq!(again["unchanged"].as_array().unwrap().len(), 3, "{again}");
    assert_eq!(snapshot(&t), before, "applying again wrote something");
    // Edited: a new key, a changed title, a removed key.
    let edited = text
        .replace("title = \"Build\"", "title = \"Build it all\"")
        .replace(
            "[[task]]\nkey = \"docs\"\ntitle = \"Docs\"\nneeds = [\"design\"]\n",
            "",
        )
        + "\n[[task]]\nkey = \"ship\"\ntitle = \"Ship\"\nneeds = [\"build\"]\n";
    write(&plan, &edited);
    let dry = t.json(&["plan", "apply", p, "--dry-run", "--json"]);
    assert_eq!(snapshot(&t), before, "a dry run wrote something");
    let r = t.json(&["plan", "apply", p, "--json"]);
    assert_eq!(dry["updated"], r["updated"]);
    assert_eq!(r["created"], serde_json::json!(["ship"]));
    assert_eq!(r["updated"], serde_json::json!(["build"]));
    assert_eq!(r["cancelled"], serde_json::json!(["docs"]));
    let build = task(&t, r["tasks"]["build"].as_i64().unwrap());
    assert_eq!(build["title"], "Build it all");
    assert_eq!(build["parent"], r["tasks"]["design"]);
    assert_eq!(
        state(&t, first["tasks"]["docs"].as_i64().unwrap()),
        "cancelled"
    );
    let tree = t.ok(&["task", "list"]);
    assert!(tree.contains("└─ Build it all"), "{tree}");
    // The router keeps registry/task_graph.json in step.
    let listed = t.json(&["task", "list", "--json"]);
    wait_until("task_graph.json to follow", || {
        fs::read_to_string(t.home.join("registry/task_graph.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|m| m["tasks"] == listed)
    });
}

#[test]
fn capability_tasks_go_to_the_least_busy_agency_or_wait_saying_why() {
    let t = TestEnv::new();
    t.ok(&[
        "create",
        "A",
        "--agents",
        "dev",
        "--capabilities",
        "qa",
        "--agent-command",
        "cat",
    ]);
    t.ok(&[
        "create",
        "B",
        "--agents",
        "dev",
        "--capabilities",
        "qa,ml",
        "--agent-command",
        "cat",
    ]);
    add(&t, &["Busy work", "--agency", "A"]);
    let q = add(&t, &["Test it", "--capability", "qa"]);
    assert_eq!(
        task(&t, q)["agency"],
        "B",
        "the agency with fewer open tasks"
    );
    let g = add(&t, &["Render", "--capability", "gpu"]);
    let waiting = task(&t, g);
    assert_eq!(waiting["state"], "ready");
    assert_eq!(waiting["agency"], serde_json::Value::Null);
    assert_eq!(waiting["reason"], "no running agency has capability gpu");
    assert!(t
        .ok(&["task", "list"])
        .contains("no running agency has capability gpu"));
    assert!(t.ok(&["status"]).contains(&format!(
        "task {g} waits: no running agency has capability gpu"
    )));
    // An agency that has it comes up: the task goes to it and is dispatched.
    t.ok(&[
        "create",
        "C",
        "--agents",
        "dev",
        "--capabilities",
        "gpu",
        "--agent-command",
        "cat",
    ]);
    let routed = task(&t, g);
    assert_eq!(routed["agency"], "C");
    assert!(history(&t, g).contains(&"dispatched".to_string()));
    // An agency may claim what asks for its capabilities, not others'.
    let m = add(&t, &["Train", "--capability", "ml"]);
    t.fails(&["task", "claim", &m.to_string(), "--agent", "A/dev"]);
}
