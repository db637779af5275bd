//! `agency init` and `agency templates`.

use std::fs;

use crate::common::TestEnv;

#[test]
fn init_makes_the_layout_and_is_idempotent() {
    let t = TestEnv::bare();
    t.ok(&["init", t.home.to_str().unwrap()]);
    for dir in [
        "agencies",
        "registry",
        "registry/outbox",
        "sandbox/testing",
        "sandbox/staging",
        "templates",
        "scripts",
    ] {
        assert!(t.home.join(dir).is_dir(), "{dir}");
    }
    assert!(t.home.join("scripts/create_agency.sh").is_file());
    let config = fs::read_to_string(t.home.join("agency.toml")).unwrap();
    assert!(config.contains("base_branch = \"main\""));
    // A second run keeps what is there.
    fs::write(t.home.join("agency.toml"), format!("{config}# mine\n")).unwrap();
    let report = t.json(&["init", t.home.to_str().unwrap(), "--json"]);
    assert_eq!(report["created"], serde_json::json!([]));
    assert!(fs::read_to_string(t.home.join("agency.toml"))
        .unwrap()
        .ends_with("# mine\n"));
    let ignore = fs::read_to_string(t.home.join(".gitignore")).unwrap();
    assert_eq!(ignore.matches("/registry/").count(), 1);
}

#[test]
fn a_failed_init_leaves_no_folder_behind() {
    let t = TestEnv::bare();
    let deep = t.home.join("deep/er");
    let missing = t.root().join("no-such-project");
    let out = t.run(&[
        "init",
        deep.to_str().unwrap(),
        "--project",
        missing.to_str().unwrap(),
    ]);
    crate::common::expect_user_error(&out, &["init --project missing"]);
    assert!(!t.home.exists(), "{} was left behind", t.home.display());
    // A folder that was there stays, with what it held.
    fs::create_dir_all(&t.home).unwrap();
    fs::write(t.home.join("mine.txt"), "x").unwrap();
    let out = t.run(&[
        "init",
        deep.to_str().unwrap(),
        "--project",
        missing.to_str().unwrap(),
    ]);
    crate::common::expect_user_error(&out, &["init --project missing"]);
    assert!(!t.home.join("deep").exists());
    assert!(t.home.join("mine.txt").is_file());
}

#[test]
fn init_project_sets_the_project() {
    let t = TestEnv::bare();
    let project = t.root().join("app");
    fs::create_dir_all(&project).unwrap();
    t.ok(&[
        "init",
        t.home.to_str().unwrap(),
        "--project",
        project.to_str().unwrap(),
    ]);
    let config = fs::read_to_string(t.home.join("agency.toml")).unwrap();
    assert!(
        config.contains(&format!("project = \"{}\"", project.display())),
        "{config}"
    );
    let missing = t.root().join("missing");
    t.fails(&[
        "init",
        t.home.to_str().unwrap(),
        "--project",
        missing.to_str().unwrap(),
    ]);
}

#[test]
fn workspace_is_found_by_walking_up() {
    let t = TestEnv::new();
    let deep = t.home.join("agencies/deep/er");
    fs::create_dir_all(&deep).unwrap();
    let out = t
        .cmd(&["list", "--json"])
        .current_dir(&deep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // AGENCY_HOME wins over the current folder.
    let other = TestEnv::new();
    other.ok(&["create", "OnlyThere"]);
    let out = t
        .cmd(&["list", "--json"])
        .env("AGENCY_HOME", &other.home)
        .env("AGENCY_TMUX_SOCKET", &other.socket)
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "OnlyThere");
}

#[test]
fn templates_lists_the_five_agencies() {
    let t = TestEnv::new();
    let list = t.json(&["templates", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    for want in [
        "CodeAgency",
        "QAAgency",
        "DevOpsAgency",
        "SecurityAgency",
        "DocsAgency",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let code = &list.as_array().unwrap()[names.iter().position(|n| *n == "CodeAgency").unwrap()];
    assert_eq!(
        code["agents"],
        serde_json::json!(["python-agent", "js-agent", "go-agent", "code-reviewer"])
    );
}

#[test]
fn seed_scripts_without_agency_say_so() {
    let t = TestEnv::new();
    let run = |bin: Option<&str>| {
        let mut c = std::process::Command::new(t.home.join("scripts/send-agency-message.sh"));
        t.isolate(&mut c);
        c.args(["A", "coordinator", "hi"])
            .env("PATH", "/usr/bin:/bin")
            .env("AGENCY_TMUX_SOCKET", &t.socket)
            .env_remove("AGENCY_BIN")
            .env_remove("AGENCY_HOME");
        if let Some(b) = bin {
            c.env("AGENCY_BIN", b);
        }
        c.output().unwrap()
    };
    for (bin, says) in [
        (None, "agency not found"),
        (Some("/nowhere/agency"), "AGENCY_BIN"),
    ] {
        let out = run(bin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
    }
    // Once an agency is up, registry/bin/agency is the binary to use.
    t.ok(&["create", "A"]);
    let out = run(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued message"),
        "{err}"
    );
}
