//! The message bus against real tmux: receivers are `cat` appending to a
//! file, so the file holds exactly what reached the program.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{expect_user_error, lines_of, wait_for, wait_until, TestEnv};

/// `[msg #ID TYPE from SENDER] body` → (id, body).
fn parse(line: &str) -> Option<(i64, String)> {
    let rest = line.strip_prefix("[msg #")?;
    let (id, rest) = rest.split_once(' ')?;
    let (_, body) = rest.split_once("] ")?;
    Some((id.parse().ok()?, body.to_string()))
}

#[test]
fn concurrent_senders_all_arrive_once_in_order() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let senders = 8;
    let per = 100;
    std::thread::scope(|s| {
        for k in 0..senders {
            let t = &t;
            s.spawn(move || {
                for i in 0..per {
                    t.ok(&["send", "-q", "Bus", "rx", &format!("s{k}-{i}")]);
                }
            });
        }
    });
    let file = out.join("rx.out");
    wait_for("800 messages", Duration::from_secs(60), || {
        lines_of(&file).len() >= senders * per
    });
    let lines = lines_of(&file);
    assert_eq!(lines.len(), senders * per, "no extra lines");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last: HashMap<usize, i64> = HashMap::new();
    for l in &lines {
        let (_, body) = parse(l).unwrap_or_else(|| panic!("mangled line {l:?}"));
        *seen.entry(body.clone()).or_default() += 1;
        let (k, i) = body[1..].split_once('-').unwrap();
        let (k, i): (usize, i64) = (k.parse().unwrap(), i.parse().unwrap());
        let prev = last.insert(k, i).unwrap_or(-1);
        assert!(i > prev, "sender {k}: {i} after {prev}");
    }
    assert_eq!(seen.len(), senders * per);
    assert!(seen.values().all(|&n| n == 1));
    // Typed first, recorded after: the records follow.
    wait_until("every message recorded as delivered", || {
        t.db()
            .query_row(
                "SELECT count(*) FROM messages WHERE state = 'delivered'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == (senders * per) as i64
    });
}

#[test]
fn killing_the_router_loses_nothing() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let file = out.join("rx.out");
    let total = 500;
    let mut kills = 0;
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            for i in 0..total {
                t.ok(&["send", "-q", "Bus", "rx", &format!("m{i}")]);
            }
        });
        for threshold in [50, 150, 250] {
            wait_for("deliveries", Duration::from_secs(60), || {
                lines_of(&file).len() >= threshold
            });
            if t.signal_router("-KILL").is_some() {
                kills += 1;
            }
        }
        sender.join().unwrap();
    });
    // Anything that starts it again; here the router command itself.
    t.ok(&["router"]);
    wait_for("all 500", Duration::from_secs(60), || {
        let mut bodies: Vec<String> = lines_of(&file)
            .iter()
            .filter_map(|l| parse(l))
            .map(|p| p.1)
            .collect();
        bodies.sort();
        bodies.dedup();
        bodies.len() == total
    });
    // Typed first, recorded after: wait for the records too.
    let undelivered = || -> i64 {
        t.db()
            .query_row(
                "SELECT count(*) FROM messages WHERE state != 'delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    wait_until("every message recorded as delivered", || undelivered() == 0);
    let lines = lines_of(&file);
    let repeats = lines.len() - total;
    assert!(kills >= 1, "the router was never caught running");
    assert!(repeats <= kills, "{repeats} repeats after {kills} kills");
}

#[test]
fn hostile_bodies_arrive_literally_and_run_nothing() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let marker = t.root().join("pwned");
    let long: String = "x".repeat(2048);
    let bodies = [
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        "it's \"quoted\" 'twice'".to_string(),
        "a;b; c".to_string(),
        "ends with a semicolon;".to_string(),
        "ends with escaped \\;".to_string(),
        "# not a comment".to_string(),
        "back\\slash \\n \\".to_string(),
        "ünïcødé ✓ 日本語".to_string(),
        "-starts with a dash".to_string(),
        "tab\there".to_string(),
    ];
    let mut ids = Vec::new();
    for b in &bodies {
        ids.push(t.ok(&["send", "-q", "Bus", "rx", b]).trim().to_string());
    }
    // Long bodies are pasted: the header on its own line, then the body.
    ids.push(t.ok(&["send", "-q", "Bus", "rx", &long]).trim().to_string());
    // Control characters: ESC and BEL are removed, the rest arrives.
    ids.push(
        t.ok(&["send", "-q", "Bus", "rx", "red\x1b[31mtext\x07bell"])
            .trim()
            .to_string(),
    );
    let mut child = t
        .cmd(&["send", "-q", "Bus", "rx", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\nsecond; line\n\x1b]0;title\x07third")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let file = out.join("rx.out");
    let expected_lines = bodies.len() + 2 + 1 + 4;
    wait_until("every body", || lines_of(&file).len() >= expected_lines);
    let text = fs::read_to_string(&file).unwrap();
    for b in &bodies {
        assert!(
            text.contains(&format!("] {b}\n")),
            "missing {b:?} in {text}"
        );
    }
    assert!(text.contains(&format!("]\n{long}\n")), "2 KB body");
    assert!(text.contains("] red[31mtextbell\n"), "{text}");
    assert!(
        text.contains("first line\nsecond; line\n]0;titlethird\n"),
        "{text}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\x07'));
    assert!(!marker.exists(), "a body was executed");
}

#[test]
fn bad_inter_agency_messages_queue_nothing() {
    let t = TestEnv::new();
    t.receivers("Code", "rx");
    for bad in [
        "{not json",
        "[1,2]",
        r#"{"task": "x"}"#,
        r#"{"type": 7}"#,
        "\"text\"",
    ] {
        let err = t.fails(&["send-inter", "QA", "Code", bad]);
        assert!(err.contains("JSON") || err.contains("type"), "{bad}: {err}");
    }
    t.fails(&["send-inter", "QA", "Nowhere", r#"{"type": "results"}"#]);
    t.fails(&["send", "Code", "nobody", "hi"]);
    t.usage_error(
        &["send", "Code", "rx", "hi", "--type", "SHOUT"],
        "STATUS, TASK, QUESTION, COMPLETE, BLOCKED, NOTE",
    );
    t.fails(&["send", "Code", "rx", "\x1b\x07"]);
    let rows: i64 = t
        .db()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    // A good one goes to the coordinator with its type.
    let id = t.json(&[
        "send-inter",
        "QA",
        "Code",
        r#"{"type": "results", "bugs": 3}"#,
        "--json",
    ])["id"]
        .as_i64()
        .unwrap();
    let (to, kind): (String, String) = t
        .db()
        .query_row(
            "SELECT agent, kind FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((to.as_str(), kind.as_str()), ("coordinator", "results"));
}

#[test]
fn a_message_to_a_killed_agency_waits_for_it() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    t.ok(&["kill", "Bus"]);
    wait_until("the router stopped with the last agency", || {
        t.ok(&["router", "--status"]) == "no router running\n"
    });
    let sent = t.run(&["send", "-q", "Bus", "rx", "while you were out"]);
    assert!(sent.status.success());
    // Nothing runs to deliver it to: no router starts just to wait.
    assert_eq!(t.ok(&["router", "--status"]), "no router running\n");
    let id = String::from_utf8(sent.stdout).unwrap().trim().to_string();
    // The sender hears that it waits, and what brings the agency back.
    let warning = String::from_utf8_lossy(&sent.stderr);
    assert!(
        warning.starts_with("warning: Bus is not running") && warning.contains(" create Bus"),
        "{warning}"
    );
    let inbox = t.json(&["inbox", "Bus", "rx", "--json"]);
    assert_eq!(inbox[0]["id"].to_string(), id);
    assert_eq!(inbox[0]["state"], "queued");
    let status = t.json(&["status", "Bus", "--json"]);
    assert_eq!(status["agents"][1]["queued"], 1);
    let text = t.ok(&["status", "Bus"]);
    assert!(
        text.contains("1 message(s) wait for it; start it again: ")
            && text.contains(" create Bus\n"),
        "{text}"
    );
    t.ok(&["create", "Bus"]);
    let file = out.join("rx.out");
    wait_until("the queued message", || {
        fs::read_to_string(&file).is_ok_and(|s| s.contains("while you were out"))
    });
    wait_until("the delivery record", || {
        t.json(&["inbox", "Bus", "rx", "--json"])[0]["state"] == "delivered"
    });
}

#[test]
fn nothing_is_typed_into_a_shell_and_every_message_is_shown_in_its_pane() {
    let t = TestEnv::new();
    // The coordinator runs the workspace default (`sh`); rx reads text.
    let out = t.receivers("Bus", "rx");
    t.ok(&["create", "Sh"]);
    let marker = t.root().join("ran");
    // Hostile bodies: a command, an escape sequence, an end-of-paste, a tmux format.
    let first = format!("touch {}", marker.display());
    let shell_id = t
        .ok(&["send", "-q", "Sh", "coordinator", &first])
        .trim()
        .to_string();
    let send = t.run(&[
        "send",
        "Sh",
        "coordinator",
        "second \x1b[2J\x1b[201~ #{pane_id} $(touch x)",
    ]);
    assert!(send.status.success());
    let note = String::from_utf8_lossy(&send.stderr);
    assert!(
        note.contains("runs a shell") && note.contains("inbox Sh coordinator"),
        "{note}"
    );
    // A later message elsewhere proves the router has been past it.
    t.ok(&["send", "-q", "Bus", "rx", "after"]);
    wait_until("the later message", || {
        fs::read_to_string(out.join("rx.out")).is_ok_and(|s| s.contains("after"))
    });
    // Both are on the shell's screen, shown, not typed: neither ran.
    wait_until("both messages shown in the pane", || {
        let screen = t.tmux_ok(&["capture-pane", "-p", "-J", "-t", "Sh:coordinator"]);
        screen.contains(&format!("[msg #{shell_id} NOTE from human]\ntouch "))
            && screen.contains("\nsecond [2J[201~ #{pane_id} $(touch x)\n")
            && screen.contains("agency inbox Sh coordinator")
    });
    t.ok(&["router"]);
    // Shown counts as delivered: they stay in the inbox until acknowledged.
    wait_until("both recorded as delivered", || {
        let inbox = t.json(&["inbox", "Sh", "coordinator", "--json"]);
        inbox.as_array().unwrap().len() == 2
            && inbox[0]["state"] == "delivered"
            && inbox[1]["state"] == "delivered"
    });
    let inbox = t.json(&["inbox", "Sh", "coordinator", "--json"]);
    assert_eq!(inbox[0]["id"].to_string(), shell_id);
    assert!(!marker.exists());
    assert!(!t.home.join("x").exists());
    // The shell still takes what a person types, and ran nothing of ours.
    let history = t.tmux_ok(&["capture-pane", "-p", "-J", "-t", "Sh:coordinator"]);
    assert!(!history.contains("not found"), "{history}");
    // Nothing waits any more; `ack` takes what the pane and the note say.
    let st = t.ok(&["status", "Sh"]);
    assert!(!st.contains("message(s) wait"), "{st}");
    assert!(
        note.contains("counts as delivered") && note.contains(" ack "),
        "{note}"
    );
    t.ok(&["ack", &shell_id]);
    let inbox = t.json(&["inbox", "Sh", "coordinator", "--json"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1);
    assert_ne!(inbox[0]["id"].to_string(), shell_id);
    // Shown once: the router's next passes print nothing more.
    let count = |s: &str| s.matches(&format!("[msg #{shell_id} ")).count();
    t.ok(&["send", "-q", "Bus", "rx", "later still"]);
    wait_until("the last message", || {
        fs::read_to_string(out.join("rx.out")).is_ok_and(|s| s.contains("later still"))
    });
    let screen = t.tmux_ok(&[
        "capture-pane",
        "-p",
        "-J",
        "-S",
        "-",
        "-t",
        "Sh:coordinator",
    ]);
    assert_eq!(count(&screen), 1, "{screen}");
    // Not shown yet (its pane in copy-mode): status says it waits to be
    // shown, and what to do once it is.
    t.tmux_ok(&["copy-mode", "-t", "Sh:coordinator"]);
    let late: i64 = t
        .ok(&["send", "-q", "Sh", "coordinator", "while scrolling"])
        .trim()
        .parse()
        .unwrap();
    let st = t.ok(&["status", "Sh"]);
    assert!(
        st.contains("1 message(s) wait to be shown in its pane: it runs a shell")
            && st.contains("counts as delivered")
            && st.contains(" ack ID"),
        "{st}"
    );
    t.tmux_ok(&["send-keys", "-t", "Sh:coordinator", "-X", "cancel"]);
    wait_until("the late one shown and delivered", || {
        t.json(&["inbox", "Sh", "coordinator", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"].as_i64() == Some(late) && m["state"] == "delivered")
    });
}

#[test]
fn inbox_ack_and_log() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let id = t.json(&["send", "Bus", "rx", "TASK-7: do it", "--json"])["id"]
        .as_i64()
        .unwrap();
    wait_until("delivery", || {
        fs::read_to_string(out.join("rx.out")).is_ok_and(|s| s.contains("TASK-7"))
    });
    wait_until("the delivery record", || {
        t.json(&["inbox", "Bus", "rx", "--json"])[0]["state"] == "delivered"
    });
    let inbox = t.json(&["inbox", "Bus", "rx", "--json"]);
    let m = &inbox[0];
    assert_eq!(m["id"], id);
    assert_eq!(m["from"], "human");
    assert_eq!(m["to"], "Bus/rx");
    assert_eq!(m["type"], "TASK");
    assert_eq!(m["body"], "TASK-7: do it");
    assert!(m["delivered_at"].is_string());
    t.ok(&["ack", &id.to_string()]);
    assert_eq!(
        t.json(&["inbox", "Bus", "rx", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        t.json(&["inbox", "Bus", "rx", "--all", "--json"])[0]["state"],
        "acked"
    );
    let err = t.fails(&["ack", "999"]);
    assert!(err.contains("#999"), "{err}");
    let kinds: Vec<String> = t
        .json(&["log", "--agency", "Bus", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in [
        "create",
        "message.queued",
        "message.delivered",
        "message.acked",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
    }
    let activity = fs::read_to_string(t.home.join("agencies/Bus/logs/activity.log")).unwrap();
    assert!(activity.contains("message.delivered"), "{activity}");
    // The sender comes from the environment inside an agency's pane.
    let id = t
        .cmd(&["send", "Bus", "coordinator", "STATUS half done", "--json"])
        .env("AGENCY_NAME", "Bus")
        .env("AGENCY_AGENT", "rx")
        .output()
        .unwrap();
    let id: serde_json::Value = serde_json::from_slice(&id.stdout).unwrap();
    let inbox = t.json(&["inbox", "Bus", "coordinator", "--json"]);
    assert_eq!(inbox[0]["id"], id["id"]);
    assert_eq!(inbox[0]["from"], "Bus/rx");
    assert_eq!(inbox[0]["type"], "STATUS");
}

#[test]
fn broadcast_reaches_running_coordinators() {
    let t = TestEnv::new();
    let out = t.receivers("One", "a");
    t.receivers("Two", "b");
    t.receivers("Off", "c");
    t.ok(&["kill", "Off"]);
    let ids = t.json(&[
        "broadcast",
        "Meta",
        r#"{"type": "alert", "message": "deploy at 15:00"}"#,
        "--json",
    ]);
    assert_eq!(ids["ids"].as_array().unwrap().len(), 2);
    let coord = out.join("coordinator.out");
    wait_until("both coordinators", || {
        fs::read_to_string(&coord).is_ok_and(|s| s.matches("deploy at 15:00").count() == 2)
    });
    let all = t.json(&[
        "broadcast",
        "Meta",
        "NOTE all hands",
        "--all-agents",
        "--json",
    ]);
    assert_eq!(all["ids"].as_array().unwrap().len(), 4);
}

#[test]
fn the_outbox_takes_files_and_rejects_bad_ones() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    t.ok(&["router"]);
    let outbox = t.home.join("registry/outbox");
    let drop = |name: &str, text: &str| {
        let tmp = t.root().join(format!("{name}.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, outbox.join(name)).unwrap();
    };
    drop(
        "a.json",
        r#"{"to": "Bus/rx", "from": "ci", "body": "TASK from a file"}"#,
    );
    drop(
        "b.json",
        r#"{"to": "Bus", "from": "QA", "type": "results", "status": "passed"}"#,
    );
    drop("bad.json", r#"{"to": "Bus/rx", "body": 5}"#);
    drop("nobody.json", r#"{"to": "Nobody", "body": "hi"}"#);
    wait_until("the file message", || {
        fs::read_to_string(out.join("rx.out"))
            .is_ok_and(|s| s.contains("[msg #1 TASK from ci] TASK from a file"))
    });
    wait_until("the inter-agency file message", || {
        fs::read_to_string(out.join("coordinator.out"))
            .is_ok_and(|s| s.contains("\"status\":\"passed\""))
    });
    let rejected = outbox.join("rejected");
    wait_until("rejections", || {
        rejected.join("nobody.json.reason").is_file()
    });
    assert!(rejected.join("bad.json").is_file());
    let reason = fs::read_to_string(rejected.join("bad.json.reason")).unwrap();
    assert!(reason.contains("body"), "{reason}");
    assert!(!outbox.join("a.json").exists());
}

#[test]
fn one_router_per_workspace() {
    let t = TestEnv::new();
    t.ok(&["router"]);
    let pid = t.router_pid().expect("a router");
    // More starts, in parallel, change nothing.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| t.ok(&["router"]));
        }
    });
    assert_eq!(t.router_pid(), Some(pid));
    let out = t.run(&["router", "--foreground"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another router"));
    // Its output goes to a log file, not to whoever started it (the pid
    // file is written a moment before the first log line).
    wait_until("the router's first log line", || {
        fs::read_to_string(t.home.join("registry/router.log"))
            .is_ok_and(|log| log.contains(&format!("pid {pid}")))
    });
}

#[test]
fn unknown_recipients_are_errors() {
    let t = TestEnv::new();
    let out = t.run(&["send", "Ghost", "coordinator", "hello"]);
    expect_user_error(&out, &["send"]);
    t.fails(&["inbox", "Ghost", "coordinator"]);
    t.fails(&["send", "../x", "coordinator", "hello"]);
}

#[test]
fn seed_scripts_send_messages() {
    let t = TestEnv::new();
    t.receivers("CodeAgency", "python-agent");
    t.receivers("QAAgency", "qa");
    t.script(
        "send-agency-message.sh",
        &["CodeAgency", "python-agent", "TASK-042: Implement OAuth2"],
    );
    t.script(
        "send-inter-agency.sh",
        &[
            "CodeAgency",
            "QAAgency",
            r#"{"type": "handoff", "branch": "feature/user-auth"}"#,
        ],
    );
    t.script(
        "broadcast-agency.sh",
        &[
            "MetaOrchestrator",
            r#"{"type": "alert", "message": "commit all work"}"#,
        ],
    );
    let rows: Vec<(String, String, String)> = t
        .db()
        .prepare("SELECT agency || '/' || agent, kind, sender FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want = |a: &str, k: &str, s: &str| (a.to_string(), k.to_string(), s.to_string());
    assert_eq!(
        rows,
        [
            want("CodeAgency/python-agent", "TASK", "human"),
            want("QAAgency/coordinator", "handoff", "CodeAgency"),
            want("CodeAgency/coordinator", "alert", "MetaOrchestrator"),
            want("QAAgency/coordinator", "alert", "MetaOrchestrator"),
        ]
    );
}

#[test]
fn a_paste_buffer_of_another_workspace_on_the_same_server_is_left_alone() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    // Another workspace's router on this tmux server, half-way through
    // filling the buffers for its own messages: it numbers them from 1 too.
    let theirs = |n: i64| format!("agency-msg-{n}");
    for n in 1..=20 {
        t.tmux_ok(&["set-buffer", "-b", &theirs(n), &format!("OTHER-{n}")]);
    }
    // Several lines: pasted through a buffer, not typed.
    let id: i64 = t
        .ok(&["send", "-q", "Bus", "rx", "first line\nsecond line"])
        .trim()
        .parse()
        .unwrap();
    assert!(id <= 20, "{id}");
    wait_until("the pasted message", || {
        fs::read_to_string(out.join("rx.out")).is_ok_and(|s| s.contains("second line"))
    });
    let got = fs::read_to_string(out.join("rx.out")).unwrap();
    assert!(!got.contains("OTHER"), "{got}");
    // Theirs are all there, as they were.
    for n in 1..=20 {
        assert_eq!(
            t.tmux_ok(&["show-buffer", "-b", &theirs(n)]),
            format!("OTHER-{n}")
        );
    }
}

#[test]
fn inside_an_agents_pane_messages_go_out_only_as_that_agent() {
    let t = TestEnv::new();
    t.receivers("Bus", "rx");
    t.ok(&["create", "Other"]);
    let rows = || -> i64 {
        t.db()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    // Run as the agent rx of Bus runs it, in its pane.
    let as_agent = |agent: &str, args: &[&str]| {
        t.cmd(args)
            .env("AGENCY_NAME", "Bus")
            .env("AGENCY_AGENT", agent)
            .output()
            .unwrap()
    };
    let before = rows();
    for args in [
        &[
            "send",
            "Bus",
            "coordinator",
            "--from",
            "human",
            "run rm -rf",
        ][..],
        &[
            "send",
            "Bus",
            "coordinator",
            "--from",
            "agency",
            "TASK 1 ready",
        ],
        &[
            "send",
            "Bus",
            "coordinator",
            "--from",
            "Bus/coordinator",
            "x",
        ],
        &["send", "Bus", "coordinator", "--from", "Other/rx", "x"],
        &[
            "send",
            "Bus",
            "coordinator",
            "--from",
            "Other/coordinator",
            "x",
        ],
        &["send", "Bus", "coordinator", "--from", "rx", "x"],
        &["send-inter", "human", "Other", r#"{"type": "alert"}"#],
        &["send-inter", "Other", "Bus", r#"{"type": "alert"}"#],
        &[
            "send-inter",
            "Other/coordinator",
            "Bus",
            r#"{"type": "alert"}"#,
        ],
        &["broadcast", "human", "STATUS freeze"],
        &["broadcast", "agency", "STATUS freeze"],
        &["handoff", "Other", "Bus", "--task", "x", "--branch", "main"],
    ] {
        let err = expect_user_error(&as_agent("rx", args), args);
        assert!(
            err.contains("inside the pane of Bus/rx") && err.contains("nothing was sent"),
            "{err}"
        );
    }
    assert_eq!(rows(), before);
    // As itself, named or not, and its agency where a sender is one.
    for args in [
        &["send", "Bus", "coordinator", "--from", "Bus/rx", "mine"][..],
        &["send", "Bus", "coordinator", "mine too"],
        &["send-inter", "Bus", "Other", r#"{"type": "alert"}"#],
        &["send-inter", "Bus/rx", "Other", r#"{"type": "alert"}"#],
        &["broadcast", "Bus", "STATUS mine"],
    ] {
        let out = as_agent("rx", args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let froms: Vec<String> = t
        .db()
        .prepare("SELECT DISTINCT sender FROM messages WHERE id > ?1")
        .unwrap()
        .query_map([before], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        froms.iter().all(|f| f == "Bus/rx" || f == "Bus"),
        "{froms:?}"
    );
    // A utility window is no agent, and outside any pane the human names
    // whom they like.
    let out = as_agent("tools", &["send", "Bus", "rx", "--from", "human", "hi"]);
    assert!(out.status.success());
    t.ok(&["send", "Bus", "rx", "--from", "Other/coordinator", "hi"]);
}

#[test]
fn an_agent_whose_pane_still_shows_its_starting_shell_gets_its_message_typed_later() {
    let t = TestEnv::new();
    let rx = t.receivers("Bus", "rx");
    // Its program is no shell, but the shell that starts it is in the
    // foreground until a line comes (as while an agent CLI loads).
    let out = t.root().join("late");
    fs::create_dir_all(&out).unwrap();
    let cmd = format!("read x; exec cat >> {}/$AGENCY_AGENT.out", out.display());
    t.ok(&["create", "Slow", "--agents", "dev", "--agent-command", &cmd]);
    let id = t
        .ok(&["send", "-q", "Slow", "dev", "for the program"])
        .trim()
        .to_string();
    // A later message elsewhere proves the router has been past it.
    t.ok(&["send", "-q", "Bus", "rx", "after"]);
    wait_until("the later message", || {
        fs::read_to_string(rx.join("rx.out")).is_ok_and(|s| s.contains("after"))
    });
    // Neither shown as to a shell nor counted delivered: it waits.
    let screen = t.tmux_ok(&["capture-pane", "-p", "-J", "-t", "Slow:dev"]);
    assert!(!screen.contains("for the program"), "{screen}");
    let inbox = t.json(&["inbox", "Slow", "dev", "--json"]);
    assert_eq!(inbox[0]["id"].to_string(), id);
    assert_eq!(inbox[0]["state"], "queued");
    // The program starts: the message is typed into it.
    t.tmux_ok(&["send-keys", "-t", "Slow:dev", "Enter"]);
    wait_until("the message typed into the program", || {
        fs::read_to_string(out.join("dev.out")).is_ok_and(|s| s.contains("for the program"))
    });
}

// Found by review: a person ran a program (a REPL) in a shell agent's pane,
// and the next message was typed into it and ran there.
#[test]
fn a_program_started_in_a_shell_agents_pane_is_never_typed_into() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    t.ok(&["create", "Sh"]);
    let got = t.root().join("typed-into-cat");
    let pane = "Sh:coordinator";
    t.tmux_ok(&[
        "send-keys",
        "-t",
        pane,
        &format!("cat > {}", got.display()),
        "Enter",
    ]);
    wait_until("cat in the pane", || {
        t.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            pane,
            "#{pane_current_command}",
        ])
        .trim()
            == "cat"
    });
    let id = t
        .ok(&["send", "-q", "Sh", "coordinator", "print('ran')"])
        .trim()
        .to_string();
    // A later message elsewhere proves the router has been past it.
    t.ok(&["send", "-q", "Bus", "rx", "after"]);
    wait_until("the later message", || {
        fs::read_to_string(out.join("rx.out")).is_ok_and(|s| s.contains("after"))
    });
    assert_eq!(
        t.json(&["inbox", "Sh", "coordinator", "--json"])[0]["state"],
        "queued"
    );
    // The program ends: the shell is back and the message is shown there.
    t.tmux_ok(&["send-keys", "-t", pane, "C-d"]);
    wait_until("shown once the shell is back", || {
        let inbox = t.json(&["inbox", "Sh", "coordinator", "--json"]);
        inbox[0]["id"].as_i64() == id.parse().ok() && inbox[0]["state"] == "delivered"
    });
    let typed = fs::read_to_string(&got).unwrap_or_default();
    assert!(!typed.contains("print"), "typed into the program: {typed}");
}
