//! create, list, status, reconcile and kill against a real tmux server.

use std::fs;

use crate::common::{wait_until, TestEnv};

#[test]
fn windows_are_named_and_ordered() {
    let t = TestEnv::new();
    t.ok(&["create", "CodeAgency"]);
    assert_eq!(
        t.windows("CodeAgency"),
        [
            "coordinator",
            "python-agent",
            "js-agent",
            "go-agent",
            "code-reviewer",
            "tools",
            "sandbox"
        ]
    );
    let first = t.tmux_ok(&[
        "list-windows",
        "-t",
        "CodeAgency",
        "-F",
        "#{window_index} #{window_name}",
    ]);
    assert!(first.starts_with("0 coordinator\n"), "{first}");
    // The folder came from the template, placeholders filled in.
    let dir = t.home.join("agencies/CodeAgency");
    let brief = fs::read_to_string(dir.join("agents/python-agent.md")).unwrap();
    assert!(brief.contains("`python-agent` in CodeAgency"), "{brief}");
    assert!(!brief.contains("{{"), "unfilled placeholder: {brief}");
    assert!(dir.join("coordinator.md").is_file());
    assert!(dir.join("scripts/linter.sh").is_file());
    let log = fs::read_to_string(dir.join("logs/activity.log")).unwrap();
    assert!(log.contains(" create "), "{log}");
}

#[test]
fn panes_get_the_agency_environment() {
    let t = TestEnv::new();
    let out_dir = t.root().join("env");
    fs::create_dir_all(&out_dir).unwrap();
    // Each agent writes its environment to a file named after itself.
    let cmd = format!("env > {}/$AGENCY_AGENT.env; exec cat", out_dir.display());
    t.ok(&[
        "create",
        "Env",
        "--agents",
        "one,two",
        "--agent-command",
        &cmd,
    ]);
    for agent in ["coordinator", "one", "two"] {
        let path = out_dir.join(format!("{agent}.env"));
        wait_until(&format!("{agent} to write its environment"), || {
            fs::read_to_string(&path).is_ok_and(|s| s.contains("AGENCY_AGENT"))
        });
        let env = fs::read_to_string(&path).unwrap();
        for want in [
            format!("AGENCY_HOME={}", t.home.display()),
            "AGENCY_NAME=Env".to_string(),
            format!("AGENCY_AGENT={agent}"),
            format!("AGENCY_TMUX_SOCKET={}", t.socket),
        ] {
            assert!(env.lines().any(|l| l == want), "{agent}: missing {want}");
        }
    }
}

#[test]
fn list_and_status_report_json() {
    let t = TestEnv::new();
    assert_eq!(t.json(&["list", "--json"]), serde_json::json!([]));
    t.ok(&["create", "QAAgency"]);
    let list = t.json(&["list", "--json"]);
    let a = &list[0];
    assert_eq!(a["name"], "QAAgency");
    assert_eq!(a["running"], true);
    assert_eq!(a["session"], "QAAgency");
    let agents = a["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["coordinator", "test-lead", "qa-engineer", "perf-tester"]
    );
    assert_eq!(agents[0]["role"], "coordinator");
    assert_eq!(agents[1]["role"], "specialist");
    // Pane ids are tmux's own.
    let panes = t.tmux_ok(&["list-panes", "-s", "-t", "QAAgency", "-F", "#{pane_id}"]);
    for x in agents {
        let pane = x["pane"].as_str().unwrap();
        assert!(panes.lines().any(|p| p == pane), "{pane} not in {panes}");
        assert!(["idle", "starting", "busy", "unknown"].contains(&x["state"].as_str().unwrap()));
    }
    let status = t.json(&["status", "QAAgency", "--json"]);
    assert_eq!(status["name"], "QAAgency");
    assert_eq!(status["running"], true);
    assert_eq!(status["agents"].as_array().unwrap().len(), 4);
    // The mirror follows the database.
    let mirror: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(t.home.join("registry/active_agencies.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(mirror[0]["name"], "QAAgency");
    assert_eq!(mirror[0]["state"], "running");
}

#[test]
fn reconcile_restores_missing_and_keeps_the_rest() {
    let t = TestEnv::new();
    t.ok(&["create", "CodeAgency"]);
    let before = t.json(&["list", "--json"]);
    let pane_of = |v: &serde_json::Value, name: &str| {
        v[0]["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()["pane"]
            .clone()
    };
    t.tmux_ok(&["kill-window", "-t", "CodeAgency:js-agent"]);
    t.tmux_ok(&["new-window", "-d", "-t", "CodeAgency:99", "-n", "mine"]);
    let report = t.json(&["create", "CodeAgency", "--json"]);
    assert_eq!(report["action"], "reconcile");
    assert_eq!(report["created"], serde_json::json!(["js-agent"]));
    let windows = t.windows("CodeAgency");
    assert_eq!(
        windows,
        [
            "coordinator",
            "python-agent",
            "js-agent",
            "go-agent",
            "code-reviewer",
            "tools",
            "sandbox",
            "mine"
        ]
    );
    let after = t.json(&["list", "--json"]);
    assert_eq!(
        pane_of(&before, "python-agent"),
        pane_of(&after, "python-agent")
    );
    assert_ne!(pane_of(&before, "js-agent"), pane_of(&after, "js-agent"));
    // Once more: nothing missing, nothing duplicated.
    let again = t.json(&["create", "CodeAgency", "--json"]);
    assert_eq!(again["created"], serde_json::json!([]));
    assert_eq!(t.windows("CodeAgency").len(), 8);
    let events: i64 = t
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE agency = 'CodeAgency' AND kind = 'reconcile'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 2);
}

#[test]
fn reconcile_puts_a_missing_first_window_back_first() {
    let t = TestEnv::new();
    t.ok(&["create", "A", "--agents", "x,y"]);
    t.tmux_ok(&["kill-window", "-t", "A:coordinator"]);
    t.tmux_ok(&["kill-window", "-t", "A:x"]);
    t.ok(&["create", "A"]);
    assert_eq!(
        t.windows("A"),
        ["coordinator", "x", "y", "tools", "sandbox"]
    );
}

#[test]
fn panes_layout_puts_agents_in_window_zero() {
    let t = TestEnv::new();
    t.ok(&["create", "P", "--layout", "panes", "--agents", "a,b,c"]);
    assert_eq!(t.windows("P"), ["agents", "tools", "sandbox"]);
    let panes = t.tmux_ok(&["list-panes", "-t", "P:agents", "-F", "#{pane_id}"]);
    assert_eq!(panes.lines().count(), 4);
    let status = t.json(&["status", "P", "--json"]);
    let ids: Vec<&str> = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pane"].as_str().unwrap())
        .collect();
    assert_eq!(ids, panes.lines().collect::<Vec<_>>(), "agents in order");
    // A killed pane comes back into the same window.
    t.tmux_ok(&["kill-pane", "-t", ids[2]]);
    let report = t.json(&["create", "P", "--json"]);
    assert_eq!(report["created"], serde_json::json!(["b"]));
    let panes = t.tmux_ok(&["list-panes", "-t", "P:agents", "-F", "#{pane_id}"]);
    assert_eq!(panes.lines().count(), 4);
    assert_eq!(t.windows("P").len(), 3);
}

#[test]
fn kill_ends_the_session_and_keeps_files() {
    let t = TestEnv::new();
    t.ok(&["create", "DocsAgency"]);
    t.tmux_ok(&["new-session", "-d", "-s", "bystander"]);
    t.ok(&["kill", "DocsAgency"]);
    assert!(!t
        .tmux(&["has-session", "-t", "=DocsAgency"])
        .status
        .success());
    assert!(t
        .tmux(&["has-session", "-t", "=bystander"])
        .status
        .success());
    assert!(t.home.join("agencies/DocsAgency/agency.json").is_file());
    let list = t.json(&["list", "--json"]);
    assert_eq!(list[0]["running"], false);
    let state: String = t
        .db()
        .query_row(
            "SELECT state FROM agencies WHERE name = 'DocsAgency'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "stopped");
    // It comes back as it was.
    let report = t.json(&["create", "DocsAgency", "--json"]);
    assert_eq!(report["action"], "start");
    assert_eq!(t.windows("DocsAgency").len(), 6);
    let kinds: Vec<String> = t
        .db()
        .prepare("SELECT kind FROM events WHERE agency = 'DocsAgency' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kinds, ["create", "kill", "start"]);
}

#[test]
fn kill_purge_removes_the_folder() {
    let t = TestEnv::new();
    t.ok(&["create", "Gone"]);
    t.ok(&["kill", "Gone", "--purge"]);
    assert!(!t.home.join("agencies/Gone").exists());
}

#[test]
fn a_purged_agency_leaves_the_list_and_its_undelivered_messages_are_cancelled() {
    let t = TestEnv::new();
    t.ok(&["create", "Kept"]);
    t.ok(&["create", "Gone"]);
    t.ok(&["kill", "Gone"]);
    // Stopped: what is sent to it waits; one has failed, one got there.
    let send = |body: &str| {
        t.ok(&["send", "-q", "Gone", "coordinator", body])
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let (queued, failed, delivered) = (send("NOTE one"), send("NOTE two"), send("NOTE three"));
    let db = t.db();
    db.execute(
        "UPDATE messages SET state = 'failed', last_error = 'x' WHERE id = ?1",
        [failed],
    )
    .unwrap();
    db.execute(
        "UPDATE messages SET state = 'delivered' WHERE id = ?1",
        [delivered],
    )
    .unwrap();
    // Stopped but not purged: `create` starts it again, as status says.
    assert!(t.ok(&["status", "Gone"]).contains("create Gone"));
    let out = t.ok(&["kill", "Gone", "--purge"]);
    assert!(
        out.contains("2 message(s) that had not reached it were cancelled"),
        "{out}"
    );
    // Gone from the list, from status and from the monitor.
    let names: Vec<String> = t
        .json(&["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Kept"]);
    let err = crate::common::expect_user_error(&t.run(&["status", "Gone"]), &["status Gone"]);
    assert!(!err.contains("create Gone"), "{err}");
    let monitor = t.json(&["monitor", "--json"]);
    for part in ["agencies", "needs_you"] {
        assert!(!monitor[part].to_string().contains("\"Gone\""), "{monitor}");
    }
    // Its messages are kept, cancelled (the delivered one as it was), and
    // the log says so.
    let state = |id: i64| -> String {
        t.db()
            .query_row("SELECT state FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    };
    assert_eq!(
        [state(queued), state(failed), state(delivered)],
        ["cancelled", "cancelled", "delivered"]
    );
    let log = t.json(&["log", "--json"]);
    let cancelled: Vec<i64> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message.cancelled")
        .map(|e| e["detail"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(cancelled, [queued, failed]);
    // A new Gone starts afresh: nothing of the old one waits for it (the
    // one delivered stays in the record); `--all` still shows them.
    t.ok(&["create", "Gone"]);
    let ids = |all: bool| -> Vec<i64> {
        let mut args = vec!["inbox", "Gone", "coordinator", "--json"];
        args.extend(all.then_some("--all"));
        t.json(&args)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(false), [delivered]);
    assert_eq!(ids(true), [queued, failed, delivered]);
}

#[test]
fn agents_flag_replaces_the_specialists() {
    let t = TestEnv::new();
    t.ok(&[
        "create",
        "CodeAgency",
        "--agents",
        "python-agent,rust-agent",
        "--coordinator",
        "lead",
        "--capabilities",
        "backend,systems",
    ]);
    assert_eq!(
        t.windows("CodeAgency"),
        [
            "coordinator",
            "python-agent",
            "rust-agent",
            "tools",
            "sandbox"
        ]
    );
    let spec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(t.home.join("agencies/CodeAgency/agency.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["coordinator"]["name"], "lead");
    assert_eq!(
        spec["capabilities"],
        serde_json::json!(["backend", "systems"])
    );
    let rust = fs::read_to_string(t.home.join("agencies/CodeAgency/agents/rust-agent.md")).unwrap();
    assert!(rust.contains("`rust-agent` in CodeAgency"), "{rust}");
}

#[test]
fn unknown_names_get_the_generic_template() {
    let t = TestEnv::new();
    let report = t.json(&["create", "Research", "--json"]);
    assert_eq!(report["template"], "Generic");
    assert_eq!(
        t.windows("Research"),
        ["coordinator", "builder", "reviewer", "tools", "sandbox"]
    );
}

#[test]
fn workspace_templates_override_builtins() {
    let t = TestEnv::new();
    let dir = t.home.join("templates/QAAgency");
    fs::create_dir_all(dir.join("agents")).unwrap();
    fs::write(
        dir.join("agency.json"),
        r#"{"name": "QAAgency", "coordinator": {"name": "boss", "role_file": "coordinator.md"},
            "agents": [{"name": "only-tester", "role_file": "agents/only-tester.md"}]}"#,
    )
    .unwrap();
    fs::write(dir.join("coordinator.md"), "# boss of {{AGENCY}}\n").unwrap();
    fs::write(dir.join("agents/only-tester.md"), "# {{AGENT}}\n").unwrap();
    let templates = t.json(&["templates", "--json"]);
    let qa = templates
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "QAAgency")
        .unwrap();
    assert_eq!(qa["source"], "workspace");
    t.ok(&["create", "QAAgency"]);
    assert_eq!(
        t.windows("QAAgency"),
        ["coordinator", "only-tester", "tools", "sandbox"]
    );
    let brief = fs::read_to_string(t.home.join("agencies/QAAgency/coordinator.md")).unwrap();
    assert_eq!(brief, "# boss of QAAgency\n");
}

#[test]
fn seed_script_creates_an_agency() {
    let t = TestEnv::new();
    t.script(
        "create_agency.sh",
        &[
            "CodeAgency",
            "--agents",
            "python-agent,js-agent,go-agent",
            "--coordinator",
            "code-coordinator",
            "--capabilities",
            "backend,frontend,api-design,code-review",
        ],
    );
    assert_eq!(
        t.windows("CodeAgency"),
        [
            "coordinator",
            "python-agent",
            "js-agent",
            "go-agent",
            "tools",
            "sandbox"
        ]
    );
}

#[test]
fn kill_ends_agent_programs_that_ignore_sighup() {
    let t = TestEnv::new();
    // Like Gemini CLI: lives on after tmux's SIGHUP (and shrugs off SIGTERM).
    let stubborn =
        "exec timeout --foreground 600 sh -c 'trap \"\" HUP TERM; while :; do sleep 1; done'";
    t.ok(&[
        "create",
        "Stub",
        "--agents",
        "dev",
        "--agent-command",
        stubborn,
    ]);
    let pid: u32 = t
        .tmux_ok(&["display-message", "-p", "-t", "Stub:dev", "#{pane_pid}"])
        .trim()
        .parse()
        .unwrap();
    wait_until("the agent to run", || {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    });
    t.ok(&["kill", "Stub"]);
    // Nothing of its process group is left running (zombies aside: this
    // machine's init may not reap them).
    let live_in_group = || {
        fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[2] == pid.to_string() && f[0] != "Z"
        })
    };
    assert!(!live_in_group(), "the agent outlived `agency kill`");
}
