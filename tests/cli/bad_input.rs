//! Bad input: `error:` + `hint:`, exit 1, and nothing made.

use std::fs;

use crate::common::{expect_user_error, TestEnv};

/// Everything under agencies/ (there should be nothing).
fn agency_entries(t: &TestEnv) -> Vec<String> {
    fs::read_dir(t.home.join("agencies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn agency_rows(t: &TestEnv) -> i64 {
    t.db()
        .query_row("SELECT count(*) FROM agencies", [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn bad_names_are_refused_and_nothing_is_made() {
    let t = TestEnv::new();
    let long = "a".repeat(65);
    for name in [
        "../x",
        "a.b",
        "a:b",
        "",
        "$(touch x)",
        &long,
        "-rf",
        "9lives",
        "a b",
    ] {
        let err = t.fails(&["create", name]);
        assert!(err.contains("invalid agency name"), "{name:?}: {err}");
    }
    // A bad agent or coordinator name is refused the same way.
    t.fails(&["create", "Good", "--agents", "ok,../evil"]);
    t.fails(&["create", "Good", "--coordinator", "a;b"]);
    t.fails(&["create", "Good", "--agents", "tools"]);
    t.usage_error(&["create", "Good", "--layout", "grid"], "windows, panes");
    assert!(agency_entries(&t).is_empty(), "{:?}", agency_entries(&t));
    assert!(!t.home.join("x").exists() && !t.root().join("x").exists());
    assert!(!t.has_server(), "a tmux server was started");
    assert_eq!(agency_rows(&t), 0);
}

#[test]
fn unknown_template_is_refused() {
    let t = TestEnv::new();
    let err = t.fails(&["create", "X", "--template", "NoSuchTemplate"]);
    assert!(err.contains("CodeAgency"), "hint lists templates: {err}");
    assert!(agency_entries(&t).is_empty());
    assert!(!t.has_server());
    assert_eq!(agency_rows(&t), 0);
}

#[test]
fn no_workspace_is_an_error() {
    let t = TestEnv::bare();
    fs::create_dir_all(t.root().join("empty")).unwrap();
    let out = t
        .cmd(&["list"])
        .current_dir(t.root().join("empty"))
        .output()
        .unwrap();
    let err = expect_user_error(&out, &["list"]);
    assert!(err.contains("agency init"), "{err}");
    let err = t.fails(&[
        "--home",
        t.root().join("nope").to_str().unwrap(),
        "create",
        "A",
    ]);
    assert!(err.contains("no workspace"), "{err}");
    assert!(!t.root().join("nope").exists());
}

#[test]
fn missing_tmux_is_reported() {
    let t = TestEnv::new();
    let out = t
        .cmd(&["create", "A"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = expect_user_error(&out, &["create", "A"]);
    assert!(err.contains("tmux is not installed"), "{err}");
    assert!(agency_entries(&t).is_empty());
    assert_eq!(agency_rows(&t), 0);
}

#[test]
fn unreachable_tmux_server_is_reported() {
    let t = TestEnv::new();
    // tmux cannot make its socket folder here, so it can neither reach nor
    // start a server.
    let blocker = t.root().join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    let out = t
        .cmd(&["create", "A"])
        .env("TMUX_TMPDIR", &blocker)
        .output()
        .unwrap();
    let err = expect_user_error(&out, &["create", "A"]);
    assert!(err.contains("tmux"), "{err}");
    assert!(agency_entries(&t).is_empty());
    assert_eq!(agency_rows(&t), 0);
}

#[test]
fn a_foreign_session_with_the_same_name_is_left_alone() {
    let t = TestEnv::new();
    t.tmux_ok(&["new-session", "-d", "-s", "CodeAgency"]);
    let err = t.fails(&["create", "CodeAgency"]);
    assert!(err.contains("not made by this workspace"), "{err}");
    // The hint's tmux command reaches the server the workspace uses.
    let hint = err.split("hint: ").nth(1).unwrap();
    let cmd = hint.split('`').nth(1).unwrap();
    assert!(
        cmd.starts_with(&format!("tmux -L {} rename-session", t.socket)),
        "{hint}"
    );
    assert_eq!(t.windows("CodeAgency").len(), 1);
    assert!(agency_entries(&t).is_empty());
    assert_eq!(agency_rows(&t), 0);
    let err = t.fails(&["kill", "CodeAgency"]);
    assert!(err.contains("no agency named"), "{err}");
    assert!(t
        .tmux(&["has-session", "-t", "=CodeAgency"])
        .status
        .success());
}

#[test]
fn unknown_agency_for_status_kill_attach() {
    let t = TestEnv::new();
    t.fails(&["status", "Nobody"]);
    t.fails(&["kill", "Nobody"]);
    t.fails(&["attach", "Nobody"]);
    t.fails(&["status", "../etc"]);
}

#[test]
fn unknown_or_broken_profiles_are_errors_and_start_nothing() {
    let t = TestEnv::new();
    t.ok(&["create", "Prof", "--agents", "dev"]);
    t.ok(&["kill", "Prof"]);
    let spec_path = t.home.join("agencies/Prof/agency.json");
    let good = fs::read_to_string(&spec_path).unwrap();
    let mut spec: serde_json::Value = serde_json::from_str(&good).unwrap();
    spec["agents"][0]["profile"] = serde_json::json!("nosuch");
    fs::write(&spec_path, spec.to_string()).unwrap();
    let err = expect_user_error(&t.run(&["create", "Prof"]), &["create"]);
    assert!(err.contains("nosuch") && err.contains("claude"), "{err}");
    assert!(!t.tmux(&["has-session", "-t", "=Prof"]).status.success());
    // A profiles.toml that does not parse, or a bad regex in it.
    fs::write(&spec_path, good).unwrap();
    for bad in ["[x\nprograms = 1", "[x]\nready = '('\n"] {
        fs::write(t.home.join("profiles.toml"), bad).unwrap();
        let err = expect_user_error(&t.run(&["create", "Prof"]), &["create"]);
        assert!(err.contains("profile"), "{err}");
        assert!(!t.tmux(&["has-session", "-t", "=Prof"]).status.success());
    }
}

#[test]
fn a_test_timeout_of_zero_is_refused_before_anything_runs() {
    let t = TestEnv::new();
    for cmd in [
        &["sandbox", "deploy", "A", "main", "--timeout", "0"][..],
        &["submit", "A", "--task", "x", "--timeout", "0"],
    ] {
        let out = t.run(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("give at least 1 second"), "{cmd:?}: {err}");
    }
}
