//! Real agent CLIs — Claude Code, Codex, Gemini CLI and Aider — run
//! offline in an agency against the API stand-in: briefing, readiness,
//! submission, status and the permission prompt, checked by what reached
//! the model.
//!
//! They come from the npm registry and PyPI (`.ci/run` installs pinned
//! versions under `target/agent-clis`), found by `AGENCY_TEST_CLAUDE` /
//! `AGENCY_TEST_CODEX` / `AGENCY_TEST_GEMINI` / `AGENCY_TEST_AIDER` or
//! there. A test whose CLI is missing is reported as *ignored*, with the
//! reason on the first line of the run (`cargo test` counts it in its
//! "N ignored"), never as passed; one that `AGENCY_TEST_REQUIRE_CLIS`
//! names (`.ci/run` names each one it installed) fails instead.
//!
//! This binary has its own harness (libtest-mimic), because libtest can
//! only ignore a test by an attribute fixed at compile time.

// Tests start the programs they drive.
#![allow(clippy::disallowed_methods)]

#[path = "cli/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "cli/standin.rs"]
#[allow(dead_code)]
mod standin;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::json;

use common::TestEnv;
use standin::{last_user, text_of, Standin};

/// Polls `pred` until it holds or `limit` passes, looking five times a
/// second: each look runs `agency status`, and the agent CLIs under test
/// share the machine's cores with it.
fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if pred() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

type Command = fn(&TestEnv, &Path, &Path, u16) -> String;
/// A scenario run with one CLI.
type Scenario = fn(&Cli, &Path) -> Result<(), Failed>;

/// One agent CLI under test.
struct Cli {
    test: &'static str,
    /// The outbound scenario's name (see `outbound`).
    outbound: &'static str,
    program: &'static str,
    /// Where `.ci/run` installs it, under `target/agent-clis`.
    at: &'static str,
    var: &'static str,
    /// Aider cannot pre-approve agency's commands, and asks whether to
    /// keep a command's output.
    aider: bool,
    command: Command,
}

const CLIS: &[Cli] = &[
    Cli {
        test: "claude_code_is_briefed_then_gets_each_message_once_and_never_in_a_prompt",
        outbound: "claude_code_reports_through_the_bus_by_itself_and_asks_for_the_rest",
        program: "claude",
        at: "node_modules/.bin/claude",
        var: "AGENCY_TEST_CLAUDE",
        aider: false,
        command: claude_command,
    },
    // Gemini CLI drops an Enter that comes right behind typed or pasted
    // text: every message here also tests that the router submits again.
    Cli {
        test: "gemini_cli_is_briefed_then_gets_each_message_once_and_never_in_a_prompt",
        outbound: "gemini_cli_reports_through_the_bus_by_itself_and_asks_for_the_rest",
        program: "gemini",
        at: "node_modules/.bin/gemini",
        var: "AGENCY_TEST_GEMINI",
        aider: false,
        command: gemini_command,
    },
    // Codex, too, can take an Enter right behind typed text as a new line:
    // the router's second press submits it.
    Cli {
        test: "codex_is_briefed_then_gets_each_message_once_and_never_in_a_prompt",
        outbound: "codex_reports_through_the_bus_by_itself_and_asks_for_the_rest",
        program: "codex",
        at: "node_modules/.bin/codex",
        var: "AGENCY_TEST_CODEX",
        aider: false,
        command: codex_command,
    },
    // Aider has no way to pre-approve some commands: under `bus` it asks
    // for agency's too, and `agency answer` lets them through.
    Cli {
        test: "aider_is_briefed_then_gets_each_message_once_and_never_in_a_prompt",
        outbound: "aider_asks_before_each_command_and_is_answered_from_outside",
        program: "aider",
        at: "aider-venv/bin/aider",
        var: "AGENCY_TEST_AIDER",
        aider: true,
        command: aider_command,
    },
];

/// Where the CLIs are installed: `AGENCY_TEST_CLIS` (e.g.
/// `target/agent-clis-latest`, see `.ci/live-latest`), else the pinned ones
/// in `target/agent-clis`.
fn clis_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("AGENCY_TEST_CLIS").filter(|v| !v.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target/agent-clis"),
    }
}

/// The CLI's path, if installed (at `target/agent-clis/<at>`, or where
/// its variable says).
fn installed(cli: &Cli) -> Option<PathBuf> {
    std::env::var_os(cli.var).map(PathBuf::from).or_else(|| {
        let p = clis_dir().join(cli.at);
        p.exists().then_some(p)
    })
}

fn required(program: &str) -> bool {
    std::env::var("AGENCY_TEST_REQUIRE_CLIS")
        .unwrap_or_default()
        .split_whitespace()
        .any(|r| r == program)
}

fn main() {
    let mut args = Arguments::from_args();
    // They mostly wait on the CLIs: four at once, unless told.
    args.test_threads.get_or_insert(CLIS.len());
    let mut missing = Vec::new();
    let mut trials: Vec<Trial> = Vec::new();
    for cli in CLIS {
        let bin = installed(cli);
        let ignored = bin.is_none() && !required(cli.program);
        if bin.is_none() {
            missing.push(cli.program);
        }
        let scenarios: [(&str, Scenario); 2] = [(cli.test, live), (cli.outbound, live_outbound)];
        for (name, run) in scenarios {
            let bin = bin.clone();
            trials.push(
                Trial::test(name, move || match bin {
                    Some(bin) => run(cli, &bin),
                    None => Err(Failed::from(format!(
                        "{} is required (AGENCY_TEST_REQUIRE_CLIS) but not installed at target/agent-clis/{} or ${}",
                        cli.program, cli.at, cli.var
                    ))),
                })
                .with_ignored_flag(ignored),
            );
        }
    }
    if !missing.is_empty() && !args.list {
        // Before the list of results, where it is seen.
        println!(
            "live agent tests: {} not installed: ignored, not passed (`bash .ci/run` installs them under target/agent-clis)",
            missing.join(", ")
        );
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Runs the scenario with the CLI at `bin`: its `command` prepares its home
/// (an empty folder) and gives the agent command for a stand-in on `port`.
fn live(cli: &Cli, bin: &Path) -> Result<(), Failed> {
    let t = TestEnv::new();
    let standin = Standin::start();
    let home = t.root().join("agent-home");
    fs::create_dir_all(&home).unwrap();
    let cmd = (cli.command)(&t, bin, &home, standin.port);
    scenario(&t, &standin, &cmd);
    Ok(())
}

/// Runs the outbound scenario with the CLI at `bin`.
fn live_outbound(cli: &Cli, bin: &Path) -> Result<(), Failed> {
    // A git project: each specialist works in its own worktree.
    let (t, _project) = TestEnv::with_project();
    let standin = Standin::start();
    let mut cmds = Vec::new();
    for agent in ["dev", "qa"] {
        let home = t.root().join(format!("home-{agent}"));
        fs::create_dir_all(&home).unwrap();
        cmds.push((cli.command)(&t, bin, &home, standin.port));
    }
    outbound(&t, &standin, &cmds[0], &cmds[1], cli.aider);
    Ok(())
}

const CLAUDE_KEY: &str = "sk-ant-api03-standin-0000000000000000000000000000000000000000";

/// The folders the agents of the live tests work in, which their CLIs
/// trust (as a user would have said once): the workspace, the project,
/// and the specialists' worktrees.
fn trusted_folders(t: &TestEnv) -> Vec<String> {
    let mut dirs = vec![t.home.clone(), t.root().join("project")];
    for agent in ["dev", "qa"] {
        dirs.push(t.home.join("agencies/Loop/worktrees").join(agent));
    }
    dirs.iter().map(|d| d.display().to_string()).collect()
}

/// Claude Code with onboarding done, the stand-in's key approved, the
/// workspace trusted, and its permission prompts on: the newest releases
/// default to "auto mode" (a model judges each command), which a user can
/// turn off, as here.
fn claude_command(t: &TestEnv, claude: &Path, home: &Path, port: u16) -> String {
    let trusted = json!({"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true});
    let projects: serde_json::Map<String, serde_json::Value> = trusted_folders(t)
        .into_iter()
        .map(|d| (d, trusted.clone()))
        .collect();
    let config = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "numStartups": 3,
        "customApiKeyResponses": {"approved": [&CLAUDE_KEY[CLAUDE_KEY.len() - 20..]], "rejected": []},
        "projects": projects,
    });
    fs::create_dir_all(home.join(".claude")).unwrap();
    fs::write(
        home.join(".claude/settings.json"),
        json!({"permissions": {"defaultMode": "default", "disableAutoMode": "disable"}})
            .to_string(),
    )
    .unwrap();
    fs::write(home.join(".claude.json"), config.to_string()).unwrap();
    format!(
        "env HOME={} ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_API_KEY={CLAUDE_KEY} \
         DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 {}",
        home.display(),
        claude.display()
    )
}

/// Gemini CLI that picked API-key sign-in and trusts the workspace.
fn gemini_command(t: &TestEnv, gemini: &Path, home: &Path, port: u16) -> String {
    let dot = home.join(".gemini");
    fs::create_dir_all(&dot).unwrap();
    let settings = json!({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
        "privacy": {"usageStatisticsEnabled": false},
    });
    fs::write(dot.join("settings.json"), settings.to_string()).unwrap();
    let trusted: serde_json::Map<String, serde_json::Value> = trusted_folders(t)
        .into_iter()
        .map(|d| (d, json!("TRUST_FOLDER")))
        .collect();
    fs::write(
        dot.join("trustedFolders.json"),
        serde_json::Value::from(trusted).to_string(),
    )
    .unwrap();
    format!(
        "env HOME={} GEMINI_API_KEY=standin GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:{port} {}",
        home.display(),
        gemini.display()
    )
}

/// Codex with a model provider pointing at the stand-in (it ignores
/// OPENAI_BASE_URL) and the workspace trusted; commands outside its
/// read-only sandbox need approval. `--no-daemon`, as the profile launches
/// it: no background server outlives the test.
fn codex_command(t: &TestEnv, codex: &Path, home: &Path, port: u16) -> String {
    fs::create_dir_all(home.join(".codex")).unwrap();
    let mut config = format!(
        "model = \"gpt-standin\"\nmodel_provider = \"standin\"\n\
         approval_policy = \"on-request\"\nsandbox_mode = \"read-only\"\n\n\
         [model_providers.standin]\nname = \"standin\"\n\
         base_url = \"http://127.0.0.1:{port}/v1\"\nwire_api = \"responses\"\n\
         env_key = \"OPENAI_API_KEY\"\n"
    );
    for dir in trusted_folders(t) {
        config.push_str(&format!(
            "\n[projects.\"{dir}\"]\ntrust_level = \"trusted\"\n"
        ));
    }
    fs::write(home.join(".codex/config.toml"), config).unwrap();
    format!(
        "env HOME={} OPENAI_API_KEY=sk-standin {} --no-daemon",
        home.display(),
        codex.display()
    )
}

/// Aider with its start-up questions (make a git repo? see the release
/// notes?) turned off; the one about running a shell command stays.
fn aider_command(_: &TestEnv, aider: &Path, home: &Path, port: u16) -> String {
    format!(
        "env HOME={} {} --openai-api-base http://127.0.0.1:{port}/v1 --openai-api-key standin \
         --model openai/gpt-4o --no-git --no-show-model-warnings --no-check-update \
         --analytics-disable --no-show-release-notes",
        home.display(),
        aider.display()
    )
}

fn turns_saying(s: &Standin, needle: &str) -> usize {
    s.turns()
        .iter()
        .filter(|r| text_of(&last_user(r)).contains(needle))
        .count()
}

/// An agency `Live` whose `dev` runs `cmd` (its coordinator a shell); its
/// permission prompt is answered with `agency answer`.
fn scenario(t: &TestEnv, standin: &Standin, cmd: &str) {
    // Made, stopped, given its agent CLI in agency.json, started again.
    t.ok(&["create", "Live", "--agents", "dev"]);
    t.ok(&["kill", "Live"]);
    let spec_path = t.home.join("agencies/Live/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["agents"][0]["command"] = json!(cmd);
    fs::write(&spec_path, spec.to_string()).unwrap();
    t.ok(&["create", "Live"]);
    // Sent at once: the CLI is still starting.
    let task = t
        .ok(&["send", "-q", "Live", "dev", "TASK reply with one word"])
        .trim()
        .to_string();
    let task_head = format!("[msg #{task} TASK from human] TASK reply with one word");
    // Deadlines, not delays: generous for a CLI starting on a busy machine.
    let long = Duration::from_secs(120);
    let shown = DumpOnPanic(t, "Live", &["dev"]);
    let mut looked = std::time::Instant::now();
    wait_for("the task to reach the model", long, || {
        // A CLI that quit fails here, not at the deadline.
        if looked.elapsed() > Duration::from_secs(1) {
            looked = std::time::Instant::now();
            assert_ne!(state(t, "dev"), "exited", "the agent CLI exited");
        }
        turns_saying(standin, &task_head) > 0
    });
    // The briefing came first, whole: the role file as pasted lines.
    let role = fs::read_to_string(t.home.join("agencies/Live/agents/dev.md")).unwrap();
    let last_line = role.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    let turns = standin.turns();
    let briefed = turns
        .iter()
        .position(|r| {
            let said = text_of(&last_user(r));
            said.contains("BRIEFING from agency]") && said.contains(last_line.trim())
        })
        .expect("the whole briefing reached the model");
    let tasked = turns
        .iter()
        .position(|r| text_of(&last_user(r)).contains(&task_head))
        .unwrap();
    assert!(briefed < tasked, "briefing after the task");
    assert_eq!(turns_saying(standin, &task_head), 1, "the task twice");
    assert_eq!(turns_saying(standin, "BRIEFING from agency]"), 1);
    wait_for("dev to be idle", long, || state(t, "dev") == "idle");

    // Busy while the model is slow to answer.
    t.ok(&["send", "-q", "Live", "dev", "NOTE SLOW thinking"]);
    let mut seen = Vec::new();
    wait_for("dev to be busy", long, || {
        let s = state(t, "dev");
        if seen.last() != Some(&s) {
            eprintln!(
                "dev: {s}\n{}",
                t.tmux_ok(&["capture-pane", "-p", "-t", "Live:dev"])
            );
            seen.push(s.clone());
        }
        s == "busy"
    });
    wait_for("dev to be idle again", long, || state(t, "dev") == "idle");

    // A permission prompt: the agent waits, and a message sent meanwhile
    // is held back until a human has answered it.
    t.ok(&["send", "-q", "Live", "dev", "TASK TOOL make a file"]);
    wait_for("the permission prompt", long, || {
        state(t, "dev") == "waiting"
    });
    let shown_status = t.ok(&["status", "Live"]);
    assert!(
        shown_status.contains(&format!(
            "waits for you at a prompt: {me} answer Live dev yes --if-asks ",
            me = env!("CARGO_BIN_EXE_agency")
        )) && shown_status.contains("asks: ")
            && shown_status.contains("touch made-by-agent.txt"),
        "{shown_status}"
    );
    let answer_yes = answer_command(&shown_status);
    let held = t
        .ok(&["send", "-q", "Live", "dev", "NOTE after the prompt"])
        .trim()
        .to_string();
    // It stays queued while the router looks again, tick after tick.
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let before = inbox_state(t, &held);
        let now = state(t, "dev");
        if before != "queued" || now != "waiting" {
            panic!(
                "typed into the permission prompt? held #{held}: {before}, dev {now}:\n{}",
                t.tmux_ok(&["capture-pane", "-p", "-t", "Live:dev"])
            );
        }
    }
    // The human says yes: the command status printed, pasted.
    t.ok(&answer_yes.iter().map(String::as_str).collect::<Vec<_>>());
    let held_head = format!("[msg #{held} NOTE from human] NOTE after the prompt");
    wait_for("the held message to reach the model", long, || {
        turns_saying(standin, &held_head) == 1
    });
    assert!(
        t.home.join("made-by-agent.txt").is_file(),
        "the tool did not run"
    );
    assert_eq!(turns_saying(standin, &held_head), 1);
    assert_eq!(turns_saying(standin, &task_head), 1);

    // Stopped and started again: a new process, briefed again.
    t.ok(&["kill", "Live"]);
    t.ok(&["create", "Live"]);
    wait_for("the second briefing", long, || {
        turns_saying(standin, "BRIEFING from agency]") == 2
    });
    // What the router had to submit again (see the closing notes).
    let log = fs::read_to_string(t.home.join("registry/router.log")).unwrap_or_default();
    eprintln!(
        "resubmitted: {:?}",
        log.lines()
            .filter(|l| l.contains("again"))
            .collect::<Vec<_>>()
    );
    std::mem::forget(shown);
}

/// An agency `Loop` whose coordinator is a shell (its messages wait in its
/// inbox) and whose `dev` (permissions `bus`, the default) and `qa`
/// (`ask`) run the CLI. Each is told to run `agency send` to report, as its
/// briefing teaches; `dev` then a command that is not agency's.
fn outbound(t: &TestEnv, standin: &Standin, dev: &str, qa: &str, aider: bool) {
    t.ok(&["create", "Loop", "--agents", "dev,qa"]);
    t.ok(&["kill", "Loop"]);
    let spec_path = t.home.join("agencies/Loop/agency.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["agents"][0]["command"] = json!(dev);
    spec["agents"][1]["command"] = json!(qa);
    spec["agents"][1]["permissions"] = json!("ask");
    fs::write(&spec_path, spec.to_string()).unwrap();
    t.ok(&["create", "Loop"]);
    let shown = DumpOnPanic(t, "Loop", &["dev", "qa"]);
    let long = Duration::from_secs(120);
    let report = |agent: &str, task: &str| {
        format!("RUN: agency send Loop coordinator \"COMPLETE {agent}: {task} done\"")
    };
    // Three messages at once while dev's CLI is still starting and its
    // briefing is still to be pasted.
    let mut heads = Vec::new();
    for body in [
        "NOTE one".to_string(),
        "NOTE two".to_string(),
        format!("TASK-7 {}", report("dev", "TASK-7")),
    ] {
        let id = t
            .ok(&["send", "-q", "Loop", "dev", &body])
            .trim()
            .to_string();
        let kind = body.split([' ', '-']).next().unwrap().to_string();
        heads.push(format!("[msg #{id} {kind} from human] {body}"));
    }
    t.ok(&[
        "send",
        "Loop",
        "qa",
        &format!("TASK-8 {}", report("qa", "TASK-8")),
    ]);
    let reported = |agent: &str, task: &str| {
        let want = format!("COMPLETE {agent}: {task} done");
        t.json(&["inbox", "Loop", "coordinator", "--all", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["from"] == format!("Loop/{agent}") && m["body"] == want.as_str())
    };
    let status = |agent: &str| -> serde_json::Value {
        let s = t.json(&["status", "Loop", "--json"]);
        s["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == agent)
            .cloned()
            .unwrap()
    };
    let waiting_on = |agent: &str, what: &str| {
        let mut looked = std::time::Instant::now();
        wait_for(&format!("{agent} to ask about {what}"), long, || {
            if looked.elapsed() > Duration::from_secs(1) {
                looked = std::time::Instant::now();
                assert_ne!(status(agent)["state"], "exited", "the agent CLI exited");
            }
            let s = status(agent);
            s["state"] == "waiting" && s["question"].as_str().is_some_and(|q| q.contains(what))
        });
    };

    // Aider then asks whether to add the command's output to the chat.
    let keep_no_output = |agent: &str| {
        if aider {
            waiting_on(agent, "Add command output to the chat?");
            t.ok(&["answer", "Loop", agent, "no"]);
        }
    };

    // `bus`: dev's own `agency send` reaches the coordinator, no keypress.
    if !aider {
        wait_for("dev's report", long, || {
            let s = status("dev");
            assert_ne!(s["state"], "waiting", "dev asked: {}", s["question"]);
            assert_ne!(s["state"], "exited", "the agent CLI exited");
            reported("dev", "TASK-7")
        });
    } else {
        waiting_on("dev", "agency send Loop coordinator");
        t.ok(&["answer", "Loop", "dev", "yes"]);
        wait_for("dev's report", long, || reported("dev", "TASK-7"));
    }
    keep_no_output("dev");
    // The briefing, then each message, each once and alone in its turn.
    let said: Vec<String> = standin
        .turns()
        .iter()
        .map(|r| text_of(&last_user(r)))
        .filter(|s| s.contains("[msg #"))
        .collect();
    let dev_briefing = "[msg #1 BRIEFING from agency]";
    let mut order = Vec::new();
    for head in std::iter::once(dev_briefing).chain(heads.iter().map(String::as_str)) {
        let turns: Vec<usize> = (0..said.len())
            .filter(|&i| said[i].contains(head))
            .collect();
        assert_eq!(
            turns.len(),
            1,
            "{head} reached the model {} times: {said:#?}",
            turns.len()
        );
        order.push(turns[0]);
    }
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order: {said:#?}"
    );

    // `ask`: qa waits; status shows what it asks; an answer lets it through.
    waiting_on("qa", "agency send Loop coordinator");
    let text = t.ok(&["status", "Loop"]);
    // Aider offers no "always"; the others remember it.
    let others = if aider { "(or no)" } else { "(or no, always)" };
    assert!(
        text.contains("asks: ")
            && text.contains("agency answer Loop qa yes --if-asks ")
            && text.contains(&format!(" {others}, or look: ")),
        "{text}"
    );
    assert!(!reported("qa", "TASK-8"), "sent before it was allowed");
    let choice = if aider { "yes" } else { "always" };
    let mut answer = answer_command(&text);
    let at = answer.iter().position(|w| w == "answer").unwrap() + 3;
    answer[at] = choice.to_string();
    answer.push("--json".into());
    let answered = t.json(&answer.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(answered["by"], "human");
    assert!(answered["question"]
        .as_str()
        .unwrap()
        .contains("agency send Loop coordinator"));
    wait_for("qa's report", long, || reported("qa", "TASK-8"));
    keep_no_output("qa");
    let log = t.json(&["log", "--agency", "Loop", "--json"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "answer"),
        "no answer event: {log}"
    );

    // Under `bus`, a command that is not agency's still asks; "no" keeps
    // it from running.
    wait_for("dev to be idle", long, || status("dev")["state"] == "idle");
    let err = t.fails(&["answer", "Loop", "dev", "yes"]);
    assert!(err.contains("not waiting at a prompt"), "{err}");
    t.ok(&["send", "Loop", "dev", "TASK-9 RUN: touch outside.txt"]);
    waiting_on("dev", "touch outside.txt");
    t.ok(&["answer", "Loop", "dev", "no"]);
    wait_for("dev to stop asking", long, || {
        status("dev")["state"] != "waiting"
    });
    assert!(!t.home.join("outside.txt").exists(), "ran although refused");
    std::mem::forget(shown);
}

/// When the scenario fails: what the agents' panes show and what the
/// router said, to tell a slow CLI from a stuck one.
struct DumpOnPanic<'a>(&'a TestEnv, &'a str, &'a [&'a str]);

impl Drop for DumpOnPanic<'_> {
    fn drop(&mut self) {
        let DumpOnPanic(t, agency, agents) = *self;
        for agent in agents {
            let screen = t.tmux(&["capture-pane", "-p", "-t", &format!("{agency}:{agent}")]);
            eprintln!("--- {agent}:\n{}", String::from_utf8_lossy(&screen.stdout));
        }
        let status = t.run(&["status", agency]);
        eprintln!("--- status:\n{}", String::from_utf8_lossy(&status.stdout));
        let log = fs::read_to_string(t.home.join("registry/router.log")).unwrap_or_default();
        eprintln!("--- router.log:\n{log}");
        for agent in agents.iter().chain(&["coordinator"]) {
            let inbox = t.run(&["inbox", agency, agent, "--all"]);
            eprintln!(
                "--- inbox {agent}:\n{}",
                String::from_utf8_lossy(&inbox.stdout)
            );
        }
    }
}

/// The `agency answer ...` command `status` printed for the one agent at
/// a prompt, as a shell reads it, without the program.
fn answer_command(status: &str) -> Vec<String> {
    let line = status
        .lines()
        .find_map(|l| l.split_once("waits for you at a prompt: "))
        .unwrap_or_else(|| panic!("no answer command: {status}"))
        .1;
    let line = &line[..line.rfind(", or look: ").unwrap()];
    let line = line.rfind(" (or ").map_or(line, |at| &line[..at]);
    let mut words = shlex::split(line).expect("the command pastes");
    words.remove(0);
    assert!(words.contains(&"answer".to_string()), "{status}");
    words
}

fn state(t: &TestEnv, agent: &str) -> String {
    let s = t.json(&["status", "Live", "--json"]);
    s["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent)
        .map(|a| a["state"].as_str().unwrap().to_string())
        .unwrap()
}

fn inbox_state(t: &TestEnv, id: &str) -> String {
    let inbox = t.json(&["inbox", "Live", "dev", "--all", "--json"]);
    inbox
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(id))
        .map(|m| m["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}
