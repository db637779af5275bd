//! Real agent CLIs — Claude Code, Codex, Gemini CLI and Aider — run
//! offline in an agency against the API stand-in: briefing, readiness, submission, status
//! and the permission prompt, checked by what reached the model.
//!
//! They come from the npm registry and PyPI (`.ci/run` installs pinned
//! versions under `target/agent-clis`), found by `AGENCY_TEST_CLAUDE` /
//! `AGENCY_TEST_CODEX` / `AGENCY_TEST_GEMINI` / `AGENCY_TEST_AIDER` or
//! there. Without one, its
//! test says so and passes, unless `AGENCY_TEST_REQUIRE_CLIS` names it
//! (`.ci/run` names each one it installed).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::{wait_for, TestEnv};
use crate::standin::{last_user, text_of, Standin};

/// `program` at `target/agent-clis/<at>` (or where `var` says).
fn installed(program: &str, at: &str, var: &str) -> Option<PathBuf> {
    let found = std::env::var_os(var).map(PathBuf::from).or_else(|| {
        let p = clis_dir().join(at);
        p.exists().then_some(p)
    });
    if found.is_none() {
        let required = std::env::var("AGENCY_TEST_REQUIRE_CLIS").unwrap_or_default();
        if required.split_whitespace().any(|r| r == program) {
            panic!("{program} is required (AGENCY_TEST_REQUIRE_CLIS) but not installed");
        }
        eprintln!("skipped: {program} is not installed (see .ci/run)");
    }
    found
}

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

/// Runs the scenario with a CLI installed at `target/agent-clis/<at>`:
/// `command` prepares its home (an empty folder) and gives the agent
/// command for a stand-in on `port`; `approve` are the keys that allow its
/// tool call.
fn live(
    program: &str,
    at: &str,
    var: &str,
    approve: &[&str],
    command: impl FnOnce(&TestEnv, &Path, &Path, u16) -> String,
) {
    let Some(bin) = installed(program, at, var) else {
        return;
    };
    let t = TestEnv::new();
    let standin = Standin::start();
    let home = t.root().join("agent-home");
    fs::create_dir_all(&home).unwrap();
    let cmd = command(&t, &bin, &home, standin.port);
    scenario(&t, &standin, &cmd, approve);
}

#[test]
fn claude_code_is_briefed_then_gets_each_message_once_and_never_in_a_prompt() {
    live(
        "claude",
        "node_modules/.bin/claude",
        "AGENCY_TEST_CLAUDE",
        &["1"],
        claude_command,
    );
}

#[test]
fn gemini_cli_is_briefed_then_gets_each_message_once_and_never_in_a_prompt() {
    // Gemini CLI drops an Enter that comes right behind typed or pasted
    // text: every message here also tests that the router submits again.
    live(
        "gemini",
        "node_modules/.bin/gemini",
        "AGENCY_TEST_GEMINI",
        &["Enter"],
        gemini_command,
    );
}

#[test]
fn codex_is_briefed_then_gets_each_message_once_and_never_in_a_prompt() {
    // Codex, too, can take an Enter right behind typed text as a new line:
    // the router's second press submits it.
    live(
        "codex",
        "node_modules/.bin/codex",
        "AGENCY_TEST_CODEX",
        &["y"],
        codex_command,
    );
}

#[test]
fn aider_is_briefed_then_gets_each_message_once_and_never_in_a_prompt() {
    live(
        "aider",
        "aider-venv/bin/aider",
        "AGENCY_TEST_AIDER",
        &["y", "Enter"],
        aider_command,
    );
}

const CLAUDE_KEY: &str = "sk-ant-api03-standin-0000000000000000000000000000000000000000";

/// Claude Code with onboarding done, the stand-in's key approved, the
/// workspace trusted.
fn claude_command(t: &TestEnv, claude: &Path, home: &Path, port: u16) -> String {
    let trusted = json!({"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true});
    let config = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "numStartups": 3,
        "customApiKeyResponses": {"approved": [&CLAUDE_KEY[CLAUDE_KEY.len() - 20..]], "rejected": []},
        "projects": { t.home.display().to_string(): trusted },
    });
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
    let trusted = json!({ t.home.display().to_string(): "TRUST_FOLDER" });
    fs::write(dot.join("trustedFolders.json"), trusted.to_string()).unwrap();
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
    fs::write(
        home.join(".codex/config.toml"),
        format!(
            "model = \"gpt-standin\"\nmodel_provider = \"standin\"\n\
             approval_policy = \"on-request\"\nsandbox_mode = \"read-only\"\n\n\
             [model_providers.standin]\nname = \"standin\"\n\
             base_url = \"http://127.0.0.1:{port}/v1\"\nwire_api = \"responses\"\n\
             env_key = \"OPENAI_API_KEY\"\n\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
            t.home.display()
        ),
    )
    .unwrap();
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

/// An agency `Live` whose `dev` runs `cmd` (its coordinator a shell);
/// `approve` are the keys a human presses to allow the tool call.
fn scenario(t: &TestEnv, standin: &Standin, cmd: &str, approve: &[&str]) {
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
        .ok(&["send", "Live", "dev", "TASK reply with one word"])
        .trim()
        .to_string();
    let task_head = format!("[msg #{task} TASK from human] TASK reply with one word");
    // Deadlines, not delays: generous for a CLI starting on a busy machine.
    let long = Duration::from_secs(120);
    let shown = DumpOnPanic(t);
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
    t.ok(&["send", "Live", "dev", "NOTE SLOW thinking"]);
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
    t.ok(&["send", "Live", "dev", "TASK TOOL make a file"]);
    wait_for("the permission prompt", long, || {
        state(t, "dev") == "waiting"
    });
    let shown_status = t.ok(&["status", "Live"]);
    assert!(
        shown_status.contains("waits for you at a prompt: agency attach Live dev"),
        "{shown_status}"
    );
    let held = t
        .ok(&["send", "Live", "dev", "NOTE after the prompt"])
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
    let mut keys = vec!["send-keys", "-t", "Live:dev"];
    keys.extend(approve);
    t.tmux_ok(&keys); // the human says yes
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

/// When the scenario fails: what the agents' panes show and what the
/// router said, to tell a slow CLI from a stuck one.
struct DumpOnPanic<'a>(&'a TestEnv);

impl Drop for DumpOnPanic<'_> {
    fn drop(&mut self) {
        let t = self.0;
        let screen = t.tmux(&["capture-pane", "-p", "-t", "Live:dev"]);
        eprintln!("--- dev:\n{}", String::from_utf8_lossy(&screen.stdout));
        let status = t.run(&["status", "Live"]);
        eprintln!("--- status:\n{}", String::from_utf8_lossy(&status.stdout));
        let log = fs::read_to_string(t.home.join("registry/router.log")).unwrap_or_default();
        eprintln!("--- router.log:\n{log}");
        let inbox = t.run(&["inbox", "Live", "dev", "--all"]);
        eprintln!("--- inbox:\n{}", String::from_utf8_lossy(&inbox.stdout));
    }
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
