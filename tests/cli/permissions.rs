//! Agents use the bus themselves: `agency` on every agent's PATH as this
//! very binary, and the `permissions` an agent's CLI is started with.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{wait_until, TestEnv};

/// The current PATH without any folder holding an `agency`.
fn path_without_agency() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("agency").exists())
        .collect();
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

#[test]
fn every_agent_finds_this_agency_on_its_path_after_restart_reconcile_and_restore() {
    let t = TestEnv::new();
    // agency started through a link of another name, from a PATH without
    // it: neither the link's folder nor the binary's is on the agents' PATH.
    let links = t.root().join("links");
    fs::create_dir_all(&links).unwrap();
    let link = links.join("ag");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_agency"), &link).unwrap();
    let path = path_without_agency();
    let run = |args: &[&str]| {
        let out = t.cmd_of(&link, args).env("PATH", &path).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The agent asks a child shell, as an agent CLI's tool would, which
    // `agency` it finds, and runs it.
    let out = t.root().join("which");
    fs::create_dir_all(&out).unwrap();
    let report = out.join("dev");
    let cmd = format!(
        "sh -c 'readlink -f \"$(command -v agency)\"; agency --version' > {}; exec cat",
        report.display()
    );
    let fresh = || {
        wait_until("the agent's report", || {
            fs::read_to_string(&report).is_ok_and(|s| s.lines().count() == 2)
        });
        let got = fs::read_to_string(&report).unwrap();
        fs::remove_file(&report).unwrap();
        got
    };
    let exe = fs::canonicalize(env!("CARGO_BIN_EXE_agency")).unwrap();
    let expected = format!("{}\nagency {}\n", exe.display(), env!("CARGO_PKG_VERSION"));
    run(&["create", "Path", "--agents", "dev", "--agent-command", &cmd]);
    assert_eq!(fresh(), expected, "after create");

    // Its program exits, and is started again in its pane.
    t.tmux_ok(&["send-keys", "-t", "Path:dev", "C-d"]);
    wait_until("dev to exit", || {
        t.json(&["status", "Path", "--json"])["agents"][1]["state"] == "exited"
    });
    run(&["status", "Path", "--restart"]);
    assert_eq!(fresh(), expected, "after status --restart");

    // Its window is closed, and reconciled.
    t.tmux_ok(&["kill-window", "-t", "Path:dev"]);
    run(&["create", "Path"]);
    assert_eq!(fresh(), expected, "after reconcile");

    // The tmux server dies, and the agency is restored.
    t.tmux_ok(&["kill-server"]);
    wait_until("the server to end", || !t.has_server());
    run(&["restore"]);
    assert_eq!(fresh(), expected, "after restore");
}

#[test]
fn the_path_holds_in_a_workspace_folder_with_shell_characters() {
    let t = TestEnv::bare_named("w s$(touch pwned)`x`;'q\"");
    t.ok(&["init", t.home.to_str().unwrap()]);
    t.set_config("command = \"bash\"", "command = \"sh\"");
    let report = t.root().join("dev.which");
    let cmd = format!(
        "sh -c 'readlink -f \"$(command -v agency)\"' > {}; exec cat",
        report.display()
    );
    t.ok(&["create", "Odd", "--agents", "dev", "--agent-command", &cmd]);
    wait_until("the agent's report", || {
        fs::read_to_string(&report).is_ok_and(|s| s.ends_with('\n'))
    });
    let exe = fs::canonicalize(env!("CARGO_BIN_EXE_agency")).unwrap();
    assert_eq!(
        fs::read_to_string(&report).unwrap().trim(),
        exe.display().to_string()
    );
    assert!(!Path::new(&t.root().join("pwned")).exists());
    assert!(!t.home.join("pwned").exists());
}
