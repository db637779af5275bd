//! Restore after tmux goes away, and check-ins.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::{lines_of, wait_until, TestEnv};

#[test]
fn restore_after_the_server_died_delivers_what_was_queued() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let file = out.join("rx.out");
    t.ok(&["send", "-q", "Bus", "rx", "before"]);
    wait_until("the first message", || {
        fs::read_to_string(&file).is_ok_and(|s| s.contains("before"))
    });
    t.tmux_ok(&["kill-server"]);
    let id = t
        .ok(&["send", "-q", "Bus", "rx", "while tmux was down"])
        .trim()
        .to_string();
    assert_eq!(
        t.json(&["inbox", "Bus", "rx", "--json"])[1]["state"],
        "queued"
    );
    let report = t.json(&["restore", "--json"]);
    assert_eq!(report[0]["name"], "Bus");
    assert_eq!(t.windows("Bus"), ["coordinator", "rx", "tools", "sandbox"]);
    wait_until("the queued message", || {
        fs::read_to_string(&file)
            .is_ok_and(|s| s.contains(&format!("[msg #{id} NOTE from human] while tmux was down")))
    });
    // Nothing to do the second time.
    let again = t.json(&["restore", "--json"]);
    assert_eq!(again[0]["created"], serde_json::json!([]));
    // An agent that exited shows as such, and `status --restart` brings it back.
    t.tmux_ok(&["kill-window", "-t", "Bus:rx"]);
    let st = t.json(&["status", "Bus", "--json"]);
    assert_eq!(st["agents"][1]["state"], "exited");
    let st = t.json(&["status", "Bus", "--restart", "--json"]);
    assert_ne!(st["agents"][1]["state"], "exited");
    assert!(st["agents"][1]["pane"].is_string());
}

#[test]
fn a_check_in_arrives_after_its_time_and_not_before() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let file = out.join("rx.out");
    let start = Instant::now();
    let s = t.json(&[
        "schedule",
        "Bus",
        "rx",
        "--in",
        "4s",
        "STATUS check-in: how far?",
        "--json",
    ]);
    // A message sent after it, due now, overtakes it: the router has looked
    // at the queue while the check-in was not due yet.
    t.ok(&["send", "-q", "Bus", "rx", "right away"]);
    wait_until("the immediate message", || {
        fs::read_to_string(&file).is_ok_and(|s| s.contains("right away"))
    });
    // Seen before the check-in was due (not on a machine too loaded to
    // tell; the records below still show it was not early).
    if start.elapsed() < Duration::from_secs(4) {
        assert!(
            !fs::read_to_string(&file).unwrap().contains("check-in"),
            "delivered early"
        );
    }
    wait_until("the check-in", || {
        fs::read_to_string(&file).is_ok_and(|s| s.contains("check-in: how far?"))
    });
    assert!(start.elapsed() >= Duration::from_secs(4));
    let id = s["id"].as_i64().unwrap();
    wait_until("its delivery record", || {
        t.db()
            .query_row("SELECT state FROM messages WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .is_ok_and(|st| st == "delivered")
    });
    let (due, delivered): (String, String) = t
        .db()
        .query_row(
            "SELECT deliver_at, delivered_at FROM messages WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(delivered >= due, "delivered {delivered} before {due}");
}

#[test]
fn check_ins_are_listed_and_cancelled() {
    let t = TestEnv::new();
    t.receivers("Bus", "rx");
    let id = t.json(&[
        "schedule",
        "Bus",
        "rx",
        "--at",
        "2099-01-01T09:00:00Z",
        "TASK yearly review",
        "--json",
    ])["id"]
        .as_i64()
        .unwrap();
    let list = t.json(&["schedule", "--list", "--json"]);
    assert_eq!(list[0]["id"], id);
    assert!(list[0]["deliver_at"]
        .as_str()
        .unwrap()
        .starts_with("2099-01-01T09:00:00"));
    t.ok(&["schedule", "--cancel", &id.to_string()]);
    assert_eq!(
        t.json(&["schedule", "--list", "--json"]),
        serde_json::json!([])
    );
    // A time with its offset is that moment in UTC.
    for (at, utc) in [
        ("2099-01-01T11:30:00+02:30", "2099-01-01T09:00:00"),
        ("2099-01-01T04:00:00-05:00", "2099-01-01T09:00:00"),
        ("2099-01-01 09:00:00", "2099-01-01T09:00:00"),
    ] {
        let r = t.json(&["schedule", "Bus", "rx", "--at", at, "hi", "--json"]);
        assert!(
            r["deliver_at"].as_str().unwrap().starts_with(utc),
            "{at}: {r}"
        );
        t.ok(&["schedule", "--cancel", &r["id"].to_string()]);
    }
    for bad in [
        "2099-01-01T09:00:00+25:00",
        "2099-01-01T09:00:00+0a:00",
        "2099-01-01T09:00:00é+02:00",
    ] {
        t.fails(&["schedule", "Bus", "rx", "--at", bad, "hi"]);
    }
    let err = t.fails(&["schedule", "--cancel", &id.to_string()]);
    assert!(err.contains(&format!("#{id}")), "{err}");
    t.fails(&["schedule", "Bus", "rx", "hi"]);
    t.fails(&["schedule", "Bus", "rx", "--in", "soonish", "hi"]);
    t.fails(&["schedule", "Bus", "nobody", "--in", "1m", "hi"]);
    // Times past what a date can say are refused, not a crash.
    for far in ["300000000000y", "10000y", "18446744073709551615s"] {
        let err = t.fails(&["schedule", "Bus", "rx", "--in", far, "hi"]);
        assert!(err.contains("too far in the future"), "{far}: {err}");
    }
    t.fails(&[
        "schedule",
        "Bus",
        "rx",
        "--at",
        "10000-01-01T00:00:00Z",
        "hi",
    ]);
    assert_eq!(
        t.json(&["schedule", "--list", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn a_message_to_a_slow_starting_agent_waits_for_its_prompt_and_arrives_once() {
    let t = TestEnv::new();
    let rules = t.root().join("rules.toml");
    let got = t.root().join("got");
    fs::write(
        &rules,
        format!(
            "[[rule]]\nrun = ['echo \"$MSG_BODY\" >> {}']\n",
            got.display()
        ),
    )
    .unwrap();
    // Starts slowly, and throws away whatever is typed before its prompt;
    // `timeout` keeps a program that is no shell in the foreground meanwhile.
    let cmd = format!(
        "exec timeout --foreground 600 sh -c 'sleep 1; timeout --foreground 0.5 cat > /dev/null; exec \"$AGENCY_BIN\" agent scripted --rules {}'",
        rules.display()
    );
    t.ok(&["create", "Slow", "--agents", "bot", "--agent-command", &cmd]);
    let id = t
        .ok(&["send", "-q", "Slow", "bot", "TASK hello there"])
        .trim()
        .to_string();
    wait_until("the message", || got.is_file());
    wait_until("the ack", || {
        t.json(&["inbox", "Slow", "bot", "--all", "--json"])[0]["state"] == "acked"
    });
    assert_eq!(fs::read_to_string(&got).unwrap(), "TASK hello there\n");
    // Its profile reads the screen: the prompt is up again.
    wait_until("the agent to be idle", || {
        t.json(&["status", "Slow", "--json"])["agents"][1]["state"] == "idle"
    });
    let screen = t.tmux_ok(&["capture-pane", "-p", "-t", "Slow:bot"]);
    let handled = format!("#{id} TASK from human: running");
    assert_eq!(screen.matches(&handled).count(), 1, "{screen}");
}

#[test]
fn a_message_left_in_the_input_box_is_submitted_again() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    // An agent that loses the first Enter it is sent: it shows the line
    // back in its input box and takes it only on the next Enter.
    let cmd = fake_agent(
        &t,
        &format!(
            r#"first=1
while :; do
  printf 'fake> '
  IFS= read -r line || exit 0
  if [ -n "$first" ] && [ -n "$line" ]; then
    first=
    printf 'fake> %s' "$line"
    IFS= read -r more || exit 0
  fi
  [ -n "$line" ] && echo "$line" >> {got} && echo "took it"
done
"#,
            got = got.display()
        ),
    );
    t.ok(&[
        "create",
        "Lossy",
        "--agents",
        "bot",
        "--agent-command",
        &cmd,
    ]);
    let first = t
        .ok(&["send", "-q", "Lossy", "bot", "NOTE one"])
        .trim()
        .to_string();
    let second = t
        .ok(&["send", "-q", "Lossy", "bot", "NOTE two"])
        .trim()
        .to_string();
    wait_until("both messages", || crate::common::lines_of(&got).len() >= 2);
    assert_eq!(
        crate::common::lines_of(&got),
        vec![
            format!("[msg #{first} NOTE from human] NOTE one"),
            format!("[msg #{second} NOTE from human] NOTE two"),
        ]
    );
    // Recorded, so `agency metrics` counts it.
    let log = t.json(&["log", "--agency", "Lossy", "--json"]);
    let again: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message.resubmitted")
        .map(|e| e["detail"]["id"].to_string())
        .collect();
    assert_eq!(again, [first]);
    let m = t.json(&["metrics", "--json"]);
    assert_eq!(m["overall"]["messages"]["resubmitted"], 1);
}

#[test]
fn a_shell_agent_is_shown_its_role_file_and_gets_no_briefing() {
    let t = TestEnv::new();
    t.ok(&["create", "Plain", "--agents", "dev"]);
    let role = fs::read_to_string(t.home.join("agencies/Plain/agents/dev.md")).unwrap();
    let heading = role.lines().find(|l| !l.trim().is_empty()).unwrap().trim();
    wait_until("the role file on the dev pane", || {
        // With the scrollback: a role file can be longer than the pane.
        t.tmux_ok(&["capture-pane", "-p", "-S", "-", "-t", "Plain:dev"])
            .contains(heading)
    });
    // Still a shell at its prompt, and nothing was queued for it.
    wait_until("the shell", || {
        t.tmux_ok(&[
            "display-message",
            "-p",
            "-t",
            "Plain:dev",
            "#{pane_current_command}",
        ])
        .trim()
            == "sh"
    });
    for agent in ["dev", "coordinator"] {
        assert_eq!(
            t.json(&["inbox", "Plain", agent, "--all", "--json"]),
            serde_json::json!([])
        );
    }
}

#[test]
fn a_message_waits_while_a_human_has_typed_in_the_input_box() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    let cmd = fake_agent(&t, &reader(&got));
    t.ok(&["create", "Busy", "--agents", "bot", "--agent-command", &cmd]);
    let screen = || t.tmux_ok(&["capture-pane", "-p", "-t", "Busy:bot"]);
    wait_until("the prompt", || screen().contains("fake>"));
    // A human starts typing, then a message comes.
    t.tmux_ok(&["send-keys", "-t", "Busy:bot", "-l", "half a thought"]);
    wait_until("the typed text", || {
        screen().contains("fake> half a thought")
    });
    let id = t
        .ok(&["send", "-q", "Busy", "bot", "NOTE hello"])
        .trim()
        .to_string();
    let queued = || t.json(&["inbox", "Busy", "bot", "--all", "--json"])[0]["state"] == "queued";
    // It stays queued while the router looks again, tick after tick.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(queued(), "typed over the human's text");
    }
    assert!(!got.exists());
    // The human clears the line: the message goes in, whole and alone.
    t.tmux_ok(&["send-keys", "-t", "Busy:bot", "C-u"]);
    wait_until("the message", || got.is_file());
    wait_until("the delivery record", || !queued());
    assert_eq!(
        crate::common::lines_of(&got),
        vec![format!("[msg #{id} NOTE from human] NOTE hello")]
    );
}

#[test]
fn the_router_picks_up_edits_to_profiles_toml() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    let cmd = fake_agent(&t, &reader(&got));
    // No profile for it yet.
    fs::remove_file(t.home.join("profiles.toml")).unwrap();
    t.ok(&["create", "Edit", "--agents", "bot", "--agent-command", &cmd]);
    // No profile knows `timeout`: typed as soon as the pane is there.
    t.ok(&["send", "-q", "Edit", "bot", "NOTE one"]);
    wait_until("the first message", || lines_of(&got).len() == 1);
    let profiles = t.home.join("profiles.toml");
    let write = |ready: &str| {
        fs::write(
            &profiles,
            format!("[fake]\nprograms = [\"timeout\"]\nready = '{ready}'\n"),
        )
        .unwrap()
    };
    // Now a profile whose prompt never shows: nothing more is typed.
    write("^never$");
    t.ok(&["send", "-q", "Edit", "bot", "NOTE two"]);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(lines_of(&got).len(), 1, "the edited profile was not used");
    }
    // Fixed: the prompt is recognised and the message goes in.
    write("^fake>\\s*$");
    wait_until("the second message", || lines_of(&got).len() == 2);
}

/// Writes a `sh` agent script and the workspace profile `fake` that knows
/// its prompt (`fake> `) and input box; returns the agent command.
/// `timeout` keeps a program that is no shell in the pane's foreground,
/// and is what the profile goes by.
fn fake_agent(t: &TestEnv, script: &str) -> String {
    let path = t.root().join("fake.sh");
    fs::write(&path, script).unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        "[fake]\nprograms = [\"timeout\"]\nready = '^fake>\\s*$'\ninput = '^fake> (.*)$'\ninput_lines = 1\n",
    )
    .unwrap();
    format!("exec timeout --foreground 600 sh {}", path.display())
}

/// A fake agent that appends each line it reads to `got`.
fn reader(got: &std::path::Path) -> String {
    format!(
        "while :; do printf 'fake> '; IFS= read -r line || exit 0; \
         [ -n \"$line\" ] && echo \"$line\" >> {}; done\n",
        got.display()
    )
}

#[test]
fn an_agent_that_exits_keeps_its_last_screen_and_restarts_in_its_pane() {
    agent_exits_and_restarts("windows", "Crash:dev");
}

#[test]
fn in_the_panes_layout_an_agent_that_exits_keeps_its_pane_too() {
    agent_exits_and_restarts("panes", "Crash:agents.1");
}

/// `dev` fails at its first start (as an agent CLI without its API key
/// would) and reads messages after that; a user's own global hook runs on.
fn agent_exits_and_restarts(layout: &str, target: &str) {
    let t = TestEnv::new();
    let out = t.root().join("out");
    fs::create_dir_all(&out).unwrap();
    t.tmux_ok(&["new-session", "-d", "-s", "theirs"]);
    t.tmux_ok(&[
        "set-hook",
        "-g",
        "after-split-window",
        "set-option -w @seen yes",
    ]);
    t.tmux_ok(&[
        "set-hook",
        "-g",
        "after-new-window",
        "set-option -w @seen yes",
    ]);
    // Both agents (the coordinator too) run it. It waits a moment before
    // exiting: tmux 3.3a drops output it has not yet read when it handles
    // the exit first (seen on a busy machine with an immediate exit).
    let flag = out.join("failed-once-$AGENCY_AGENT");
    let cmd = format!(
        "if [ -e {f} ]; then exec cat >> {o}/$AGENCY_AGENT.out; fi; touch {f}; \
         echo 'error: no API key'; sleep 0.3; exit 3",
        f = flag.display(),
        o = out.display()
    );
    t.ok(&[
        "create",
        "Crash",
        "--agents",
        "dev",
        "--layout",
        layout,
        "--agent-command",
        &cmd,
    ]);
    let dev = |st: &serde_json::Value| st["agents"][1].clone();
    wait_until("dev to exit", || {
        dev(&t.json(&["status", "Crash", "--json"]))["state"] == "exited"
    });
    // The pane stays, with what the program said and why it is dead (tmux
    // reads the pane as dead a moment before it writes that line).
    // Read by the human, pasted anywhere: the binary and --home.
    let note = format!(
        "dev exited (status 3): `{} --home {} status Crash --restart` starts it again",
        env!("CARGO_BIN_EXE_agency"),
        t.home.display()
    );
    let mut screen = String::new();
    wait_until("the note on the dead pane", || {
        t.ok(&["status", "Crash"]);
        screen = t.tmux_ok(&["capture-pane", "-p", "-J", "-S", "-", "-t", target]);
        screen.contains(&note)
    });
    assert!(screen.contains("error: no API key"), "{screen}");
    let shown = t.ok(&["status", "Crash"]);
    assert!(
        // `agency` is not on the tests' PATH: the commands name the binary.
        shown.contains(&format!(
            "its last screen: {me} attach Crash dev · start it again: {me} status Crash --restart",
            me = env!("CARGO_BIN_EXE_agency")
        )),
        "{shown}"
    );
    let pane = dev(&t.json(&["status", "Crash", "--json"]))["pane"].clone();
    assert!(pane.is_string());
    // A message sent meanwhile waits, and arrives once dev runs again, in
    // the same pane.
    t.ok(&["send", "-q", "Crash", "dev", "after the crash"]);
    let st = t.json(&["status", "Crash", "--restart", "--json"]);
    assert_eq!(dev(&st)["pane"], pane);
    assert_ne!(dev(&st)["state"], "exited");
    let log = fs::read_to_string(t.home.join("agencies/Crash/logs/activity.log")).unwrap();
    let last = log.lines().rfind(|l| l.contains(" reconcile ")).unwrap();
    assert!(
        last.contains(r#""created":[]"#) && last.contains(r#""restarted":["coordinator","dev"]"#),
        "{last}"
    );
    wait_until("the message", || {
        fs::read_to_string(out.join("dev.out")).is_ok_and(|s| s.contains("after the crash"))
    });
    // Our hook came and went; the user's ran for our windows as for theirs.
    let hooks = t.tmux_ok(&["show-hooks", "-g"]);
    assert!(!hooks.contains("remain-on-exit"), "{hooks}");
    let seen = t.tmux_ok(&["show-options", "-w", "-v", "-t", target, "@seen"]);
    assert_eq!(seen.trim(), "yes");
    // Tools and sandbox windows close as usual when their shell ends.
    let keep = t.tmux_ok(&[
        "show-options",
        "-p",
        "-v",
        "-t",
        "Crash:tools",
        "remain-on-exit",
    ]);
    assert_ne!(keep.trim(), "on");
}
