//! Agents use the bus themselves: `agency` on every agent's PATH as this
//! very binary, and the `permissions` an agent's CLI is started with.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
fn a_binary_replaced_while_it_ran_never_becomes_the_agents_agency() {
    let t = TestEnv::new();
    t.ok(&["create", "Up", "--agents", "dev"]);
    let link = t.home.join("registry/bin/agency");
    let before = fs::read_link(&link).unwrap();
    // A copy is run, then replaced under it (an upgrade under a long-lived
    // monitor): its /proc/self/exe reads `... (deleted)`.
    let bin = t.root().join("old bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_agency"), bin.join("agency")).unwrap();
    let script = "exec 3< \"$1/agency\" && rm \"$1/agency\" && exec /proc/self/fd/3 create Up2 --agents dev --json";
    let out = t
        .cmd_of(
            Path::new("sh"),
            &["-c", script, "sh", bin.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("this agency binary is gone from")
            && warnings.contains("(deleted)")
            && warnings.contains(&format!("it keeps pointing at {}", before.display())),
        "{report}"
    );
    assert_eq!(fs::read_link(&link).unwrap(), before, "the link moved");
    assert!(link.is_file(), "the agents' agency is gone");
}

#[test]
fn the_path_holds_in_a_workspace_folder_with_shell_characters_and_in_the_panes_layout() {
    let t = TestEnv::bare_named("w s$(touch pwned)`x`;'q\"");
    t.ok(&["init", t.home.to_str().unwrap()]);
    t.set_config("command = \"bash\"", "command = \"sh\"");
    let report = t.root().join("dev.which");
    let cmd = format!(
        "sh -c 'readlink -f \"$(command -v agency)\"' > {}; exec cat",
        report.display()
    );
    // The other layout: the agents share window 0.
    t.ok(&[
        "create",
        "Odd",
        "--agents",
        "dev",
        "--agent-command",
        &cmd,
        "--layout",
        "panes",
    ]);
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

#[test]
fn a_workspace_folder_with_a_colon_is_refused_where_agents_need_path() {
    // PATH would hold `.../c` and `olon/ws/registry/bin`: a folder relative
    // to the agent's own, where the agent can write an `agency` of its own.
    let t = TestEnv::bare_named("c:olon/ws");
    let err = t.fails(&["init", t.home.to_str().unwrap()]);
    assert!(err.contains("holds a ':', which PATH cannot hold"), "{err}");
    assert!(!t.home.exists(), "init left its folder");
    // A workspace moved there after its init: `create` refuses it too.
    let elsewhere = t.root().parent().unwrap().join("plain");
    t.ok(&["init", elsewhere.to_str().unwrap()]);
    fs::create_dir_all(t.home.parent().unwrap()).unwrap();
    fs::rename(&elsewhere, &t.home).unwrap();
    t.set_config("command = \"bash\"", "command = \"sh\"");
    let err = t.fails(&["create", "Colon", "--agents", "dev"]);
    assert!(err.contains("holds a ':', which PATH cannot hold"), "{err}");
    assert!(err.contains("hint: move the workspace"), "{err}");
    assert!(!t.home.join("agencies/Colon").exists(), "half made");
    assert!(!t.home.join("registry/bin").exists(), "half made");
    assert!(!t.has_server(), "a session was started");
}

/// A stand-in agent CLI, `fake-cli`, that writes the arguments it was
/// started with (one per line) to `<name>.args` beside the workspace, and
/// a workspace profile for it whose permissions name every placeholder.
fn fake_cli(t: &TestEnv) -> PathBuf {
    let bin = t.root().join("fake-cli");
    fs::write(
        &bin,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/\"$AGENCY_AGENT\".args\nexec sleep 600\n",
            shlex::try_quote(t.root().to_str().unwrap()).unwrap()
        ),
    )
    .unwrap();
    Command::new("chmod").arg("755").arg(&bin).status().unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        r#"[fake]
programs = ["fake-cli"]
[fake.permissions]
rule = "allow {command}"
args = ["--always"]
bus = ["--rules", "{rules_file}", "--json", "{rules_json}", "--registry", "{registry}"]
project = ["--edits"]
ask = ["--ask"]
all = ["--yolo"]
"#,
    )
    .unwrap();
    bin
}

fn args_of(t: &TestEnv, agent: &str) -> Vec<String> {
    let path = t.root().join(format!("{agent}.args"));
    wait_until(&format!("{agent}'s arguments"), || path.is_file());
    let text = fs::read_to_string(&path).unwrap();
    fs::remove_file(&path).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn each_level_gives_the_cli_its_arguments_whatever_the_workspace_folder_holds() {
    let t = TestEnv::bare_named("w s$(touch pwned)`x`;'q\"");
    t.ok(&["init", t.home.to_str().unwrap()]);
    t.set_config("command = \"bash\"", "command = \"sh\"");
    let bin = fake_cli(&t);
    t.ok(&["create", "Perm", "--agents", "dev,qa"]);
    t.ok(&["kill", "Perm"]);
    let spec_path = t.home.join("agencies/Perm/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["coordinator"]["command"] = bin.to_str().unwrap().into();
    spec["agents"][0]["command"] = bin.to_str().unwrap().into();
    spec["agents"][1]["command"] = bin.to_str().unwrap().into();
    spec["agents"][1]["permissions"] = "ask".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let report = t.json(&["create", "Perm", "--json"]);
    assert_eq!(report["permissions"]["dev"], "bus");
    assert_eq!(report["permissions"]["qa"], "ask");
    assert!(report.get("warnings").is_none(), "{report}");

    let registry = t.home.join("registry");
    let rules = registry.join("permissions/Perm/dev.toml");
    let dev = args_of(&t, "dev");
    assert_eq!(dev[..3], ["--always", "--rules", rules.to_str().unwrap()]);
    assert_eq!(dev[3], "--json");
    assert_eq!(dev[5..], ["--registry", registry.to_str().unwrap()]);
    let listed: Vec<String> = serde_json::from_str(&dev[4]).unwrap();
    assert!(listed.contains(&"allow agency send".to_string()));
    assert!(!listed.contains(&"allow agency submit".to_string()));
    assert_eq!(
        fs::read_to_string(&rules)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        listed
    );
    // The coordinator's list is longer; qa asks.
    let coordinator = args_of(&t, "coordinator");
    assert!(coordinator[4].contains("allow agency submit"));
    assert_eq!(args_of(&t, "qa"), ["--always", "--ask"]);
    assert!(!t.root().join("pwned").exists() && !t.home.join("pwned").exists());

    // `all` for everyone from agency.toml: said by create and status.
    fs::write(
        t.home.join("agency.toml"),
        fs::read_to_string(t.home.join("agency.toml"))
            .unwrap()
            .replace("# permissions = \"bus\"", "permissions = \"all\""),
    )
    .unwrap();
    t.ok(&["kill", "Perm"]);
    let out = t.cmd(&["create", "Perm"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: dev has permissions \"all\"")
            && stderr.contains("warning: coordinator has permissions \"all\""),
        "{stderr}"
    );
    // qa's own entry still says `ask`.
    assert!(!stderr.contains("qa has permissions"), "{stderr}");
    assert_eq!(args_of(&t, "dev"), ["--always", "--yolo"]);
    let status = t.ok(&["status", "Perm"]);
    assert!(
        status.contains("warning: dev has permissions \"all\": its CLI runs every command"),
        "{status}"
    );
    let json = t.json(&["status", "Perm", "--json"]);
    assert_eq!(json["agents"][1]["permissions"], "all");
    assert_eq!(json["agents"][2]["permissions"], "ask");
}

#[test]
fn an_unknown_permissions_level_is_refused_before_anything_starts() {
    let t = TestEnv::new();
    t.ok(&["create", "Bad", "--agents", "dev"]);
    t.ok(&["kill", "Bad"]);
    let spec_path = t.home.join("agencies/Bad/agency.json");
    let text = fs::read_to_string(&spec_path).unwrap();
    let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    spec["agents"][0]["permissions"] = "everything".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let err = t.fails(&["create", "Bad"]);
    assert!(err.contains("everything") && err.contains("bus"), "{err}");
    assert!(!t.has_server() || t.windows("Bad").is_empty());
}

#[test]
fn answer_presses_the_key_only_at_a_prompt_and_records_who_answered_what() {
    let t = TestEnv::new();
    let got = t.root().join("got");
    // A fake agent CLI: at `ASK ...` it asks a question and reads one
    // line, the answer.
    let script = t.root().join("asker.sh");
    fs::write(
        &script,
        format!(
            r#"while :; do
  printf 'fake> '
  IFS= read -r line || exit 0
  case "$line" in
    *ASK*) printf 'Run rm -rf build? Allow this? [y/n] '; IFS= read -r a; echo "$a" >> {got} ;;
  esac
done
"#,
            got = got.display()
        ),
    )
    .unwrap();
    fs::write(
        t.home.join("profiles.toml"),
        r#"[fake]
programs = ["timeout"]
ready = '^fake>\s*$'
waiting = 'Allow this\? \[y/n\]\s*$'
question = ['Run (.+)\? Allow this']
[fake.answer]
yes = '\[(y)/n\]'
no = '\[y/(n)\]'
then = "Enter"
"#,
    )
    .unwrap();
    let cmd = format!("exec timeout --foreground 600 sh {}", script.display());
    t.ok(&["create", "Ask", "--agents", "bot", "--agent-command", &cmd]);
    let screen = || t.tmux_ok(&["capture-pane", "-p", "-t", "Ask:bot"]);
    wait_until("the prompt", || screen().contains("fake>"));
    let state = || t.json(&["status", "Ask", "--json"])["agents"][1].clone();
    wait_until("bot to be idle", || state()["state"] == "idle");

    // Not at a prompt: refused, nothing typed.
    let before = screen();
    let err = t.fails(&["answer", "Ask", "bot", "yes"]);
    assert!(
        err.contains("not waiting at a prompt (it is idle)"),
        "{err}"
    );
    assert_eq!(screen(), before);
    let err = t.fails(&["answer", "Ask", "nobody", "yes"]);
    assert!(err.contains("has no agent"), "{err}");
    let out = t.run(&["answer", "Ask", "bot", "maybe"]);
    assert_eq!(out.status.code(), Some(2), "a bad choice is a usage error");

    t.ok(&["send", "Ask", "bot", "ASK"]);
    wait_until("the question", || state()["state"] == "waiting");
    assert_eq!(state()["question"], "rm -rf build");
    let text = t.ok(&["status", "Ask"]);
    assert!(text.contains("asks: rm -rf build"), "{text}");
    // Only the answers this prompt has, given only while it asks that.
    assert!(
        text.contains("answer Ask bot yes --if-asks 'rm -rf build' (or no), or look:"),
        "{text}"
    );
    assert_eq!(state()["choices"], serde_json::json!(["yes", "no"]));
    // A choice the prompt does not offer: refused, nothing typed.
    let err = t.fails(&["answer", "Ask", "bot", "always"]);
    assert!(err.contains("offers no \"always\""), "{err}");
    assert!(!got.exists());
    // It asks something else than what the human saw: refused.
    let err = t.fails(&["answer", "Ask", "bot", "yes", "--if-asks", "ls -la"]);
    assert!(
        err.contains("the prompt of Ask/bot changed: it now asks rm -rf build; nothing was typed"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(!got.exists());
    // The monitor's (and a notification's) command names what it showed.
    let doc = t.json(&["monitor", "--json"]);
    let need = doc["needs_you"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "waiting")
        .expect("the prompt needs the human")
        .clone();
    let words = shlex::split(need["command"].as_str().unwrap()).unwrap();
    assert_eq!(
        words[words.len() - 2..],
        ["--if-asks".to_string(), "rm -rf build".to_string()]
    );

    // Answered by another agent: recorded as such.
    let out = t
        .cmd(&[
            "answer",
            "Ask",
            "bot",
            "yes",
            "--if-asks",
            "rm -rf build",
            "--json",
        ])
        .env("AGENCY_NAME", "Ops")
        .env("AGENCY_AGENT", "lead")
        .output()
        .unwrap();
    assert!(out.status.success());
    let answered: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answered["keys"], serde_json::json!(["y", "Enter"]));
    wait_until("the answer", || {
        fs::read_to_string(&got).is_ok_and(|s| s == "y\n")
    });
    wait_until("bot to be idle", || state()["state"] == "idle");
    let log = t.json(&["log", "--agency", "Ask", "--json"]);
    let event = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "answer")
        .expect("an answer event");
    assert_eq!(event["detail"]["by"], "Ops/lead");
    assert_eq!(event["detail"]["choice"], "yes");
    assert_eq!(event["detail"]["question"], "rm -rf build");
    assert_eq!(event["detail"]["agent"], "bot");
}

#[test]
fn rules_a_cli_reads_in_its_working_folder_stay_out_of_git_and_go_when_unused() {
    let (t, project) = TestEnv::with_project();
    let bin = fake_cli(&t);
    let profiles = t.home.join("profiles.toml");
    let text = fs::read_to_string(&profiles).unwrap();
    fs::write(
        &profiles,
        text.replace(
            "rule = \"allow {command}\"",
            "rule = \"allow {command}\"\nrules_file = \".fake/agency-{agency}-{agent}.rules\"",
        )
        .replace("\"--rules\", \"{rules_file}\", ", ""),
    )
    .unwrap();
    t.ok(&["create", "Perm", "--agents", "dev,qa"]);
    t.ok(&["kill", "Perm"]);
    let spec_path = t.home.join("agencies/Perm/agency.json");
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut spec: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
        f(&mut spec);
        fs::write(&spec_path, spec.to_string()).unwrap();
    };
    edit(&|spec| {
        spec["coordinator"]["command"] = bin.to_str().unwrap().into();
        for i in 0..2 {
            spec["agents"][i]["command"] = bin.to_str().unwrap().into();
        }
        spec["agents"][1]["permissions"] = "ask".into();
    });
    t.ok(&["create", "Perm"]);
    let worktrees = t.home.join("agencies/Perm/worktrees");
    let dev_rules = worktrees.join("dev/.fake/agency-Perm-dev.rules");
    let coordinator_rules = project.join(".fake/agency-Perm-coordinator.rules");
    for agent in ["coordinator", "dev", "qa"] {
        args_of(&t, agent);
    }
    assert!(fs::read_to_string(&dev_rules)
        .unwrap()
        .contains("allow agency send"));
    assert!(fs::read_to_string(&coordinator_rules)
        .unwrap()
        .contains("allow agency submit"));
    assert!(!worktrees.join("qa/.fake").exists());
    // Never committed by accident.
    for dir in [project.clone(), worktrees.join("dev")] {
        assert_eq!(
            crate::common::git(&dir, &["status", "--porcelain"]),
            "",
            "{}",
            dir.display()
        );
    }
    // dev asks now: its rules go.
    edit(&|spec| spec["agents"][0]["permissions"] = "ask".into());
    t.ok(&["kill", "Perm"]);
    t.ok(&["create", "Perm"]);
    args_of(&t, "dev");
    assert!(!dev_rules.exists());
    // Purged: nothing of it is left in the project.
    t.ok(&["kill", "Perm", "--purge", "--force"]);
    assert!(!coordinator_rules.exists());
}

#[test]
fn rules_are_never_written_or_removed_through_a_symlinked_folder() {
    let (t, project) = TestEnv::with_project();
    let bin = fake_cli(&t);
    let profiles = t.home.join("profiles.toml");
    let text = fs::read_to_string(&profiles).unwrap();
    fs::write(
        &profiles,
        text.replace(
            "rule = \"allow {command}\"",
            "rule = \"allow {command}\"\nrules_file = \".fake/rules/agency-{agency}-{agent}.rules\"",
        ),
    )
    .unwrap();
    // The repository commits its rules folder as a link to somebody's own.
    let outside = t.root().join("users-own");
    fs::create_dir_all(outside.join("rules")).unwrap();
    std::os::unix::fs::symlink(&outside, project.join(".fake")).unwrap();
    crate::common::commit(&project, &[], "a linked rules folder");
    let theirs = ["agency-Perm-dev.rules", "agency-Perm-qa.rules"];
    for f in theirs {
        fs::write(outside.join("rules").join(f), "their own\n").unwrap();
    }
    t.ok(&["create", "Perm", "--agents", "dev,qa"]);
    t.ok(&["kill", "Perm"]);
    let spec_path = t.home.join("agencies/Perm/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["coordinator"]["command"] = bin.to_str().unwrap().into();
    for i in 0..2 {
        spec["agents"][i]["command"] = bin.to_str().unwrap().into();
    }
    spec["agents"][1]["permissions"] = "ask".into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let report = t.json(&["create", "Perm", "--json"]);
    let warnings = report["warnings"].to_string();
    for agent in ["coordinator", "dev"] {
        assert!(
            warnings.contains(&format!("{agent}: its rules file was not written"))
                && warnings.contains(".fake is a symbolic link"),
            "{report}"
        );
    }
    for agent in ["coordinator", "dev", "qa"] {
        args_of(&t, agent);
    }
    let left = || {
        let mut l: Vec<String> = fs::read_dir(outside.join("rules"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        l.sort();
        l
    };
    assert_eq!(left(), theirs, "written or removed through the link");
    t.ok(&["kill", "Perm", "--purge", "--force"]);
    assert_eq!(left(), theirs, "purge removed through the link");
    for f in theirs {
        assert_eq!(
            fs::read_to_string(outside.join("rules").join(f)).unwrap(),
            "their own\n"
        );
    }
}

#[test]
fn a_compound_command_gets_no_permissions_and_create_says_so() {
    let t = TestEnv::new();
    let bin = fake_cli(&t);
    t.ok(&["create", "Mix", "--agents", "dev"]);
    t.ok(&["kill", "Mix"]);
    let spec_path = t.home.join("agencies/Mix/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["agents"][0]["profile"] = "fake".into();
    spec["agents"][0]["command"] = format!("cd . && exec {}", bin.display()).into();
    fs::write(&spec_path, spec.to_string()).unwrap();
    let out = t.cmd(&["create", "Mix"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: dev: its command is not one simple command"),
        "{stderr}"
    );
    // Started as written, with none of the arguments (`printf '%s\n'`
    // with none prints one empty line).
    assert_eq!(args_of(&t, "dev"), [""]);
}
