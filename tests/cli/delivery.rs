//! Delivery when typing goes wrong half-way: a batch tmux stops part way
//! through, a message that stays in the input box, a paste the agent is
//! still taking in.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::{lines_of, wait_for, wait_until, TestEnv, PATIENCE};

fn agent_field(t: &TestEnv, agency: &str, agent: &str, field: &str) -> serde_json::Value {
    let s = t.json(&["status", agency, "--json"]);
    s["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent)
        .map(|a| a[field].clone())
        .unwrap()
}

fn message(t: &TestEnv, agency: &str, agent: &str, id: &str) -> serde_json::Value {
    t.json(&["inbox", agency, agent, "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_i64().is_some_and(|n| n.to_string() == id))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_batch_that_fails_half_way_types_no_message_twice() {
    let t = TestEnv::new();
    let out = t.receivers("Two", "a,b");
    wait_until("the router", || t.router_pid().is_some());
    let b_pane = agent_field(&t, "Two", "b", "pane");
    // Both messages go in one batch; b's pane goes away as soon as tmux
    // has typed a's (a hook that then removes itself), so the batch fails
    // after a was typed.
    t.signal_router("-STOP");
    let a = t
        .ok(&["send", "-q", "Two", "a", "NOTE first"])
        .trim()
        .to_string();
    let b = t
        .ok(&["send", "-q", "Two", "b", "NOTE second"])
        .trim()
        .to_string();
    t.tmux_ok(&[
        "set-hook",
        "-g",
        "after-send-keys[9]",
        &format!(
            "kill-pane -t {} ; set-hook -gu after-send-keys[9]",
            b_pane.as_str().unwrap()
        ),
    ]);
    t.signal_router("-CONT");
    wait_until("a's delivery and b's failed attempt", || {
        message(&t, "Two", "a", &a)["state"] == "delivered"
            && message(&t, "Two", "b", &b)["attempts"].as_i64() >= Some(1)
    });
    eprintln!(
        "DEBUG a={} b={} log={}",
        message(&t, "Two", "a", &a),
        message(&t, "Two", "b", &b),
        fs::read_to_string(t.home.join("registry/router.log")).unwrap_or_default()
    );
    let got = out.join("a.out");
    wait_until("a's message", || !lines_of(&got).is_empty());
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert_eq!(
            lines_of(&got),
            [format!("[msg #{a} NOTE from human] NOTE first")],
            "typed twice"
        );
    }
    // b waits for its agent, queued.
    assert_eq!(message(&t, "Two", "b", &b)["state"], "queued");
}

#[test]
fn an_agent_cli_still_starting_in_its_shell_gets_no_shell_notice_and_its_message_later() {
    let t = TestEnv::new();
    let rules = t.root().join("rules.toml");
    let marker = t.root().join("marker");
    let gate = t.root().join("gate");
    fs::write(
        &rules,
        format!(
            "[[rule]]\ntype = \"TASK\"\nwhen = 'make tea'\nrun = ['echo done > {}']\n",
            marker.display()
        ),
    )
    .unwrap();
    // `bot`'s pane runs its shell until the gate opens, as every agent
    // CLI's pane does for a moment (longer on a loaded machine); `sh1` is
    // a shell agent.
    let spec = serde_json::json!({
        "name": "S",
        "coordinator": {"name": "sh1", "role_file": "coordinator.md"},
        "agents": [{"name": "bot", "role_file": "agents/bot.md",
            "command": format!(
                "while [ ! -e {} ]; do sleep 0.05; done; exec \"$AGENCY_BIN\" agent scripted --rules {}",
                gate.display(), rules.display()
            )}],
    });
    let dir = t.home.join("agencies/S");
    fs::create_dir_all(dir.join("agents")).unwrap();
    fs::write(dir.join("agency.json"), spec.to_string()).unwrap();
    fs::write(dir.join("coordinator.md"), "# sh1\n").unwrap();
    fs::write(dir.join("agents/bot.md"), "# bot\n").unwrap();
    t.ok(&["create", "S"]);
    t.ok(&["send", "S", "bot", "TASK make tea"]);
    // Queued after bot's: once sh1's pane shows it, the router has looked
    // at bot's message with bot's pane still in its shell.
    t.ok(&["send", "S", "sh1", "NOTE shown-to-the-shell"]);
    let screen = |w: &str| t.tmux_ok(&["capture-pane", "-p", "-J", "-t", &format!("S:{w}")]);
    wait_until("sh1's notice", || {
        screen("coordinator").contains("shown-to-the-shell")
    });
    // Shown there, it would sit under the scripted agent's prompt, which
    // then never shows as the last line: nothing would be typed.
    assert!(
        !screen("bot").contains("make tea"),
        "shown in a starting agent's pane: {}",
        screen("bot")
    );
    fs::write(&gate, "").unwrap();
    wait_until("the rule to run", || {
        fs::read_to_string(&marker).is_ok_and(|s| s.ends_with('\n'))
    });
}

/// A fake agent CLI whose input box never lets go of what is typed into
/// it: each Enter draws the same line again.
fn stuck_agent(t: &TestEnv) -> String {
    let script = t.root().join("stuck.sh");
    fs::write(
        &script,
        "printf 'fake> '\nIFS= read -r line || exit 0\n\
         while :; do printf '\\r\\033[Kfake> %s' \"$line\"; IFS= read -r more || exit 0; done\n",
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        "[fake]\nprograms = [\"timeout\"]\nready = '^fake>\\s*$'\ninput = '^fake> (.*)$'\ninput_lines = 1\n",
    )
    .unwrap();
    format!("exec timeout --foreground 600 sh {}", script.display())
}

#[test]
fn a_message_that_stays_in_the_input_box_is_failed_and_says_so() {
    let t = TestEnv::new();
    let cmd = stuck_agent(&t);
    t.ok(&[
        "create",
        "Stuck",
        "--agents",
        "bot",
        "--agent-command",
        &cmd,
    ]);
    let id = t
        .ok(&["send", "-q", "Stuck", "bot", "NOTE never taken"])
        .trim()
        .to_string();
    wait_for("the message to fail", PATIENCE, || {
        message(&t, "Stuck", "bot", &id)["state"] == "failed"
    });
    let m = message(&t, "Stuck", "bot", &id);
    assert!(
        m["last_error"].as_str().unwrap().contains("input box"),
        "{m}"
    );
    assert_eq!(agent_field(&t, "Stuck", "bot", "failed"), 1);
    let inbox = t.ok(&["inbox", "Stuck", "bot", "--all"]);
    assert!(inbox.contains(&format!("#{id} failed")), "{inbox}");
    let log = t.json(&["log", "--agency", "Stuck", "--json"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message.failed"
                && e["detail"]["id"]
                    .as_i64()
                    .is_some_and(|n| n.to_string() == id)),
        "{log}"
    );
}

#[test]
fn nothing_more_is_typed_until_the_agent_has_taken_the_message_before() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    // A fake agent CLI that draws its own input (no terminal echo), as
    // full-screen CLIs do, and is slow to read its first input: it notes
    // `EARLY` if the next message was already waiting when it read one.
    let script = t.root().join("slow.sh");
    fs::write(
        &script,
        format!(
            r#"stty -echo
printf 'fake> '
sleep 2
while IFS= read -r line; do
  if read -t 0; then echo EARLY >> {got}; fi
  echo "$line" >> {got}
  printf '%s\nfake> ' "$line"
done
"#,
            got = got.display()
        ),
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        "[fake]\nprograms = [\"timeout\"]\nready = '^fake>\\s*$'\ninput = '^fake> (.*)$'\ninput_lines = 1\n",
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 bash {}", script.display());
    t.ok(&["create", "Slow", "--agents", "bot", "--agent-command", &cmd]);
    let ids: Vec<String> = ["NOTE one", "NOTE two"]
        .iter()
        .map(|b| t.ok(&["send", "-q", "Slow", "bot", b]).trim().to_string())
        .collect();
    wait_until("both messages", || lines_of(&got).len() >= 2);
    assert_eq!(
        lines_of(&got),
        [
            format!("[msg #{} NOTE from human] NOTE one", ids[0]),
            format!("[msg #{} NOTE from human] NOTE two", ids[1]),
        ],
        "the second was typed before the first was taken"
    );
}

#[test]
fn a_long_message_to_a_shell_agent_is_shown_once_and_cut() {
    let t = TestEnv::new();
    t.ok(&[
        "create",
        "Sh",
        "--agents",
        "dev",
        "--agent-command",
        "exec sh",
    ]);
    let body = "A".repeat(65_000);
    let long = t.ok(&["send", "-q", "Sh", "dev", &body]).trim().to_string();
    let history = || t.tmux_ok(&["capture-pane", "-p", "-J", "-S", "-", "-t", "Sh:dev"]);
    wait_until("the notice", || {
        history().contains(&format!("[msg #{long} "))
    });
    // A later message shown: the router has passed over the first again.
    let short = t
        .ok(&["send", "-q", "Sh", "dev", "a short one"])
        .trim()
        .to_string();
    wait_until("the second notice", || {
        history().contains(&format!("[msg #{short} "))
    });
    let seen = history();
    assert_eq!(seen.matches(&format!("[msg #{long} ")).count(), 1, "{seen}");
    assert!(seen.matches('A').count() < 4096, "not cut");
    assert!(seen.contains("more bytes)"), "{seen}");
}

#[test]
fn an_older_echoed_line_is_not_taken_for_a_message_still_in_the_box() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    // A line-reading CLI: its empty prompt reads `>` on screen (tmux drops
    // the trailing space), which this `input` does not match; the line it
    // took stays above, echoed.
    let script = t.root().join("toy.sh");
    fs::write(
        &script,
        format!(
            "while :; do printf '> '; IFS= read -r l || exit 0; echo \"$l\" >> {}; echo \"took ${{#l}}\"; done\n",
            got.display()
        ),
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        "[toy]\nprograms = [\"timeout\"]\nready = '^>\\s*$'\ninput = '^> (.*)$'\n",
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 sh {}", script.display());
    t.ok(&["create", "Toy", "--agents", "bot", "--agent-command", &cmd]);
    let first = t
        .ok(&["send", "-q", "Toy", "bot", "hello there"])
        .trim()
        .to_string();
    let second = t
        .ok(&["send", "-q", "Toy", "bot", "and again"])
        .trim()
        .to_string();
    // The second is typed only once the first is known to be taken (or
    // has failed); a loaded machine may take a while.
    wait_for("both messages", Duration::from_secs(30), || {
        lines_of(&got).iter().any(|l| l.contains("and again"))
    });
    let lines = lines_of(&got);
    assert_eq!(lines.len(), 2, "extra presses of Enter: {lines:?}");
    for id in [&first, &second] {
        assert_eq!(message(&t, "Toy", "bot", id)["state"], "delivered");
    }
}
