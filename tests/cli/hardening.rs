//! Hostile input (messages, names, folders, files) against the real binary,
//! tmux, git and SQLite: nothing it says runs a command, reaches a pane or
//! a terminal as a control sequence, or loses or repeats a message.

use std::fs;

use crate::common::{commit, git, lines_of, wait_until, TestEnv};

/// Control characters other than newline (what must never reach a pane or
/// a terminal).
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect()
}

fn queued_rows(t: &TestEnv) -> i64 {
    t.db()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

// Regression: the type and the sender went into the header raw, so a type
// holding `\r` or `ESC[201~` ended a paste early and submitted a line of its
// own (`!cmd` is shell mode in Claude Code), and `inbox` printed ESC/BEL/NUL.
#[test]
fn hostile_types_and_senders_never_reach_a_pane_or_a_terminal() {
    let t = TestEnv::new();
    let out = t.receivers("Bus", "rx");
    let file = out.join("rx.out");
    for ty in [
        "alert\r!id > x\r",
        "x\u{1b}[201~",
        "a\nb",
        "a b",
        "a]",
        "#{pane_id}",
        "",
    ] {
        let json = serde_json::json!({ "type": ty, "status": "x" }).to_string();
        let err = t.fails(&["send-inter", "Ext", "Bus", &json]);
        assert!(err.contains("type"), "{ty:?}: {err}");
        t.fails(&["broadcast", "Ext", &json]);
    }
    let err = t.fails(&["send", "Bus", "rx", "hi", "--type", "NOTE\r!id"]);
    assert!(err.contains("type"), "{err}");
    // The sender from an agent's environment.
    for (name, agent) in [("Bus\u{1b}[201~", "rx"), ("Bus", "rx]\r!id"), ("a b", "c")] {
        let out = t
            .cmd(&["send", "Bus", "rx", "hi"])
            .env("AGENCY_NAME", name)
            .env("AGENCY_AGENT", agent)
            .output()
            .unwrap();
        crate::common::expect_user_error(&out, &["send with a hostile environment"]);
    }
    // Outbox files: refused, kept in rejected/ with a reason.
    let outbox = t.home.join("registry/outbox");
    fs::create_dir_all(&outbox).unwrap();
    let drops = [
        serde_json::json!({"to": "Bus", "type": "alert\r!id > x\r", "status": "x"}),
        serde_json::json!({"to": "Bus/rx", "type": "x\u{1b}[201~", "body": "hi"}),
        serde_json::json!({"to": "Bus", "from": "a\u{7}", "type": "results"}),
    ];
    for (i, d) in drops.iter().enumerate() {
        fs::write(outbox.join(format!("bad{i}.json")), d.to_string()).unwrap();
    }
    t.ok(&["router"]);
    wait_until("the outbox files to be rejected", || {
        (0..drops.len()).all(|i| {
            outbox
                .join(format!("rejected/bad{i}.json.reason"))
                .is_file()
        })
    });
    assert_eq!(queued_rows(&t), 0, "nothing hostile was queued");

    // A row written before these checks (or by hand) is cleaned on its way.
    t.db()
        .execute(
            "INSERT INTO messages (sender, agency, agent, kind, body, created_at)
             VALUES (?1, 'Bus', 'rx', ?2, ?3, 'now')",
            [
                "a\nb\u{1b}[201~",
                "x\r!id\u{1b}[201~",
                "b\u{1b}]0;t\u{7}\u{0}c",
            ],
        )
        .unwrap();
    t.ok(&["send", "Bus", "rx", "after"]);
    wait_until("both messages typed", || lines_of(&file).len() >= 2);
    let typed = fs::read_to_string(&file).unwrap();
    assert!(controls(&typed).is_empty(), "{typed:?}");
    let lines = lines_of(&file);
    assert_eq!(
        lines.len(),
        2,
        "each header and body on one line: {typed:?}"
    );
    assert!(lines.iter().all(|l| l.starts_with("[msg #")), "{lines:?}");
    // And nothing raw reaches the human's terminal.
    let inbox = t.ok(&["inbox", "Bus", "rx", "--all"]);
    assert!(controls(&inbox).is_empty(), "{inbox:?}");
    assert!(inbox.contains("\\x1b"), "shown escaped: {inbox}");
}

// Regression: tmux expands formats in `-c` start folders, so a workspace
// under `x#(touch marker)` ran the command, and `C#Sharp` sent every pane
// to a fallback folder (a specialist worked in the main checkout).
#[test]
fn folders_with_hashes_are_taken_literally() {
    let t = TestEnv::bare_under("x#(touch $AGENCY_TEST_MARK)/C#Sharp/#{pane_id}");
    let mark = t.root().join("..").join("marker");
    let project = t.root().join("Tools#Shared##x#S");
    fs::create_dir_all(&project).unwrap();
    git(&project, &["init", "-q", "-b", "main"]);
    commit(&project, &[("README.md", "hi\n")], "init");
    let run = |args: &[&str]| {
        let out = t.cmd(args).env("AGENCY_TEST_MARK", &mark).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "init",
        t.home.to_str().unwrap(),
        "--project",
        project.to_str().unwrap(),
    ]);
    t.set_config("command = \"bash\"", "command = \"sh\"");
    // (Not under the hostile folders: a command holding `(` is not
    // exec'd, and a shell is never typed into.)
    let plain = tempfile::tempdir().unwrap();
    let rx = plain.path().join("rx.out");
    let cmd = format!("cat >> '{}'", rx.display());
    run(&["create", "H", "--agents", "dev", "--agent-command", &cmd]);
    let paths = t.tmux_ok(&[
        "list-panes",
        "-s",
        "-t",
        "H",
        "-F",
        "#{window_name}\t#{pane_current_path}",
    ]);
    let path_of = |w: &str| {
        paths
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{w}\t")))
            .unwrap_or_else(|| panic!("no window {w}: {paths}"))
            .to_string()
    };
    assert_eq!(path_of("coordinator"), project.to_str().unwrap());
    let worktree = t.home.join("agencies/H/worktrees/dev");
    assert_eq!(path_of("dev"), worktree.to_str().unwrap());
    assert_eq!(
        path_of("tools"),
        t.home.join("agencies/H").to_str().unwrap()
    );
    // The workspace is still recognised as the sessions' maker: delivery
    // and reconcile work.
    run(&["send", "H", "dev", "hello # #{pane_id} #(touch x)"]);
    wait_until("delivery", || lines_of(&rx).len() == 1);
    assert!(lines_of(&rx)[0].ends_with("hello # #{pane_id} #(touch x)"));
    let again: serde_json::Value = serde_json::from_str(&run(&["create", "H", "--json"])).unwrap();
    assert_eq!(again["action"], "reconcile");
    assert_eq!(again["created"], serde_json::json!([]));
    assert!(!mark.exists(), "a folder name ran a command");
}
