//! Every agent in its own git worktree, and nothing ever lost.

use std::fs;
use std::path::Path;

use crate::common::{commit, git, wait_until, TestEnv};

fn pane_path(t: &TestEnv, target: &str) -> String {
    t.tmux_ok(&[
        "display-message",
        "-p",
        "-t",
        target,
        "#{pane_current_path}",
    ])
    .trim()
    .to_string()
}

fn canonical(p: &Path) -> String {
    fs::canonicalize(p).unwrap().display().to_string()
}

#[test]
fn each_specialist_gets_a_worktree_on_its_own_branch() {
    let (t, repo) = TestEnv::with_project();
    let out = t.root().join("env");
    fs::create_dir_all(&out).unwrap();
    let cmd = format!("env > {}/$AGENCY_AGENT.env; exec cat", out.display());
    t.ok(&[
        "create",
        "CodeAgency",
        "--agents",
        "py,js",
        "--agent-command",
        &cmd,
    ]);
    for agent in ["py", "js"] {
        let wt = t
            .home
            .join(format!("agencies/CodeAgency/worktrees/{agent}"));
        assert!(wt.join("README.md").is_file(), "{agent}: no checkout");
        let branch = format!("agency/CodeAgency/{agent}");
        assert_eq!(
            git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
            branch
        );
        assert_eq!(
            pane_path(&t, &format!("CodeAgency:{agent}")),
            canonical(&wt)
        );
        let env_file = out.join(format!("{agent}.env"));
        wait_until("the agent's environment", || env_file.is_file());
        wait_until("the whole environment", || {
            fs::read_to_string(&env_file).is_ok_and(|e| e.contains("AGENCY_BRANCH"))
        });
        let env = fs::read_to_string(&env_file).unwrap();
        assert!(
            env.lines().any(|l| l == format!("AGENCY_BRANCH={branch}")),
            "{env}"
        );
        assert!(
            env.lines()
                .any(|l| l == format!("AGENCY_WORKTREE={}", wt.display())),
            "{env}"
        );
    }
    // The coordinator works in the project itself.
    assert_eq!(pane_path(&t, "CodeAgency:coordinator"), canonical(&repo));
    let status = t.json(&["status", "CodeAgency", "--json"]);
    let py = &status["agents"][1];
    assert_eq!(py["branch"], "agency/CodeAgency/py");
    assert_eq!(
        (
            py["ahead"].as_i64(),
            py["behind"].as_i64(),
            py["uncommitted"].as_i64()
        ),
        (Some(0), Some(0), Some(0))
    );
    // Work shows up in status.
    let wt = t.home.join("agencies/CodeAgency/worktrees/py");
    commit(&wt, &[("new.txt", "n\n")], "agent commit");
    fs::write(wt.join("draft.txt"), "wip").unwrap();
    commit(&repo, &[("main.txt", "m\n")], "main moves");
    let py = &t.json(&["status", "CodeAgency", "--json"])["agents"][1];
    assert_eq!(
        (
            py["ahead"].as_i64(),
            py["behind"].as_i64(),
            py["uncommitted"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // In words: commits, not lines.
    let text = t.ok(&["status", "CodeAgency"]);
    assert!(
        text.contains(
            "branch agency/CodeAgency/py: 1 commit(s) ahead of main, 1 behind; 1 uncommitted file(s)"
        ),
        "{text}"
    );
}

#[test]
fn worktrees_inside_the_project_are_excluded_from_git() {
    // The workspace lives inside the project, as this repository does.
    let (t, repo) = TestEnv::with_project();
    let inner = repo.join("ws");
    t.ok(&[
        "init",
        inner.to_str().unwrap(),
        "--project",
        repo.to_str().unwrap(),
    ]);
    let out = t
        .cmd(&[
            "--home",
            inner.to_str().unwrap(),
            "create",
            "A",
            "--agents",
            "x",
            "--agent-command",
            "cat",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(inner.join("agencies/A/worktrees/x/README.md").is_file());
    let exclude = fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
    assert!(
        exclude.lines().any(|l| l == "/ws/agencies/*/worktrees/"),
        "{exclude}"
    );
    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains("worktrees/"), "{status}");
    let _ = t
        .cmd(&["--home", inner.to_str().unwrap(), "kill", "A"])
        .output();
}

#[test]
fn setup_command_runs_and_its_failure_is_reported() {
    let (t, _repo) = TestEnv::with_project();
    t.set_config(
        "[agents]\n",
        "[agents]\nsetup_command = \"echo prepared > .setup-done\"\n",
    );
    t.ok(&["create", "Ok", "--agents", "a", "--agent-command", "cat"]);
    let wt = t.home.join("agencies/Ok/worktrees/a");
    assert_eq!(
        fs::read_to_string(wt.join(".setup-done")).unwrap(),
        "prepared\n"
    );
    assert!(t.home.join("agencies/Ok/logs/setup-a.log").is_file());

    t.set_config("echo prepared > .setup-done", "echo broken; exit 3");
    t.ok(&["create", "Bad", "--agents", "b,c", "--agent-command", "cat"]);
    let status = t.json(&["status", "Bad", "--json"]);
    for agent in [&status["agents"][1], &status["agents"][2]] {
        let err = agent["setup_error"].as_str().unwrap_or_default();
        assert!(err.contains("exited with 3"), "{agent}");
        assert_eq!(agent["state"], "exited");
        assert!(agent["pane"].is_null(), "started although setup failed");
    }
    assert_eq!(t.windows("Bad"), ["coordinator", "tools", "sandbox"]);
    let log = fs::read_to_string(t.home.join("agencies/Bad/logs/setup-b.log")).unwrap();
    assert_eq!(log, "broken\n");
    // Fixed, the next create runs it again and starts the agents.
    t.set_config("echo broken; exit 3", "true");
    t.ok(&["create", "Bad"]);
    assert_eq!(
        t.windows("Bad"),
        ["coordinator", "b", "c", "tools", "sandbox"]
    );
    assert!(t.json(&["status", "Bad", "--json"])["agents"][1]["setup_error"].is_null());
}

#[test]
fn reconcile_keeps_uncommitted_work_and_restores_a_missing_worktree() {
    let (t, _repo) = TestEnv::with_project();
    t.ok(&["create", "A", "--agents", "x,y", "--agent-command", "cat"]);
    let x = t.home.join("agencies/A/worktrees/x");
    fs::write(x.join("unsaved.txt"), "precious").unwrap();
    t.tmux_ok(&["kill-window", "-t", "A:x"]);
    let y = t.home.join("agencies/A/worktrees/y");
    // Its folder vanishes; git still has it registered.
    fs::remove_dir_all(&y).unwrap();
    assert!(!y.exists());
    t.ok(&["create", "A"]);
    assert_eq!(
        fs::read_to_string(x.join("unsaved.txt")).unwrap(),
        "precious"
    );
    assert!(y.join("README.md").is_file(), "y's worktree is back");
    assert_eq!(
        t.windows("A"),
        ["coordinator", "x", "y", "tools", "sandbox"]
    );
}

#[test]
fn purge_refuses_to_lose_work() {
    let (t, repo) = TestEnv::with_project();
    t.ok(&["create", "A", "--agents", "x", "--agent-command", "cat"]);
    let x = t.home.join("agencies/A/worktrees/x");
    fs::write(x.join("unsaved.txt"), "precious").unwrap();
    // Aider's own history and cache are not work.
    fs::write(x.join(".aider.chat.history.md"), "# chat").unwrap();
    fs::write(x.join(".aider.input.history"), "hi").unwrap();
    fs::create_dir_all(x.join(".aider.tags.cache.v4")).unwrap();
    fs::write(x.join(".aider.tags.cache.v4/cache.db"), "x").unwrap();
    let err = t.fails(&["kill", "A", "--purge"]);
    assert!(err.contains("1 uncommitted file(s) (unsaved.txt)"), "{err}");
    assert!(x.join("unsaved.txt").is_file());
    assert!(
        t.tmux(&["has-session", "-t", "=A"]).status.success(),
        "nothing changed"
    );
    commit(&x, &[], "save it");
    let err = t.fails(&["kill", "A", "--purge"]);
    assert!(
        err.contains("1 commit(s) on agency/A/x or its worktree's HEAD"),
        "{err}"
    );
    assert!(git(&repo, &["branch", "--list", "agency/A/x"]).contains("agency/A/x"));
    // Merged into main, nothing is lost (Aider's history is no work): purge
    // goes through.
    git(&repo, &["merge", "-q", "--ff-only", "agency/A/x"]);
    fs::write(x.join(".aider.llm.history"), "log").unwrap();
    t.ok(&["kill", "A", "--purge"]);
    assert!(!t.home.join("agencies/A").exists());
    assert_eq!(git(&repo, &["branch", "--list", "agency/A/x"]), "");
    assert!(!git(&repo, &["worktree", "list"]).contains("worktrees/x"));
}

#[test]
fn purge_counts_commits_no_remaining_branch_has() {
    let (t, repo) = TestEnv::with_project();
    t.ok(&["create", "A", "--agents", "x,y", "--agent-command", "cat"]);
    let x = t.home.join("agencies/A/worktrees/x");
    let y = t.home.join("agencies/A/worktrees/y");
    git(&x, &["checkout", "-q", "--detach"]);
    let sha = commit(&x, &[("d.txt", "d")], "on a detached HEAD");
    let err = t.fails(&["kill", "A", "--purge"]);
    assert!(err.contains("x: 1 commit(s)"), "{err}");
    assert!(
        t.tmux(&["has-session", "-t", "=A"]).status.success(),
        "nothing changed"
    );
    // Only on y's branch now, which goes too: still at risk.
    git(&x, &["checkout", "-q", "agency/A/x"]);
    git(&y, &["merge", "-q", "--ff-only", &sha]);
    let err = t.fails(&["kill", "A", "--purge"]);
    assert!(err.contains("y: 1 commit(s)"), "{err}");
    // A branch that stays keeps it: nothing is lost, purge goes through.
    git(&repo, &["branch", "keep", &sha]);
    t.ok(&["kill", "A", "--purge"]);
    assert_eq!(git(&repo, &["rev-parse", "keep"]).trim(), sha);
    assert!(!x.exists() && !y.exists());
}

#[test]
fn purge_with_force_removes_everything() {
    let (t, repo) = TestEnv::with_project();
    t.ok(&["create", "A", "--agents", "x", "--agent-command", "cat"]);
    let x = t.home.join("agencies/A/worktrees/x");
    commit(&x, &[("w.txt", "w")], "unmerged");
    t.ok(&["kill", "A", "--purge", "--force"]);
    assert!(!x.exists());
    assert_eq!(git(&repo, &["branch", "--list", "agency/A/x"]), "");
    // --force alone means nothing without --purge.
    let out = t.run(&["kill", "A", "--force"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn worktrees_false_is_respected() {
    let (t, repo) = TestEnv::with_project();
    t.set_config("[agents]\n", "[agents]\nworktrees = false\n");
    t.ok(&["create", "A", "--agents", "x", "--agent-command", "cat"]);
    assert!(!t.home.join("agencies/A/worktrees").exists());
    assert_eq!(pane_path(&t, "A:x"), canonical(&repo));
    assert_eq!(git(&repo, &["branch", "--list", "agency/*"]), "");
    // And per agency, in agency.json.
    t.set_config("worktrees = false\n", "");
    let spec = t.home.join("agencies/A/agency.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec).unwrap()).unwrap();
    json["worktrees"] = serde_json::json!(false);
    fs::write(&spec, json.to_string()).unwrap();
    t.ok(&["kill", "A"]);
    t.ok(&["create", "A"]);
    assert!(!t.home.join("agencies/A/worktrees").exists());
}
