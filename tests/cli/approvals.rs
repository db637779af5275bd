//! Handoffs, sandbox runs and the approval queue against real git
//! repositories made in temp folders.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{commit, git, wait_until, TestEnv};

/// A workspace whose project is a fresh repository on `main`, plus
/// CodeAgency and QAAgency whose agents record what they receive.
struct Setup {
    t: TestEnv,
    repo: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let (t, repo) = TestEnv::with_project();
    let out = t.receivers("CodeAgency", "python-agent");
    t.receivers("QAAgency", "qa-engineer");
    Setup { t, repo, out }
}

/// A branch off main with `files`, back on main afterwards.
fn branch(repo: &Path, name: &str, files: &[(&str, &str)]) -> String {
    git(repo, &["checkout", "-qb", name, "main"]);
    let c = commit(repo, files, &format!("work on {name}"));
    git(repo, &["checkout", "-q", "main"]);
    c
}

fn main_head(repo: &Path) -> String {
    git(repo, &["rev-parse", "main"]).trim().to_string()
}

fn submit(s: &Setup, branch: &str, task: &str, test: &str) -> serde_json::Value {
    s.t.json(&[
        "submit",
        "CodeAgency",
        "--task",
        task,
        "--branch",
        branch,
        "--test-command",
        test,
        "--json",
    ])
}

fn our_worktrees(s: &Setup) -> Vec<String> {
    git(&s.repo, &["worktree", "list", "--porcelain"])
        .lines()
        .filter(|l| l.starts_with("worktree ") && l.contains("sandbox"))
        .map(str::to_string)
        .collect()
}

#[test]
fn handoff_carries_the_commit_to_the_coordinator() {
    let s = setup();
    let c = branch(&s.repo, "feature/auth", &[("auth.txt", "x\n")]);
    let h = s.t.json(&[
        "handoff",
        "CodeAgency",
        "QAAgency",
        "--task",
        "User auth",
        "--branch",
        "feature/auth",
        "--artifacts",
        "tests/test_auth.py,docs/auth.md",
        "--notes",
        "unit tests pass",
        "--priority",
        "high",
        "--json",
    ]);
    assert_eq!(h["commit"], c);
    assert_eq!(
        h["artifacts"],
        serde_json::json!(["tests/test_auth.py", "docs/auth.md"])
    );
    let file = s.out.join("coordinator.out");
    wait_until("the handoff message", || {
        fs::read_to_string(&file)
            .is_ok_and(|t| t.contains(&c) && t.contains("\"type\":\"handoff\""))
    });
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("from CodeAgency")
            && text.contains("unit tests pass")
            && text.contains("\"priority\":\"high\""),
        "{text}"
    );
    // Results travel back as a `results` message.
    s.t.ok(&[
        "send-inter",
        "QAAgency",
        "CodeAgency",
        r#"{"type": "results", "task": "User auth", "status": "passed"}"#,
    ]);
    wait_until("the results message", || {
        fs::read_to_string(&file).is_ok_and(|t| t.contains("[msg #2 results from QAAgency]"))
    });
}

#[test]
fn handoff_of_a_missing_branch_is_refused() {
    let s = setup();
    let err = s.t.fails(&[
        "handoff",
        "CodeAgency",
        "QAAgency",
        "--task",
        "x",
        "--branch",
        "feature/nope",
    ]);
    assert!(err.contains("feature/nope"), "{err}");
    let n: i64 =
        s.t.db()
            .query_row(
                "SELECT (SELECT count(*) FROM handoffs) + (SELECT count(*) FROM messages)",
                [],
                |r| r.get(0),
            )
            .unwrap();
    assert_eq!(n, 0);
    // And without --branch outside an agent's pane.
    s.t.fails(&["handoff", "CodeAgency", "QAAgency", "--task", "x"]);
}

#[test]
fn handoff_and_submit_default_to_the_agents_branch() {
    let s = setup();
    // python-agent works in its own worktree, on its own branch.
    let wt = s.t.home.join("agencies/CodeAgency/worktrees/python-agent");
    let c = commit(&wt, &[("p.txt", "p\n")], "agent work");
    let in_pane = |args: &[&str]| {
        let out =
            s.t.cmd(args)
                .env("AGENCY_BRANCH", "agency/CodeAgency/python-agent")
                .output()
                .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let h = in_pane(&["handoff", "CodeAgency", "QAAgency", "--task", "t", "--json"]);
    assert_eq!(h["commit"], c);
    assert_eq!(h["branch"], "agency/CodeAgency/python-agent");
    let item = in_pane(&[
        "submit",
        "CodeAgency",
        "--task",
        "t",
        "--test-command",
        "echo '1 passed, 0 failed'",
        "--json",
    ]);
    assert_eq!(item["commit"], c);
    assert_eq!(item["files_changed"], 1);
}

#[test]
fn an_agent_chooses_no_test_command_unless_its_permissions_are_all() {
    let s = setup();
    branch(&s.repo, "feature/x", &[("x.txt", "x\n")]);
    let spec_path = s.t.home.join("agencies/CodeAgency/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["test_command"] = "echo '3 passed, 0 failed'".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let pwned = s.t.root().join("pwned");
    let hostile = format!("id > {}", pwned.display());
    let as_agent = |agent: &str, args: &[&str]| {
        s.t.cmd(args)
            .env("AGENCY_NAME", "CodeAgency")
            .env("AGENCY_AGENT", agent)
            .output()
            .unwrap()
    };
    let submit = [
        "submit",
        "CodeAgency",
        "--task",
        "t",
        "--branch",
        "feature/x",
    ];
    let deploy = ["sandbox", "deploy", "CodeAgency", "feature/x"];
    for agent in ["coordinator", "python-agent", "nobody", "../CodeAgency"] {
        for args in [&submit[..], &deploy[..]] {
            let args = [args, &["--test-command", &hostile]].concat();
            let err = crate::common::expect_user_error(&as_agent(agent, &args), &args);
            assert!(err.contains("--test-command is refused"), "{err}");
            assert!(err.contains("hint: leave --test-command out"), "{err}");
        }
    }
    assert!(!pwned.exists(), "the hostile test command ran");
    assert!(s
        .t
        .json(&["approvals", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    // Left out, the agency's own test command runs.
    let out = as_agent("coordinator", &[&submit[..], &["--json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let item: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(item["test_command"], spec["test_command"], "{item}");
    assert_eq!(item["tests_passed"], 3, "{item}");
    // An agent whose CLI approves everything anyway may choose it.
    spec["agents"][0]["permissions"] = "all".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let out = as_agent(
        "python-agent",
        &[&deploy[..], &["--test-command", &hostile]].concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pwned.exists());
}

#[test]
fn test_summaries_are_parsed() {
    let s = setup();
    branch(&s.repo, "feature/t", &[("t.txt", "t\n")]);
    let pass = s.t.json(&[
        "sandbox",
        "deploy",
        "CodeAgency",
        "feature/t",
        "--test-command",
        "echo '===== 5 passed in 0.12s ====='; echo 'TOTAL   10   1   90%'",
        "--json",
    ]);
    assert_eq!(
        (
            pass["passed"].clone(),
            pass["tests_passed"].clone(),
            pass["tests_failed"].clone()
        ),
        (
            serde_json::json!(true),
            serde_json::json!(5),
            serde_json::json!(0)
        )
    );
    assert_eq!(pass["coverage"], 90.0);
    let fail = failing_deploy(
        &s.t,
        &[
            "sandbox",
            "deploy",
            "CodeAgency",
            "feature/t",
            "--test-command",
            "echo 'test result: FAILED. 3 passed; 2 failed; 0 ignored'; exit 101",
            "--json",
        ],
        "failed",
    );
    assert_eq!(fail["passed"], false);
    assert_eq!(fail["tests_passed"], 3);
    assert_eq!(fail["tests_failed"], 2);
    assert_eq!(fail["exit_code"], 101);
    // No summary read: the log's last line says why.
    let out = s.t.run(&[
        "sandbox",
        "deploy",
        "CodeAgency",
        "feature/t",
        "--test-command",
        "echo 'collecting'; echo '/usr/bin/python3: No module named pytest' >&2; exit 1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("? passed, ? failed"), "{stdout}");
    assert!(
        stdout.contains("it ended with: /usr/bin/python3: No module named pytest"),
        "{stdout}"
    );
    // The full output is kept, and the tests ran inside the branch's checkout.
    let log = s.t.json(&[
        "sandbox",
        "deploy",
        "CodeAgency",
        "feature/t",
        "--test-command",
        "cat t.txt; echo '1 passed, 0 failed'",
        "--json",
    ]);
    assert_eq!(
        fs::read_to_string(log["log"].as_str().unwrap()).unwrap(),
        "t\n1 passed, 0 failed\n"
    );
    assert!(our_worktrees(&s).is_empty());
    // The seed's script.
    let out = s.t.script(
        "deploy-to-sandbox.sh",
        &[
            "CodeAgency",
            "feature/t",
            "--test-command",
            "echo '2 passed, 0 failed'",
        ],
    );
    assert!(out.contains("PASSED feature/t"), "{out}");
    // Failing tests fail the script too.
    let out =
        s.t.isolate(&mut std::process::Command::new(
            s.t.home.join("scripts/deploy-to-sandbox.sh"),
        ))
        .args([
            "CodeAgency",
            "feature/t",
            "--test-command",
            "echo '1 passed, 1 failed'",
        ])
        .env("AGENCY_BIN", env!("CARGO_BIN_EXE_agency"))
        .env("AGENCY_TMUX_SOCKET", &s.t.socket)
        .env_remove("AGENCY_HOME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED feature/t"));
}

/// Runs a sandbox deploy whose tests do not pass: exit 1, the report on
/// stdout (JSON), and `error: the tests ... {why}` with the log as hint.
fn failing_deploy(t: &TestEnv, args: &[&str], why: &str) -> serde_json::Value {
    let out = t.run(args);
    let err = crate::common::expect_user_error(&out, args);
    assert!(
        err.contains(why) && err.contains("hint: see the log"),
        "{err}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_test_command_that_hangs_is_stopped() {
    let s = setup();
    branch(&s.repo, "feature/slow", &[("s.txt", "s\n")]);
    let r = failing_deploy(
        &s.t,
        &[
            "sandbox",
            "deploy",
            "CodeAgency",
            "feature/slow",
            "--test-command",
            "sleep 30",
            "--timeout",
            "1",
            "--json",
        ],
        "timed out after 1s",
    );
    assert_eq!(r["timed_out"], true);
    assert_eq!(r["passed"], false);
    assert!(r["seconds"].as_f64().unwrap() < 10.0);
}

#[test]
fn diff_stats_equal_gits() {
    let s = setup();
    git(&s.repo, &["checkout", "-qb", "feature/d", "main"]);
    commit(
        &s.repo,
        &[
            ("src/lib.txt", "one\nTWO\nthree\nfour\n"),
            ("new/a.txt", "a\nb\n"),
        ],
        "one",
    );
    fs::remove_file(s.repo.join("README.md")).unwrap();
    commit(&s.repo, &[("new/b.txt", "c\n")], "two");
    git(&s.repo, &["checkout", "-q", "main"]);
    // main moves on too: three dots compare against the merge base.
    commit(&s.repo, &[("main-only.txt", "m\n")], "main moves");
    let item = submit(&s, "feature/d", "stats", "echo '1 passed, 0 failed'");
    let shortstat = git(&s.repo, &["diff", "--shortstat", "main...feature/d"]);
    let num = |word: &str| -> i64 {
        shortstat
            .split(',')
            .find(|p| p.contains(word))
            .map(|p| p.trim().split(' ').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(item["files_changed"], num("changed"), "{shortstat}");
    assert_eq!(item["insertions"], num("insertion"), "{shortstat}");
    assert_eq!(item["deletions"], num("deletion"), "{shortstat}");
    assert_eq!(item["status"], "pending");
    let mirror = fs::read_to_string(s.t.home.join("registry/approval_queue.json")).unwrap();
    assert!(mirror.contains("\"task\": \"stats\""), "{mirror}");
}

#[test]
fn approve_fast_forwards_and_updates_a_clean_checkout() {
    let s = setup();
    let c = branch(&s.repo, "feature/ff", &[("ff.txt", "ff\n")]);
    let item = submit(&s, "feature/ff", "ff task", "echo '1 passed, 0 failed'");
    let id = item["id"].to_string();
    let r = s.t.json(&["approve", &id, "--note", "ship it", "--json"]);
    assert_eq!(r["merge"], "fast-forward");
    assert_eq!(main_head(&s.repo), c);
    assert_eq!(r["checkout_updated"], true);
    assert_eq!(fs::read_to_string(s.repo.join("ff.txt")).unwrap(), "ff\n");
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
    let items = s.t.json(&["approvals", "--status", "approved", "--json"]);
    assert_eq!(items[0]["status"], "approved");
    assert!(items[0]["decided_at"].is_string());
    let decisions = fs::read_to_string(s.t.home.join("registry/decisions.md")).unwrap();
    assert!(
        decisions.contains("**approved**") && decisions.contains("ship it"),
        "{decisions}"
    );
    let activity =
        fs::read_to_string(s.t.home.join("agencies/CodeAgency/logs/activity.log")).unwrap();
    assert!(activity.contains("approval.approved"), "{activity}");
    wait_until("the coordinator hears of it", || {
        fs::read_to_string(s.out.join("coordinator.out"))
            .is_ok_and(|t| t.contains("\"type\":\"approved\""))
    });
    assert!(our_worktrees(&s).is_empty());
}

#[test]
fn approve_makes_a_merge_commit_when_main_moved() {
    let s = setup();
    let c = branch(&s.repo, "feature/m", &[("m.txt", "m\n")]);
    let before = commit(&s.repo, &[("other.txt", "o\n")], "main moves");
    let item = submit(&s, "feature/m", "merge task", "echo '1 passed, 0 failed'");
    let r = s.t.json(&["approve", &item["id"].to_string(), "--json"]);
    assert_eq!(r["merge"], "merge-commit");
    let head = main_head(&s.repo);
    assert_eq!(head, r["merge_commit"].as_str().unwrap());
    let parents = git(&s.repo, &["rev-list", "--parents", "-n", "1", "main"]);
    assert_eq!(parents.trim(), format!("{head} {before} {c}"));
    let msg = git(&s.repo, &["log", "-1", "--format=%B", "main"]);
    assert!(
        msg.contains(&format!("approval #{}", item["id"])) && msg.contains("merge task"),
        "{msg}"
    );
    assert!(s.repo.join("m.txt").is_file() && s.repo.join("other.txt").is_file());
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
}

/// The tests read no one's git config (HOME and the global config are the
/// test's own): with no identity anywhere, agency's merge commit is
/// signed by agency itself; the repository's own identity wins.
#[test]
fn a_merge_commit_is_by_the_repositorys_identity_or_agency() {
    let s = setup();
    let by = |name: &str| {
        branch(&s.repo, name, &[(&format!("{name}.txt"), "x\n")]);
        commit(
            &s.repo,
            &[(&format!("main-{name}.txt"), "o\n")],
            "main moves",
        );
        let item = submit(&s, name, "merge task", "echo '1 passed, 0 failed'");
        let r = s.t.json(&["approve", &item["id"].to_string(), "--json"]);
        assert_eq!(r["merge"], "merge-commit");
        git(
            &s.repo,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"],
        )
    };
    assert_eq!(
        by("feature/none").trim(),
        "agency <agency@localhost>|agency <agency@localhost>"
    );
    git(&s.repo, &["config", "user.name", "Repo Person"]);
    git(&s.repo, &["config", "user.email", "repo@example.com"]);
    assert_eq!(
        by("feature/own").trim(),
        "Repo Person <repo@example.com>|Repo Person <repo@example.com>"
    );
}

#[test]
fn a_conflict_changes_nothing() {
    let s = setup();
    branch(&s.repo, "feature/c", &[("src/lib.txt", "branch version\n")]);
    let item = submit(&s, "feature/c", "conflict", "echo '1 passed, 0 failed'");
    let main_before = commit(
        &s.repo,
        &[("src/lib.txt", "main version\n")],
        "main edits the same line",
    );
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(err.contains("src/lib.txt"), "{err}");
    assert_eq!(main_head(&s.repo), main_before);
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
}

#[test]
fn a_moved_branch_is_not_merged() {
    let s = setup();
    branch(&s.repo, "feature/mv", &[("a.txt", "1\n")]);
    let item = submit(&s, "feature/mv", "moving", "echo '1 passed, 0 failed'");
    git(&s.repo, &["checkout", "-q", "feature/mv"]);
    commit(&s.repo, &[("a.txt", "2 untested\n")], "after the tests");
    git(&s.repo, &["checkout", "-q", "main"]);
    let before = main_head(&s.repo);
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(err.contains("moved since it was tested"), "{err}");
    assert!(err.contains("agency submit"), "{err}");
    assert_eq!(main_head(&s.repo), before);
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
    // A re-submission of the same task links to the earlier item.
    let again = submit(&s, "feature/mv", "moving", "echo '1 passed, 0 failed'");
    assert_eq!(again["previous_id"], item["id"]);
}

#[test]
fn a_dirty_checkout_of_main_is_never_overwritten() {
    let s = setup();
    branch(
        &s.repo,
        "feature/dirty",
        &[("src/lib.txt", "changed by the branch\n")],
    );
    let item = submit(&s, "feature/dirty", "dirty", "echo '1 passed, 0 failed'");
    fs::write(s.repo.join("src/lib.txt"), "my local edit\n").unwrap();
    let before = main_head(&s.repo);
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(
        err.contains("uncommitted changes") && err.contains("src/lib.txt"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(s.repo.join("src/lib.txt")).unwrap(),
        "my local edit\n"
    );
    assert_eq!(main_head(&s.repo), before);
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
}

#[test]
fn failed_tests_need_force() {
    let s = setup();
    branch(&s.repo, "feature/f", &[("f.txt", "f\n")]);
    let item = submit(
        &s,
        "feature/f",
        "failing",
        "echo '1 passed, 1 failed'; exit 1",
    );
    assert_eq!(item["tests_failed"], 1);
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(err.contains("--force"), "{err}");
    s.t.ok(&["approve", &item["id"].to_string(), "--force"]);
}

#[test]
fn reject_sends_feedback_and_decisions_are_final() {
    let s = setup();
    branch(&s.repo, "feature/r", &[("r.txt", "r\n")]);
    let item = submit(&s, "feature/r", "rejectable", "echo '1 passed, 0 failed'");
    let id = item["id"].to_string();
    let err = s.t.fails(&["reject", &id, "--feedback", "  "]);
    assert!(err.contains("feedback"), "{err}");
    let before = main_head(&s.repo);
    s.t.ok(&[
        "reject",
        &id,
        "--feedback",
        "Please add tests for the error path",
    ]);
    assert_eq!(
        main_head(&s.repo),
        before,
        "reject never writes the base branch"
    );
    wait_until("the feedback", || {
        fs::read_to_string(s.out.join("coordinator.out")).is_ok_and(|t| {
            t.contains("Please add tests for the error path") && t.contains("\"type\":\"rejected\"")
        })
    });
    let err = s.t.fails(&["approve", &id]);
    assert!(err.contains("already rejected"), "{err}");
    let err = s.t.fails(&["reject", &id, "--feedback", "again"]);
    assert!(err.contains("already rejected"), "{err}");
    let err = s.t.fails(&["approve", "4242"]);
    assert!(err.contains("#4242"), "{err}");
    let item = &s.t.json(&["approvals", "--status", "all", "--json"])[0];
    assert_eq!(item["feedback"], "Please add tests for the error path");
    assert!(our_worktrees(&s).is_empty());
    assert_eq!(
        fs::read_dir(s.t.home.join("sandbox/testing"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_missing_project_is_a_clear_error() {
    let t = TestEnv::new();
    t.receivers("CodeAgency", "a");
    // The default project is the workspace itself, which is no repository.
    let err = t.fails(&[
        "submit",
        "CodeAgency",
        "--task",
        "x",
        "--branch",
        "main",
        "--test-command",
        "true",
    ]);
    assert!(err.contains("not a git repository"), "{err}");
    let n: i64 = t
        .db()
        .query_row("SELECT count(*) FROM approvals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn approve_moves_every_checkout_of_the_base_branch() {
    let s = setup();
    branch(&s.repo, "feature/wt", &[("wt.txt", "wt\n")]);
    let item = submit(&s, "feature/wt", "linked", "echo '1 passed, 0 failed'");
    let id = item["id"].to_string();
    // main is checked out in a linked worktree, the project on another branch.
    git(&s.repo, &["checkout", "-q", "-b", "elsewhere"]);
    let linked = s.t.root().join("main-checkout");
    git(
        &s.repo,
        &["worktree", "add", "-q", linked.to_str().unwrap(), "main"],
    );
    // Its local changes are never touched, as the project's own.
    fs::write(linked.join("README.md"), "my edit\n").unwrap();
    let before = main_head(&s.repo);
    let err = s.t.fails(&["approve", &id]);
    assert!(
        err.contains("uncommitted changes") && err.contains("main-checkout"),
        "{err}"
    );
    assert_eq!(main_head(&s.repo), before);
    git(&linked, &["checkout", "--", "README.md"]);
    let r = s.t.json(&["approve", &id, "--json"]);
    assert_eq!(r["checkouts"][0], linked.to_str().unwrap(), "{r}");
    assert_eq!(fs::read_to_string(linked.join("wt.txt")).unwrap(), "wt\n");
    assert_eq!(git(&linked, &["status", "--porcelain"]), "");
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
}

#[test]
fn approve_refuses_files_in_the_way_before_anything_moves() {
    let s = setup();
    branch(&s.repo, "feature/new", &[("new.txt", "from the branch\n")]);
    let item = submit(&s, "feature/new", "new file", "echo '1 passed, 0 failed'");
    fs::write(s.repo.join("new.txt"), "mine, untracked\n").unwrap();
    let before = main_head(&s.repo);
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(
        err.contains("new.txt") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(main_head(&s.repo), before);
    assert_eq!(
        fs::read_to_string(s.repo.join("new.txt")).unwrap(),
        "mine, untracked\n"
    );
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
}

#[test]
fn approve_never_writes_through_a_symlinked_folder_of_the_checkout() {
    let s = setup();
    // An untracked link to a folder outside the project (a data or cache
    // folder), and a branch that adds a file under its name.
    branch(&s.repo, "feature/pwn", &[("data/pwn.txt", "pwned\n")]);
    let outside = s.t.root().join("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, s.repo.join("data")).unwrap();
    let item = submit(&s, "feature/pwn", "data", "echo '1 passed, 0 failed'");
    let before = main_head(&s.repo);
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(
        err.contains("data/pwn.txt") && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(err.contains("symlinked folder"), "{err}");
    assert_eq!(main_head(&s.repo), before);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside"
    );
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
}

/// Runs `agency ARGS` able to write files of at most `limit` bytes (as on
/// a full disk: writes past it fail).
fn run_with_file_limit(t: &TestEnv, args: &[&str], limit: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = t.cmd(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn approve_on_a_full_registry_says_what_it_did_and_a_rerun_records_it() {
    let s = setup();
    let c = branch(&s.repo, "feature/full", &[("full.txt", "f\n")]);
    let item = submit(&s, "feature/full", "full disk", "echo '1 passed, 0 failed'");
    let id = item["id"].to_string();
    // Not even the approval's plan can be written: nothing happens.
    let out = run_with_file_limit(&s.t, &["approve", &id], 100);
    let err = crate::common::expect_user_error(&out, &["approve"]);
    assert!(
        err.contains("plan") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_ne!(main_head(&s.repo), c);
    // Small files only: the merge lands, the registry cannot record it.
    let out = run_with_file_limit(&s.t, &["approve", &id], 2048);
    let err = crate::common::expect_user_error(&out, &["approve"]);
    assert!(
        err.contains("was merged into main") && err.contains("could not record"),
        "{err}"
    );
    assert!(err.contains(&format!("agency approve {id}")), "{err}");
    assert_eq!(main_head(&s.repo), c);
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
    // Space again: the same command records it, without merging again.
    let out = s.t.ok(&["approve", &id]);
    assert!(out.contains("interrupted approve was finished"), "{out}");
    assert_eq!(main_head(&s.repo), c);
    let items = s.t.json(&["approvals", "--status", "approved", "--json"]);
    assert_eq!(items[0]["merge_commit"], c);
    wait_until("the coordinator hears of it once", || {
        fs::read_to_string(s.out.join("coordinator.out"))
            .is_ok_and(|t| t.matches("\"type\":\"approved\"").count() == 1)
    });
}

#[test]
fn reject_with_feedback_too_long_to_send_rejects_nothing() {
    let s = setup();
    branch(&s.repo, "feature/long", &[("l.txt", "l\n")]);
    let item = submit(&s, "feature/long", "long", "echo '1 passed, 0 failed'");
    let id = item["id"].to_string();
    let long = "x".repeat(70_000);
    let out = s.t.run(&["reject", &id, "--feedback", &long]);
    let err = crate::common::expect_user_error(&out, &["reject", &id, "--feedback", "(70,000 x)"]);
    assert!(err.contains("stays pending"), "{err}");
    assert_eq!(s.t.json(&["approvals", "--json"])[0]["status"], "pending");
    let queued: i64 =
        s.t.db()
            .query_row(
                "SELECT count(*) FROM messages WHERE kind = 'rejected'",
                [],
                |r| r.get(0),
            )
            .unwrap();
    assert_eq!(queued, 0);
}

/// A test command that records its shell's and a child's pids in `dir`,
/// then waits.
fn slow_tests(dir: &Path) -> String {
    format!(
        "echo $$ > {d}/sh.pid; sleep 300 & echo $! > {d}/sleep.pid; wait",
        d = dir.display()
    )
}

/// The pids a `slow_tests` run recorded, once both are there.
fn test_pids(dir: &Path) -> Vec<i32> {
    wait_until("the tests to start", || dir.join("sleep.pid").is_file());
    ["sh.pid", "sleep.pid"]
        .iter()
        .map(|f| {
            let mut text = String::new();
            wait_until("a whole pid file", || {
                text = fs::read_to_string(dir.join(f)).unwrap_or_default();
                text.ends_with('\n')
            });
            text.trim().parse().unwrap()
        })
        .collect()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Ends the test processes we started if the test fails half-way.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if alive(pid) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn sandbox_branches(repo: &Path) -> String {
    git(repo, &["branch", "--list", "agency-sandbox-*"])
}

#[test]
fn an_interrupted_sandbox_run_stops_its_tests_and_removes_its_worktree() {
    let s = setup();
    branch(&s.repo, "feature/int", &[("i.txt", "i\n")]);
    for (sig, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let marks = tempfile::tempdir().unwrap();
        let cmd = slow_tests(marks.path());
        let child =
            s.t.cmd(&[
                "sandbox",
                "deploy",
                "CodeAgency",
                "feature/int",
                "--test-command",
                &cmd,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pids = test_pids(marks.path());
        let _reap = Reap(pids.clone());
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(&format!("interrupted by {name}")), "{err}");
        for pid in pids {
            assert!(!alive(pid), "{name}: test process {pid} runs on");
        }
        assert!(our_worktrees(&s).is_empty(), "{name}: the worktree stays");
        assert_eq!(sandbox_branches(&s.repo), "", "{name}: the branch stays");
    }
}

#[test]
fn a_killed_sandbox_run_is_swept_by_the_next_one() {
    let s = setup();
    branch(&s.repo, "feature/kill", &[("k.txt", "k\n")]);
    // A kept sandbox is the user's: no sweep takes it.
    let kept = s.t.json(&[
        "sandbox",
        "deploy",
        "CodeAgency",
        "feature/kill",
        "--test-command",
        "echo '1 passed, 0 failed'",
        "--keep",
        "--json",
    ]);
    let marks = tempfile::tempdir().unwrap();
    let cmd = slow_tests(marks.path());
    let mut child =
        s.t.cmd(&[
            "sandbox",
            "deploy",
            "CodeAgency",
            "feature/kill",
            "--test-command",
            &cmd,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids = test_pids(marks.path());
    let _reap = Reap(pids.clone());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        our_worktrees(&s).len(),
        2,
        "the killed run left its worktree"
    );
    assert!(
        pids.iter().any(|&p| alive(p)),
        "the killed run's tests run on"
    );
    s.t.json(&[
        "sandbox",
        "deploy",
        "CodeAgency",
        "feature/kill",
        "--test-command",
        "echo '1 passed, 0 failed'",
        "--json",
    ]);
    for pid in pids {
        wait_until("the abandoned tests to end", || !alive(pid));
    }
    let left = our_worktrees(&s);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].ends_with(kept["worktree"].as_str().unwrap()),
        "{left:?}"
    );
    assert_eq!(sandbox_branches(&s.repo).lines().count(), 1);
}

#[test]
fn an_approve_killed_after_the_branch_moved_is_finished_by_the_next_decision() {
    let s = setup();
    let c = branch(&s.repo, "feature/k", &[("k.txt", "k\n")]);
    let item = submit(&s, "feature/k", "killed", "echo '1 passed, 0 failed'");
    branch(&s.repo, "feature/other", &[("o.txt", "o\n")]);
    let other = submit(&s, "feature/other", "other", "echo '1 passed, 0 failed'");
    let old = main_head(&s.repo);
    // What a kill just after main moved leaves: the plan, main moved, the
    // checkout not yet, and git's index lock of the checkout.
    let plan = serde_json::json!({
        "id": item["id"], "merge": "fast-forward", "by": "human", "note": null,
        "landing": {"base": "main", "old": old, "new": c, "checkouts": [s.repo]},
    });
    fs::write(s.t.home.join("registry/approving.json"), plan.to_string()).unwrap();
    git(&s.repo, &["update-ref", "refs/heads/main", &c, &old]);
    let lock = s.repo.join(".git/index.lock");
    let f = fs::File::create(&lock).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(10))
        .unwrap();
    drop(f);
    // Any next decision finishes it first, and says so.
    let out =
        s.t.run(&["reject", &other["id"].to_string(), "--feedback", "not now"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "finished the interrupted approve of #{}",
            item["id"]
        )) && err.contains("removed the stale lock"),
        "{err}"
    );
    assert!(!lock.exists());
    assert_eq!(main_head(&s.repo), c);
    assert_eq!(git(&s.repo, &["status", "--porcelain"]), "");
    assert_eq!(fs::read_to_string(s.repo.join("k.txt")).unwrap(), "k\n");
    assert!(!s.t.home.join("registry/approving.json").exists());
    let all = s.t.json(&["approvals", "--status", "all", "--json"]);
    let status = |id: &serde_json::Value| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == *id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&item["id"]), "approved");
    assert_eq!(status(&other["id"]), "rejected");
    // The same approve again: decided once.
    let err = s.t.fails(&["approve", &item["id"].to_string()]);
    assert!(err.contains("already approved"), "{err}");
}

#[test]
fn file_names_in_what_a_decision_prints_are_escaped() {
    let s = setup();
    // A merged file whose name retitles the terminal and clears it.
    let name = "zz-kept\x1b]0;PWNED\x07\x1b[2J\u{202e}txt";
    let c = branch(&s.repo, "feature/k", &[(name, "k\n")]);
    let item = submit(&s, "feature/k", "killed", "echo '1 passed, 0 failed'");
    branch(&s.repo, "feature/other", &[("o.txt", "o\n")]);
    let other = submit(&s, "feature/other", "other", "echo '1 passed, 0 failed'");
    let old = main_head(&s.repo);
    // An approve killed after main moved; meanwhile the human made that
    // file in the checkout: it is left as it is, and listed.
    let plan = serde_json::json!({
        "id": item["id"], "merge": "fast-forward", "by": "human", "note": null,
        "landing": {"base": "main", "old": old, "new": c, "checkouts": [s.repo]},
    });
    fs::write(s.t.home.join("registry/approving.json"), plan.to_string()).unwrap();
    git(&s.repo, &["update-ref", "refs/heads/main", &c, &old]);
    fs::write(s.repo.join(name), "mine\n").unwrap();
    let out =
        s.t.run(&["reject", &other["id"].to_string(), "--feedback", "not now"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("left as they were"), "{err}");
    assert!(
        err.contains("zz-kept\\x1b]0;PWNED\\x07\\x1b[2J\\u{202e}txt"),
        "{err}"
    );
    assert!(!err.contains('\x1b') && !err.contains('\u{202e}'), "{err}");
}
