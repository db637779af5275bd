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
        .ok(&["send", "S", "bot", "TASK please make coffee"])
        .trim()
        .to_string();
    wait_until("the rule to run", || marker.is_file());
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
