//! `agency demo`: the whole system, offline, on scripted agents. A
//! throw-away workspace with a small git project; CodeAgency (coordinator +
//! `dev`) and QAAgency (coordinator + `tester`); one task in the task graph
//! flowing ready → claimed (the coordinator assigns it to `dev`) → implement
//! → handoff → QA tests → results → submit (the task goes to review), ending
//! with a tested item in the approval queue; approving it makes the task done.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::agency::{self, CreateOptions};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::ApprovalStatus;
use crate::os::git;
use crate::store::ApprovalRow;
use crate::tasks;
use crate::workspace::{self, write_atomic, Workspace};

/// How long the flow may go without a step (an event) before the demo gives
/// up: a slow machine takes longer over all, but keeps moving.
const DEADLINE: Duration = Duration::from_secs(120);

const TEST_SH: &str = r#"#!/bin/sh
# The project's tests: every tests/*.sh calls `check NAME ACTUAL EXPECTED`.
passed=0; failed=0
check() {
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $1: got '$2'"; fi
}
for t in tests/*.sh; do . "./$t"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
"#;

const IMPLEMENT_SH: &str = r#"#!/bin/sh
# dev's work, run in its own worktree on its own branch.
set -e
cat > greet.sh <<'EOF'
#!/bin/sh
echo "hello, ${1:-world}"
EOF
cat > tests/greet.sh <<'EOF'
check "greet says hello" "$(sh greet.sh agency)" "hello, agency"
check "greet has a default" "$(sh greet.sh)" "hello, world"
EOF
git add -A
git -c user.name=dev -c user.email=dev@agency.local commit -qm "greet: say hello"
agency send "$AGENCY_NAME" coordinator "COMPLETE task $1 on $AGENCY_BRANCH"
"#;

const QA_TEST_SH: &str = r#"#!/bin/sh
# tester's work: run the branch's tests in the sandbox, report the results.
branch=$1 task=$2
if agency sandbox deploy CodeAgency "$branch" --json | grep -q '"passed": true'; then
  status=passed
else
  status=issues_found
fi
agency send-inter QAAgency CodeAgency "{\"type\": \"results\", \"task\": \"$task\", \"branch\": \"$branch\", \"status\": \"$status\", \"summary\": \"task $task $status\"}"
"#;

const CODE_COORDINATOR: &str = r#"# CodeAgency's coordinator.
# A ready task (the TASK message names its id) is assigned to dev.
[[rule]]
type = "TASK"
when = 'task #(?P<task>\d+) ready'
run = ['agency task claim "$MSG_TASK" --agent CodeAgency/dev']

# dev's branch goes to QA; the handoff's --task is a label here, so the task
# stays with CodeAgency (a task id would move it to QAAgency).
[[rule]]
type = "COMPLETE"
when = 'task (?P<task>\d+) on (?P<branch>\S+)'
run = ['agency handoff CodeAgency QAAgency --task greeting --branch "$MSG_BRANCH" --notes "task $MSG_TASK on $MSG_BRANCH: tests in tests/greet.sh"']

# Passed QA: submitted under the task's id, which puts the task in review.
[[rule]]
type = "results"
when = '"summary":"task (?P<task>\d+) passed"'
run = ['agency submit CodeAgency --task "$MSG_TASK" --branch agency/CodeAgency/dev']

[[rule]]
type = "results"
when = '"summary":"task (?P<task>\d+) '
run = ['agency task block "$MSG_TASK" --note "QA found issues; see the handoff results"']
"#;

const DEV: &str = r#"# CodeAgency's dev.
[[rule]]
type = "TASK"
when = 'task #(?P<task>\d+) assigned'
run = ['sh "$AGENCY_HOME/demo/implement.sh" "$MSG_TASK"']
"#;

const QA_COORDINATOR: &str = r#"# QAAgency's coordinator.
[[rule]]
type = "handoff"
when = '"notes":"task (?P<task>\d+) on (?P<branch>[^ :"]+)'
run = ['agency send QAAgency tester "TASK test $MSG_BRANCH for task $MSG_TASK"']
"#;

const TESTER: &str = r#"# QAAgency's tester.
[[rule]]
type = "TASK"
when = 'test (?P<branch>\S+) for task (?P<task>\d+)'
run = ['sh "$AGENCY_HOME/demo/qa-test.sh" "$MSG_BRANCH" "$MSG_TASK"']
"#;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    pub home: PathBuf,
    pub socket: Option<String>,
    /// The demo's task (in review: approving the item makes it done).
    pub task: i64,
    pub item: ApprovalRow,
    pub seconds: f64,
}

/// The demo's agencies: tmux sessions of these names are its own.
const AGENCIES: [&str; 2] = ["CodeAgency", "QAAgency"];

/// Builds the demo workspace at `home` (a new temp folder when `None`),
/// runs the flow, and returns once a tested item is pending. `progress`
/// hears of each event on the way. If it cannot be built, nothing of it is
/// left: no folder, no session.
pub fn run(home: Option<&Path>, mut progress: impl FnMut(&str)) -> Result<(Ctx, DemoReport)> {
    let start = Instant::now();
    let home = match home {
        Some(h) => {
            if h.exists()
                && fs::read_dir(h)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                return Err(Error::user(
                    format!("{} is not empty", h.display()),
                    "the demo builds a throw-away workspace: give it a new folder, or no --home",
                ));
            }
            h.to_path_buf()
        }
        None => tempfile::Builder::new()
            .prefix("agency-demo-")
            .tempdir()
            .map_err(|e| Error::io("a temporary folder", e))?
            .keep(),
    };
    // Its own tmux server, so it never meets the user's sessions; on the
    // user's (AGENCY_TMUX_SOCKET), an earlier demo's sessions are in the way.
    let socket = match std::env::var("AGENCY_TMUX_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(s) => {
            if let Err(e) = check_free(&s) {
                let _ = fs::remove_dir_all(&home);
                return Err(e);
            }
            None
        }
        None => Some(format!("agency-demo-{}", std::process::id())),
    };
    progress("building a throw-away workspace with a small git project ...");
    let ctx = match build(&home, socket.as_deref(), &mut progress) {
        Ok(ctx) => ctx,
        Err(e) => {
            // Half a demo is no use: its sessions and folder go.
            let tmux = crate::os::tmux::Tmux::new(
                socket
                    .clone()
                    .or_else(|| std::env::var("AGENCY_TMUX_SOCKET").ok()),
            );
            let root = fs::canonicalize(&home).unwrap_or(home.clone());
            for name in AGENCIES {
                let ours = tmux.list_panes().is_ok_and(|p| {
                    p.iter()
                        .any(|p| p.session == name && Path::new(&p.agency_home) == root)
                });
                if ours {
                    let _ = tmux.kill_session(name);
                }
            }
            let _ = fs::remove_dir_all(&home);
            return Err(e);
        }
    };
    flow(ctx, socket, start, progress)
}

/// Refuses a tmux server that already has a session named like one of the
/// demo's agencies, before anything is made.
fn check_free(socket: &str) -> Result<()> {
    let panes = crate::os::tmux::Tmux::new(Some(socket.to_string())).list_panes()?;
    let taken: Vec<&str> = AGENCIES
        .into_iter()
        .filter(|a| panes.iter().any(|p| p.session == *a))
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    // An earlier demo's workspace is on its sessions: its own clean-up.
    let homes: Vec<&str> = panes
        .iter()
        .filter(|p| taken.contains(&p.session.as_str()) && Path::new(&p.agency_home).is_dir())
        .map(|p| p.agency_home.as_str())
        .collect();
    let me = workspace::program();
    let clean = match homes.first() {
        Some(h) if homes.iter().all(|x| x == h) => {
            let ws = format!("{me} --home {}", workspace::quote(h));
            let kills: Vec<String> = taken.iter().map(|t| format!("{ws} kill {t}")).collect();
            // The router may still write into the folder: stop it first.
            format!(
                "{} && {ws} router --stop && rm -rf {}",
                kills.join(" && "),
                workspace::quote(h)
            )
        }
        _ => taken
            .iter()
            .map(|t| format!("tmux -L {} kill-session -t {t}", workspace::quote(socket)))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(Error::user(
        format!(
            "the tmux server {socket:?} (AGENCY_TMUX_SOCKET) already has a session {}; nothing was made",
            taken.join(" and ")
        ),
        format!(
            "an earlier demo? clean it up: {clean} — or run the demo without AGENCY_TMUX_SOCKET: it then has a tmux server of its own"
        ),
    ))
}

/// The workspace, its project, the scripted agents' rules, and the two
/// agencies up.
fn build(home: &Path, socket: Option<&str>, progress: &mut impl FnMut(&str)) -> Result<Ctx> {
    let project = home.join("project");
    git::init_repo(
        &project,
        "main",
        &[
            ("README.md", "# demo project\n\nRun `sh test.sh`.\n"),
            ("test.sh", TEST_SH),
            (
                "tests/basic.sh",
                "check \"arithmetic\" \"$((1 + 1))\" \"2\"\n",
            ),
        ],
        "init: a project with one test",
    )?;
    workspace::init(home, Some(&project))?;
    configure(home, socket)?;
    write_agencies(home)?;
    let ws = Workspace::open(fs::canonicalize(home).map_err(|e| Error::io(home.display(), e))?)?;
    let mut ctx = Ctx::open(ws)?;
    for name in AGENCIES {
        agency::create(
            &mut ctx,
            &CreateOptions {
                name: name.into(),
                ..Default::default()
            },
        )?;
        progress(&format!("agency {name} is up"));
    }
    Ok(ctx)
}

/// The demo's `agency.toml`: its project's test command, and the tmux
/// server it runs on (`socket`; none: the default server's own).
fn configure(home: &Path, socket: Option<&str>) -> Result<()> {
    let config = home.join(workspace::CONFIG_FILE);
    let text = fs::read_to_string(&config).map_err(|e| Error::io(config.display(), e))?;
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("test_command =") {
                "test_command = \"sh test.sh\"".to_string()
            } else if l.starts_with("socket =") {
                format!("socket = \"{}\"", socket.unwrap_or_default())
            } else {
                l.to_string()
            }
        })
        .collect();
    write_atomic(&config, (text.join("\n") + "\n").as_bytes())?;
    Ok(())
}

/// The scripted agents' rules (in `demo/`) and the two agencies' folders,
/// every agent run by the scripted agent on its rules.
fn write_agencies(home: &Path) -> Result<()> {
    let demo = home.join("demo");
    for (name, text) in [
        ("implement.sh", IMPLEMENT_SH),
        ("qa-test.sh", QA_TEST_SH),
        ("code-coordinator.toml", CODE_COORDINATOR),
        ("dev.toml", DEV),
        ("qa-coordinator.toml", QA_COORDINATOR),
        ("tester.toml", TESTER),
    ] {
        write_atomic(&demo.join(name), text.as_bytes())?;
    }
    // AGENCY_BIN is this binary, in every pane's environment.
    let scripted = |rules: &str| {
        format!(
            "\"$AGENCY_BIN\" agent scripted --rules {}",
            demo.join(rules).display()
        )
    };
    for (name, caps, coordinator, agent) in [
        (
            "CodeAgency",
            ["backend", "code-review"],
            "code-coordinator",
            "dev",
        ),
        ("QAAgency", ["testing", "qa"], "qa-coordinator", "tester"),
    ] {
        let dir = home.join("agencies").join(name);
        let spec = json!({
            "name": name,
            "description": format!("{name} of the offline demo, run by scripted agents"),
            "template": name,
            "capabilities": caps,
            "coordinator": {"name": coordinator, "title": "Coordinator", "role_file": "coordinator.md",
                            "command": scripted(&format!("{coordinator}.toml"))},
            "agents": [{"name": agent, "title": agent, "role_file": format!("agents/{agent}.md"),
                        "command": scripted(&format!("{agent}.toml")), "worktree": agent == "dev"}],
        });
        write_atomic(&dir.join("agency.json"), format!("{spec:#}\n").as_bytes())?;
        write_atomic(
            &dir.join("coordinator.md"),
            format!("# {name} coordinator (scripted)\n\nRules: demo/{coordinator}.toml\n")
                .as_bytes(),
        )?;
        write_atomic(
            &dir.join("agents").join(format!("{agent}.md")),
            format!("# {agent} of {name} (scripted)\n\nRules: demo/{agent}.toml\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Adds the demo's task and follows it to the approval queue.
fn flow(
    mut ctx: Ctx,
    socket: Option<String>,
    start: Instant,
    mut progress: impl FnMut(&str),
) -> Result<(Ctx, DemoReport)> {
    let mut seen = ctx.store.events_after(None, 0)?.last().map_or(0, |e| e.id);
    let task = tasks::add(
        &mut ctx,
        &tasks::AddRequest {
            title: "Add a greeting script".into(),
            body: "greet.sh says hello (to $1, else the world), with tests in tests/".into(),
            agency: Some("CodeAgency".into()),
            ..Default::default()
        },
    )?
    .id;
    progress(&format!("task {task} added for CodeAgency"));

    let mut moved = Instant::now();
    loop {
        // The item is queued, then its task moves to review in a
        // transaction of its own: both are waited for, then told.
        let pending = ctx.store.approvals(Some(ApprovalStatus::Pending))?.pop();
        let in_review = ctx.store.task(task)?.is_some_and(|t| t.state == "review");
        for e in ctx.store.events_after(None, seen)? {
            seen = e.id;
            moved = Instant::now();
            if let Some(line) = describe(&e) {
                progress(&line);
            }
        }
        if let Some(item) = pending.filter(|_| in_review) {
            let report = DemoReport {
                home: ctx.ws.root.clone(),
                socket,
                task,
                item,
                seconds: start.elapsed().as_secs_f64(),
            };
            return Ok((ctx, report));
        }
        if moved.elapsed() > DEADLINE {
            let me = workspace::invocation(&ctx.ws);
            return Err(Error::user(
                format!(
                    "the demo's task stopped short of the approval queue: nothing happened for {}s",
                    DEADLINE.as_secs()
                ),
                format!(
                    "look at `{me} log` and the panes (`{me} attach CodeAgency`); clean up with `{me} kill CodeAgency; {me} kill QAAgency`, then remove {}",
                    workspace::quote(&ctx.ws.root.display().to_string())
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One line for the events worth telling.
fn describe(e: &crate::store::EventRow) -> Option<String> {
    let d = &e.detail;
    let s = |k: &str| d[k].as_str().unwrap_or("?").to_string();
    Some(match e.kind.as_str() {
        "message.delivered" => format!("  delivered #{} {} to {}", d["id"], s("type"), s("to")),
        "handoff" => format!(
            "  handoff of {} from {} to {}",
            s("branch"),
            s("from"),
            s("to")
        ),
        "task.dispatched" => format!("  task #{} ready: TASK message to {}", d["id"], s("to")),
        "task.claimed" => format!("  task #{} claimed by {}", d["id"], s("agent")),
        "task.review" => format!("  task #{} in review: {}", d["id"], s("note")),
        "approval.submitted" => format!(
            "  submitted {} for approval ({} passed, {} failed)",
            s("branch"),
            d["tests_passed"],
            d["tests_failed"]
        ),
        _ => return None,
    })
}
