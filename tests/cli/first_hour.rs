//! A newcomer's first hour: what each command says, and that every command
//! it prints can be pasted (issue 13). `agency` is not on the tests' PATH,
//! so a printed command names the binary by its full path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::{commit, git, wait_until, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_agency");

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A workspace on a git project with a branch `feature/x` one commit ahead.
fn project_with_branch() -> (TestEnv, std::path::PathBuf) {
    let (t, repo) = TestEnv::with_project();
    git(&repo, &["checkout", "-qb", "feature/x"]);
    commit(&repo, &[("x.txt", "x\n")], "x");
    git(&repo, &["checkout", "-q", "main"]);
    (t, repo)
}

#[test]
fn send_and_friends_say_what_was_queued_or_print_ids_with_q_or_json() {
    let t = TestEnv::new();
    t.receivers("CodeAgency", "python-agent");
    t.receivers("QAAgency", "qa");
    let line = t.ok(&["send", "CodeAgency", "python-agent", "TASK-042: OAuth2"]);
    assert_eq!(
        line,
        "queued message #1 (TASK) for CodeAgency/python-agent\n"
    );
    assert_eq!(
        t.ok(&["send", "-q", "CodeAgency", "coordinator", "hi"]),
        "2\n"
    );
    assert_eq!(
        t.json(&["send", "--json", "CodeAgency", "coordinator", "hi"]),
        serde_json::json!({"id": 3})
    );
    let inter = t.ok(&[
        "send-inter",
        "CodeAgency",
        "QAAgency",
        r#"{"type": "handoff", "branch": "feature/x"}"#,
    ]);
    assert_eq!(
        inter,
        "queued message #4 (handoff) from CodeAgency for QAAgency's coordinator\n"
    );
    assert_eq!(
        t.ok(&[
            "send-inter",
            "-q",
            "QAAgency",
            "CodeAgency",
            r#"{"type": "results"}"#
        ]),
        "5\n"
    );
    let all = t.ok(&["broadcast", "Meta", "STATUS freeze"]);
    assert_eq!(
        all,
        "queued 2 message(s) (STATUS) for CodeAgency/coordinator, QAAgency/coordinator: #6 #7\n"
    );
    assert_eq!(t.ok(&["broadcast", "-q", "Meta", "NOTE x"]), "8\n9\n");
    let check_in = t.ok(&["schedule", "QAAgency", "qa", "--in", "1h", "NOTE later"]);
    assert!(
        check_in.starts_with("check-in #10 for QAAgency/qa at ")
            && check_in.contains(&format!("`{BIN} schedule --cancel 10`")),
        "{check_in}"
    );
    assert_eq!(
        t.ok(&["schedule", "-q", "QAAgency", "qa", "--in", "1h", "x"]),
        "11\n"
    );
    // -q and --json do not go together.
    let both = t.run(&["send", "-q", "--json", "CodeAgency", "coordinator", "x"]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn submit_says_how_the_tests_went_and_what_comes_next() {
    let (t, repo) = project_with_branch();
    t.receivers("CodeAgency", "a");
    git(&repo, &["checkout", "-qb", "feature/bad", "main"]);
    commit(&repo, &[("bad.txt", "b\n")], "bad");
    git(&repo, &["checkout", "-q", "main"]);
    let ok = t.ok(&[
        "submit",
        "CodeAgency",
        "--task",
        "T-1",
        "--branch",
        "feature/x",
        "--test-command",
        "echo '3 passed, 0 failed'",
    ]);
    assert!(
        ok.starts_with("submitted approval #1 \"T-1\" (feature/x at ")
            && ok.contains("tests PASSED (3 passed, 0 failed, ")
            && ok.contains("1 file(s) +1 -0"),
        "{ok}"
    );
    assert!(
        ok.contains(&format!("next: the human decides in `{BIN} approvals`")),
        "{ok}"
    );
    let bad = t.ok(&[
        "submit",
        "CodeAgency",
        "--task",
        "T-2",
        "--branch",
        "feature/bad",
        "--test-command",
        "echo '1 passed, 1 failed'; echo 'FAIL: login'; exit 1",
    ]);
    assert!(bad.contains("\nit ended with: FAIL: login\n"), "{bad}");
    assert!(
        bad.contains("tests FAILED (1 passed, 1 failed, exit 1, "),
        "{bad}"
    );
    assert!(
        bad.contains("test log: ") && bad.contains(&format!("{BIN} approve 2 --force")),
        "{bad}"
    );
    // The id alone, for scripts.
    git(&repo, &["checkout", "-qb", "feature/q", "main"]);
    commit(&repo, &[("q.txt", "q\n")], "q");
    git(&repo, &["checkout", "-q", "main"]);
    let q = t.ok(&[
        "submit",
        "CodeAgency",
        "--task",
        "T-3",
        "--branch",
        "feature/q",
        "--test-command",
        "true",
        "-q",
    ]);
    assert_eq!(q, "3\n");
}

#[test]
fn a_commit_already_pending_or_already_merged_is_refused_before_its_tests() {
    let (t, repo) = project_with_branch();
    t.receivers("CodeAgency", "a");
    let ran = t.root().join("tests-ran");
    let test = format!("touch {}; echo '1 passed, 0 failed'", ran.display());
    let submit = |branch: &str| {
        t.run(&[
            "submit",
            "CodeAgency",
            "--task",
            "T",
            "--branch",
            branch,
            "--test-command",
            &test,
            "-q",
        ])
    };
    assert!(submit("feature/x").status.success());
    fs::remove_file(&ran).unwrap();
    let again = crate::common::expect_user_error(&submit("feature/x"), &["submit twice"]);
    assert!(
        again.contains("already waiting for a decision as approval #1"),
        "{again}"
    );
    assert!(again.contains(&format!("{BIN} approve 1")), "{again}");
    assert!(!ran.exists(), "the tests ran again");
    // A new commit on the branch is a new submission.
    git(&repo, &["checkout", "-q", "feature/x"]);
    commit(&repo, &[("y.txt", "y\n")], "y");
    git(&repo, &["checkout", "-q", "main"]);
    assert!(submit("feature/x").status.success());
    // A branch whose commit main already has: nothing to merge.
    git(&repo, &["branch", "old", "main"]);
    let merged = crate::common::expect_user_error(&submit("old"), &["submit merged"]);
    assert!(merged.contains("old has nothing to merge"), "{merged}");
    let n: i64 = t
        .db()
        .query_row("SELECT count(*) FROM approvals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn the_coordinator_answers_to_its_own_name_and_typos_get_a_suggestion() {
    let t = TestEnv::new();
    let out = t.root().join("out");
    fs::create_dir_all(&out).unwrap();
    let cmd = format!("cat >> {}/$AGENCY_AGENT.out", out.display());
    t.ok(&[
        "create",
        "CodeAgency",
        "--agents",
        "python-agent",
        "--coordinator",
        "code-coordinator",
        "--agent-command",
        &cmd,
    ]);
    let line = t.ok(&["send", "CodeAgency", "code-coordinator", "STATUS hello"]);
    assert_eq!(
        line,
        "queued message #1 (STATUS) for CodeAgency/coordinator\n"
    );
    wait_until("the message in the coordinator's pane", || {
        fs::read_to_string(out.join("coordinator.out")).is_ok_and(|s| s.contains("STATUS hello"))
    });
    let inbox = t.json(&["inbox", "CodeAgency", "code-coordinator", "--json"]);
    assert_eq!(inbox[0]["id"], 1);
    let s = t.json(&[
        "schedule",
        "CodeAgency",
        "code-coordinator",
        "--in",
        "1h",
        "NOTE later",
        "--json",
    ]);
    assert_eq!(
        t.json(&["schedule", "--list", "--json"])[0]["to"],
        "CodeAgency/coordinator"
    );
    t.ok(&["schedule", "--cancel", &s["id"].to_string()]);
    // The outbox drop-box takes the name too.
    let tmp = t.root().join("o.tmp");
    fs::write(
        &tmp,
        r#"{"to": "CodeAgency/code-coordinator", "body": "NOTE by file"}"#,
    )
    .unwrap();
    fs::rename(&tmp, t.home.join("registry/outbox/o.json")).unwrap();
    wait_until("the outbox message", || {
        fs::read_to_string(out.join("coordinator.out")).is_ok_and(|s| s.contains("NOTE by file"))
    });
    // Typos: the closest name, for agents and agencies.
    let err = t.fails(&["send", "CodeAgency", "code-cordinator", "hi"]);
    assert!(
        err.contains("hint: did you mean \"code-coordinator\"?"),
        "{err}"
    );
    let err = t.fails(&["inbox", "CodeAgency", "pyhton-agent"]);
    assert!(err.contains("did you mean \"python-agent\"?"), "{err}");
    let err = t.fails(&["status", "CodeAgncy"]);
    assert!(err.contains("did you mean \"CodeAgency\"?"), "{err}");
    let err = t.fails(&["send", "codeagency", "coordinator", "hi"]);
    assert!(err.contains("did you mean \"CodeAgency\"?"), "{err}");
}

/// `agency init` run in `dir` (a project with these files).
fn init_project(files: &[(&str, &str)]) -> (TestEnv, String, String) {
    let t = TestEnv::bare();
    let repo = t.root().join("project");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let mut files = files.to_vec();
    files.push(("README.md", "r\n"));
    commit(&repo, &files, "init");
    let out = t.run(&[
        "init",
        t.home.to_str().unwrap(),
        "--project",
        repo.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let config = fs::read_to_string(t.home.join("agency.toml")).unwrap();
    (t, String::from_utf8(out.stdout).unwrap(), config)
}

#[test]
fn init_finds_the_project_s_test_command_and_says_so() {
    for (files, command, found) in [
        (
            vec![("Cargo.toml", "[package]\n")],
            "cargo test",
            "Cargo.toml",
        ),
        (
            vec![("package.json", r#"{"scripts": {"test": "jest"}}"#)],
            "npm test",
            "package.json",
        ),
        (
            vec![("pyproject.toml", "[project]\n")],
            "python3 -m pytest",
            "pyproject.toml",
        ),
        (vec![("go.mod", "module x\n")], "go test ./...", "go.mod"),
        (
            vec![("Makefile", "all:\n\ttrue\ntest:\n\ttrue\n")],
            "make test",
            "Makefile",
        ),
    ] {
        let (_t, out, config) = init_project(&files);
        assert!(
            out.contains(&format!("tests: `{command}` (found {found};")),
            "{files:?}: {out}"
        );
        assert!(
            config.contains(&format!("test_command = \"{command}\"")),
            "{config}"
        );
    }
    // npm's placeholder, a Makefile without a test target: nothing found.
    let (_t, out, config) = init_project(&[
        (
            "package.json",
            r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#,
        ),
        ("Makefile", "all:\n\ttrue\n"),
    ]);
    assert!(
        out.contains("tests: none found; set [sandbox] test_command"),
        "{out}"
    );
    assert!(config.contains("test_command = \"\""), "{config}");
    // The submission then says what to do.
    let (t, _, _) = init_project(&[]);
    t.ok(&["create", "A", "--agent-command", "cat"]);
    let err = t.fails(&["sandbox", "deploy", "A", "main"]);
    assert!(err.contains("no test command"), "{err}");
}

#[test]
fn init_warns_when_the_test_runner_it_found_does_not_run() {
    // A Go project, on a PATH whose `go` fails, then one whose `go` works.
    for (works, warned) in [(false, true), (true, false)] {
        let t = TestEnv::bare();
        let repo = t.root().join("project");
        fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit(&repo, &[("go.mod", "module x\n")], "init");
        let bin = t.root().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let go = bin.join("go");
        fs::write(&go, format!("#!/bin/sh\n[ \"$1\" = version ] && {works}\n")).unwrap();
        fs::set_permissions(&go, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let out = t
            .cmd(&[
                "init",
                t.home.to_str().unwrap(),
                "--project",
                repo.to_str().unwrap(),
            ])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert_eq!(
            err.contains(
                "warning: the tests would run `go test ./...`, but `go version` fails here"
            ),
            warned,
            "go works: {works}: {err}"
        );
    }
}

#[test]
fn init_warns_when_the_project_is_not_a_git_repository() {
    let t = TestEnv::bare();
    let out = t.run(&["init", t.home.to_str().unwrap()]);
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.starts_with("warning: the project ") && err.contains("is not a git repository"),
        "{err}"
    );
    let (_t, _repo) = TestEnv::with_project();
    let quiet = _t.run(&["init", _t.home.to_str().unwrap()]);
    assert_eq!(stderr_of(&quiet), "");
}

#[test]
fn printed_commands_paste_from_anywhere() {
    let t = TestEnv::new();
    let elsewhere = t.root();
    let run_in = |dir: &Path, args: &[&str]| {
        let out = t.cmd(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let home = t.home.to_str().unwrap();
    let out = run_in(
        elsewhere,
        &["--home", home, "create", "A", "--agent-command", "cat"],
    );
    let watch = out.lines().find(|l| l.starts_with("watch it: ")).unwrap();
    let printed = watch.trim_start_matches("watch it: ");
    assert_eq!(printed, format!("{BIN} --home {home} attach A"));
    // Inside the workspace, no --home is needed.
    let out = run_in(&t.home, &["create", "A"]);
    assert!(out.contains(&format!("watch it: {BIN} attach A")), "{out}");
    // Pasted as printed (the attach part aside, which needs a terminal):
    // the same binary and workspace answer.
    let status = printed.replace(" attach A", " status A");
    let words = shlex::split(&status).unwrap();
    let pasted = t
        .isolate(&mut Command::new(&words[0]))
        .args(&words[1..])
        .env("AGENCY_TMUX_SOCKET", &t.socket)
        .current_dir(elsewhere)
        .output()
        .unwrap();
    assert!(pasted.status.success(), "{}", stderr_of(&pasted));
    assert!(String::from_utf8_lossy(&pasted.stdout).starts_with("A — running"));
    // So do the commands in hints.
    let err = t
        .cmd(&["--home", home, "status", "Nope"])
        .current_dir(elsewhere)
        .output()
        .unwrap();
    let err = crate::common::expect_user_error(&err, &["status Nope"]);
    assert!(
        err.contains(&format!("`{BIN} --home {home} create NAME`")),
        "{err}"
    );
    // In backticks or not: every command a hint names.
    let id = t.json(&["task", "add", "x", "--agency", "A", "--json"])["id"].to_string();
    t.ok(&["task", "cancel", &id]);
    let err = t
        .cmd(&[
            "--home",
            home,
            "task",
            "claim",
            &id,
            "--agent",
            "A/coordinator",
        ])
        .current_dir(elsewhere)
        .output()
        .unwrap();
    let err = crate::common::expect_user_error(&err, &["task claim"]);
    assert!(
        err.contains(&format!(
            "reopen it first: {BIN} --home {home} task reopen {id}"
        )),
        "{err}"
    );
    // On PATH, the name is enough.
    let bin_dir = Path::new(BIN).parent().unwrap();
    let out = t
        .cmd(&["create", "A"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("watch it: agency attach A"));
}

#[test]
fn adding_a_project_after_agencies_exist_moves_their_agents() {
    let t = TestEnv::new();
    let out = t.root().join("out");
    fs::create_dir_all(&out).unwrap();
    // `sh` agents (the workspace's default) and one reading text.
    t.ok(&["create", "A", "--agents", "dev,reader"]);
    let spec_path = t.home.join("agencies/A/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["agents"][1]["command"] = format!("cat >> {}/reader.out", out.display()).into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    t.ok(&["kill", "A"]);
    t.ok(&["create", "A"]);
    let start = |agent: &str| {
        let st = t.json(&["status", "A", "--json"]);
        let pane = st["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == agent)
            .unwrap()["pane"]
            .as_str()
            .unwrap()
            .to_string();
        t.tmux_ok(&["display", "-p", "-t", &pane, "#{pane_start_path}"])
            .trim()
            .to_string()
    };
    assert_eq!(start("dev"), t.home.to_str().unwrap());
    // Now the workspace gets a project: a git repository.
    let repo = t.root().join("project");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(&repo, &[("README.md", "r\n")], "init");
    t.ok(&[
        "init",
        t.home.to_str().unwrap(),
        "--project",
        repo.to_str().unwrap(),
    ]);
    let report = t.ok(&["create", "A"]);
    assert!(!report.contains("nothing was missing"), "{report}");
    // The shell moved into its worktree; the busy reader was left, and told.
    assert!(
        report.contains("moved coordinator, dev into its new folder"),
        "{report}"
    );
    let dev_tree = t.home.join("agencies/A/worktrees/dev");
    assert_eq!(start("dev"), dev_tree.to_str().unwrap());
    assert_eq!(
        start("coordinator"),
        repo.canonicalize().unwrap().to_str().unwrap()
    );
    assert!(
        report.contains("reader still runs `cat` in ") && report.contains(" create A --move"),
        "{report}"
    );
    let reader_tree = t.home.join("agencies/A/worktrees/reader");
    assert_eq!(start("reader"), t.home.to_str().unwrap());
    // --move restarts it where it works now.
    let moved = t.json(&["create", "A", "--move", "--json"]);
    assert_eq!(moved["moved"], serde_json::json!(["reader"]));
    assert_eq!(start("reader"), reader_tree.to_str().unwrap());
    let again = t.ok(&["create", "A"]);
    assert!(again.contains("nothing was missing"), "{again}");
}

#[test]
fn router_stop_works_and_the_router_ends_after_the_last_agency() {
    let t = TestEnv::new();
    t.receivers("A", "rx");
    t.receivers("B", "rx");
    let pid = t.router_pid().expect("a router");
    assert_eq!(
        t.ok(&["router", "--stop"]),
        format!("router stopped (pid {pid})\n")
    );
    assert_eq!(t.router_pid(), None);
    assert_eq!(t.ok(&["router", "--stop"]), "no router running\n");
    assert_eq!(t.ok(&["router", "--status"]), "no router running\n");
    // Anything that queues starts it again.
    t.ok(&["send", "-q", "A", "rx", "hello"]);
    wait_until("a router", || t.router_pid().is_some());
    let pid = t.router_pid().unwrap();
    t.ok(&["kill", "A"]);
    assert_eq!(t.router_pid(), Some(pid), "B still runs");
    t.ok(&["kill", "B"]);
    wait_until("the router to end after the last agency", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
    let log = fs::read_to_string(t.home.join("registry/router.log")).unwrap();
    assert!(log.contains("no agency is running; stopping"), "{log}");
    // A message to a stopped agency waits, and `create` brings a router back.
    t.ok(&["send", "-q", "A", "rx", "later"]);
    t.ok(&["create", "A"]);
    wait_until("the waiting message", || {
        fs::read_to_string(t.root().join("out/rx.out")).is_ok_and(|s| s.contains("later"))
    });
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn files_the_tool_writes_follow_the_umask() {
    for (umask, want) in [("022", 0o644), ("077", 0o600)] {
        let t = TestEnv::bare();
        let script = format!(
            "umask {umask} && {BIN} init {home} && {BIN} --home {home} create A --agent-command cat",
            home = t.home.display()
        );
        let out = t
            .isolate(&mut Command::new("sh"))
            .args(["-c", &script])
            .env("AGENCY_TMUX_SOCKET", &t.socket)
            .env("SHELL", "/bin/sh")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        for f in [
            "agency.toml",
            ".gitignore",
            "agencies/A/agency.json",
            "registry/active_agencies.json",
        ] {
            assert_eq!(mode(&t.home.join(f)), want, "{f} under umask {umask}");
        }
    }
    // A file the user chmod-ed keeps its mode when rewritten.
    let t = TestEnv::new();
    let config = t.home.join("agency.toml");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
    t.ok(&["init", t.home.to_str().unwrap(), "--project", "."]);
    assert_eq!(mode(&config), 0o640);
}

#[test]
fn completions_and_manual_pages_come_from_the_real_commands() {
    let t = TestEnv::bare();
    for shell in ["bash", "zsh", "fish"] {
        let out = t.ok(&["completions", shell]);
        let home = if shell == "fish" { "-l home" } else { "--home" };
        for word in ["send-inter", "approvals", home, "completions"] {
            assert!(out.contains(word), "{shell} completions lack {word}");
        }
    }
    t.usage_error(&["completions", "tcsh"], "bash, zsh, fish");
    let man = t.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH agency 1"),
        "{}",
        &man[..200]
    );
    assert!(
        man.contains("send\\-inter"),
        "the overview lists the commands"
    );
    let create = t.ok(&["man", "create"]);
    assert!(
        create.contains(".TH agency-create") && create.contains("\\-\\-layout"),
        "{create}"
    );
    let dir = t.root().join("man1");
    t.ok(&["man", "--out-dir", dir.to_str().unwrap()]);
    assert!(dir.join("agency.1").is_file() && dir.join("agency-submit.1").is_file());
    t.fails(&["man", "nope"]);
}

#[test]
fn help_teaches_and_closed_sets_are_usage_errors() {
    let t = TestEnv::new();
    let help = t.ok(&["send", "--help"]);
    assert!(
        help.contains("Examples:") && help.contains("The agent: `coordinator`"),
        "{help}"
    );
    // --version at the top only.
    assert!(t.ok(&["--version"]).starts_with("agency "));
    assert_eq!(t.run(&["send", "--version"]).status.code(), Some(2));
    t.usage_error(
        &["approvals", "--status", "done"],
        "pending, approved, rejected, all",
    );
    t.usage_error(
        &["handoff", "A", "B", "--task", "t", "--priority", "asap"],
        "low, normal, high, urgent",
    );
    // Message types in any case; the seed's `medium` priority is `normal`.
    t.receivers("A", "rx");
    t.ok(&["send", "-q", "A", "rx", "x", "--type", "blocked"]);
    assert_eq!(
        t.json(&["inbox", "A", "rx", "--json"])[0]["type"],
        "BLOCKED"
    );
}

#[test]
fn the_readme_and_docs_link_only_what_the_repository_has() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        !readme.contains("../shared"),
        "the README links outside the repository"
    );
    assert!(readme.contains("(docs/CLI.md)"));
    let cli = fs::read_to_string(root.join("docs/CLI.md")).unwrap();
    // Kept current: every command is in the contract.
    let t = TestEnv::bare();
    let help = t.ok(&["--help"]);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 20, "{help}");
    for c in commands {
        assert!(
            cli.contains(&format!("`agency {c}")),
            "docs/CLI.md lacks `agency {c}`"
        );
    }
}

#[test]
fn long_test_runs_show_progress_on_a_terminal_and_stream_with_a_flag() {
    let (t, repo) = TestEnv::with_project();
    t.receivers("A", "a");
    git(&repo, &["checkout", "-qb", "feature/slow"]);
    let script = "echo compiling; echo step-one; sleep 2; echo '1 passed, 0 failed'\n";
    commit(&repo, &[("slow.sh", script)], "slow");
    git(&repo, &["checkout", "-q", "main"]);
    // Not a terminal: stdout has the result, stderr stays empty...
    let deploy = [
        "sandbox",
        "deploy",
        "A",
        "feature/slow",
        "--test-command",
        "sh slow.sh",
    ];
    let out = t.run(&deploy);
    assert!(out.status.success());
    assert_eq!(stderr_of(&out), "");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("PASSED feature/slow"));
    // ... unless the output is asked for.
    let mut streamed = deploy.to_vec();
    streamed.push("--stream");
    let out = t.run(&streamed);
    assert_eq!(stderr_of(&out), "compiling\nstep-one\n1 passed, 0 failed\n");
    // On a terminal: the elapsed time, the command and its last line.
    let done = t.root().join("done");
    let cmd = format!(
        "AGENCY_TMUX_SOCKET={} {BIN} --home {} {}; echo $? > {}; sleep 30",
        t.socket,
        t.home.display(),
        deploy.join(" ").replace("sh slow.sh", "'sh slow.sh'"),
        done.display()
    );
    t.tmux_ok(&[
        "new-session",
        "-d",
        "-s",
        "term",
        "-x",
        "100",
        "-y",
        "10",
        &cmd,
    ]);
    let screen = || t.tmux_ok(&["capture-pane", "-p", "-t", "term"]);
    wait_until("the progress line", || {
        let s = screen();
        s.contains("testing feature/slow at ") && s.contains("`sh slow.sh` · step-one")
    });
    let line = screen()
        .lines()
        .find(|l| l.contains("step-one"))
        .unwrap()
        .to_string();
    let elapsed = regex::Regex::new(r"\s\d+s\s").unwrap();
    assert!(elapsed.is_match(&line), "no elapsed time in {line:?}");
    wait_until("the result", || done.is_file());
    let s = screen();
    assert!(s.contains("PASSED feature/slow"), "{s}");
    assert!(!s.contains("step-one"), "the progress line stays: {s}");
}

/// The first ```toml block after `## Agent profiles` in the README.
fn readme_profile() -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Agent profiles").expect("the section")..];
    let block = &section[section.find("```toml\n").expect("a toml block") + 8..];
    block[..block.find("```").unwrap()].to_string()
}

#[test]
fn the_readme_s_example_profile_delivers_as_written() {
    let t = TestEnv::new();
    let profile = readme_profile();
    assert!(profile.contains("programs = [\"mycli\"]"), "{profile}");
    fs::write(t.home.join("profiles.toml"), &profile).unwrap();
    // `mycli`: a line-reading CLI with a `> ` prompt (bash under that name,
    // which is what tmux shows as the pane's program).
    let bin = t.root().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/bash", bin.join("mycli")).unwrap();
    let got = t.root().join("got");
    let script = t.root().join("mycli.sh");
    fs::write(
        &script,
        format!(
            "while :; do printf '> '; IFS= read -r line || exit 0; printf '%s\\n' \"$line\" >> {}; echo \"ok: ${{#line}} chars\"; done\n",
            got.display()
        ),
    )
    .unwrap();
    let cmd = format!("exec {} {}", bin.join("mycli").display(), script.display());
    let out = t.run(&["create", "My", "--agents", "bot", "--agent-command", &cmd]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("profiles.toml"),
        "the README's profile is warned about: {}",
        stderr_of(&out)
    );
    let ids: Vec<String> = ["NOTE hello there", "NOTE and again"]
        .iter()
        .map(|b| t.ok(&["send", "-q", "My", "bot", b]).trim().to_string())
        .collect();
    let line = |i: usize, b: &str| format!("[msg #{} NOTE from human] {b}", ids[i]);
    // The second goes in only once the first was seen taken.
    wait_until("both messages", || {
        fs::read_to_string(&got).is_ok_and(|g| g.contains(&line(1, "NOTE and again")))
    });
    let got = fs::read_to_string(&got).unwrap();
    assert_eq!(
        got.matches(&line(0, "NOTE hello there")).count(),
        1,
        "{got}"
    );
    // Recorded as delivered (the agent may read a message before the
    // router records it), and nothing failed.
    let state = |id: &str| {
        t.json(&["inbox", "My", "bot", "--all", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"].as_i64().is_some_and(|n| n.to_string() == id))
            .unwrap()["state"]
            .clone()
    };
    wait_until("the delivery records", || {
        ids.iter().all(|id| state(id) == "delivered")
    });
    // Taken at once: no Enter pressed again into the agent.
    let log = t.json(&["log", "--agency", "My", "--json"]);
    assert!(
        !log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "message.resubmitted"),
        "{log}"
    );
}
