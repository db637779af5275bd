//! The offline demo, and the scripted agent it runs on.

use std::fs;

use crate::common::{git, wait_until, TestEnv};

#[test]
fn the_demo_ends_with_a_tested_item_pending() {
    let t = TestEnv::bare();
    // The demo makes the workspace itself, at --home.
    let out = t
        .cmd(&["--home", t.home.to_str().unwrap(), "demo", "--no-tui"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Message ids depend on how the agents' messages interleave: match
    // the steps, not the numbers.
    let step = regex::Regex::new(
        r"(?s)task #1 ready: TASK message to CodeAgency/coordinator.*task #1 claimed by CodeAgency/dev.*handoff of agency/CodeAgency/dev.*delivered #\d+ results to CodeAgency/coordinator.*submitted agency/CodeAgency/dev.*task #1 in review",
    )
    .unwrap();
    assert!(
        step.is_match(&stderr),
        "steps missing or out of order in {stderr}"
    );
    let items = t.json(&["--home", t.home.to_str().unwrap(), "approvals", "--json"]);
    let item = &items[0];
    assert_eq!(item["status"], "pending");
    assert_eq!(item["tests_passed"], 3);
    assert_eq!(item["tests_failed"], 0);
    assert_eq!(item["branch"], "agency/CodeAgency/dev");
    // The work is real: a commit by dev on its branch, tested in a sandbox.
    let project = t.home.join("project");
    let log = git(
        &project,
        &["log", "--format=%an %s", "agency/CodeAgency/dev"],
    );
    assert!(log.starts_with("dev greet: say hello"), "{log}");
    // The demo's task is in review under that item ...
    let home = t.home.to_str().unwrap();
    let task = t.json(&["--home", home, "task", "show", "1", "--json"]);
    assert_eq!(task["state"], "review");
    assert_eq!(task["approval_id"], item["id"]);
    assert_eq!(item["title"], "Add a greeting script");
    // ... and a human can approve it, which makes the task done.
    t.ok(&["--home", home, "approve", &item["id"].to_string()]);
    assert!(project.join("greet.sh").is_file());
    let task = t.json(&["--home", home, "task", "show", "1", "--json"]);
    assert_eq!(task["state"], "done");
    let kinds: Vec<&str> = task["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "ready",
            "dispatched",
            "claimed",
            "review",
            "done"
        ]
    );
    // Refuses to build over an existing folder.
    let again = t.run(&["--home", t.home.to_str().unwrap(), "demo", "--no-tui"]);
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn the_scripted_agent_acts_on_typed_messages_and_acks_them() {
    let t = TestEnv::new();
    let rules = t.root().join("rules.toml");
    let marker = t.root().join("marker");
    fs::write(
        &rules,
        format!(
            "[[rule]]\ntype = \"TASK\"\nwhen = 'make (?P<what>\\w+)'\nrun = ['echo \"$MSG_WHAT from $MSG_FROM\" > {}']\n",
            marker.display()
        ),
    )
    .unwrap();
    let cmd = format!("\"$AGENCY_BIN\" agent scripted --rules {}", rules.display());
    t.ok(&["create", "S", "--agents", "bot", "--agent-command", &cmd]);
    let id = t
        .ok(&["send", "-q", "S", "bot", "TASK please make coffee"])
        .trim()
        .to_string();
    // The file exists as soon as the shell opens it: wait for the whole line.
    wait_until("the rule to run", || {
        fs::read_to_string(&marker).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(fs::read_to_string(&marker).unwrap(), "coffee from human\n");
    wait_until("the ack", || {
        t.json(&["inbox", "S", "bot", "--all", "--json"])[0]["state"] == "acked"
    });
    let screen = t.tmux_ok(&["capture-pane", "-p", "-t", "S:bot"]);
    assert!(
        screen.contains(&format!("#{id} TASK from human: running 1 command(s)")),
        "{screen}"
    );
}

#[test]
fn the_demo_on_a_given_socket_prints_its_clean_up_and_a_second_one_fails_cleanly() {
    let t = TestEnv::bare();
    // TestEnv sets AGENCY_TMUX_SOCKET: the demo runs on that server.
    let out = t
        .cmd(&["--home", t.home.to_str().unwrap(), "demo", "--no-tui"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    let me = env!("CARGO_BIN_EXE_agency");
    let home = t.home.to_str().unwrap();
    let clean = summary
        .lines()
        .find_map(|l| l.strip_prefix("clean up: "))
        .unwrap_or_else(|| panic!("no clean-up line in {summary}"));
    assert_eq!(
        clean,
        format!("{me} --home {home} kill CodeAgency && {me} --home {home} kill QAAgency && {me} --home {home} router --stop && rm -rf {home}")
    );
    assert!(
        summary.contains(&format!("decide: {me} --home {home} approvals")),
        "{summary}"
    );
    // A second demo on the same server: refused before anything is made.
    let second = t.root().join("second");
    let again = t
        .cmd(&["--home", second.to_str().unwrap(), "demo", "--no-tui"])
        .output()
        .unwrap();
    let err = crate::common::expect_user_error(&again, &["demo again"]);
    assert!(
        err.contains("already has a session CodeAgency and QAAgency"),
        "{err}"
    );
    assert!(
        !second.exists(),
        "a half-built demo was left at {}",
        second.display()
    );
    // The clean-up line, pasted, ends the demo; then a demo runs again.
    let sh = t
        .isolate(&mut std::process::Command::new("sh"))
        .args(["-c", clean])
        .env("AGENCY_TMUX_SOCKET", &t.socket)
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    assert!(!t.home.exists());
    let third = t
        .cmd(&["--home", second.to_str().unwrap(), "demo", "--no-tui"])
        .output()
        .unwrap();
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}

#[test]
fn the_demo_s_summary_tells_what_was_decided_in_its_screen() {
    let t = TestEnv::bare();
    let done = t.root().join("done");
    let cmd = format!(
        "AGENCY_TMUX_SOCKET={} SHELL=/bin/sh {} --home {} demo 2>/dev/null; echo $? > {}; sleep 30",
        t.socket,
        env!("CARGO_BIN_EXE_agency"),
        t.home.display(),
        done.display()
    );
    // The demo's screen needs a terminal: a tmux pane on another session.
    t.tmux_ok(&[
        "new-session",
        "-d",
        "-s",
        "term",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
    let screen = || t.tmux_ok(&["capture-pane", "-p", "-J", "-t", "term"]);
    crate::common::wait_for(
        "the approval screen",
        std::time::Duration::from_secs(60),
        || screen().contains("PENDING APPROVALS (1)"),
    );
    t.tmux_ok(&["send-keys", "-t", "term", "a"]);
    wait_until("the confirmation", || screen().contains("y approves"));
    t.tmux_ok(&["send-keys", "-t", "term", "y"]);
    wait_until("the approval", || screen().contains("approved #1"));
    t.tmux_ok(&["send-keys", "-t", "term", "q"]);
    wait_until("the demo to end", || done.is_file());
    let summary = screen();
    assert!(
        summary.contains(") was approved: merged into main as "),
        "{summary}"
    );
    assert!(!summary.contains("is pending"), "{summary}");
}
