//! Made-up fleets for the monitor's snapshot tests and its benchmark: the
//! same data wherever they run (fixed times, no randomness).

use std::time::{Duration, SystemTime};

use super::scan::{unix, AgentLive};
use super::{rfc3339, AgencyLine, Feed, Kind, NeedsYou, Snapshot};
use crate::model::Role;
use crate::store::EventRow;

/// The moment every sample is seen from.
pub fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-11-22T12:30:00Z").expect("a valid time")
}

fn ago(secs: u64) -> String {
    rfc3339(unix(now()) - secs)
}

/// One of each kind of needs-you row.
pub fn every_kind() -> Vec<NeedsYou> {
    let me = "agency";
    vec![
        NeedsYou {
            kind: Kind::Approval,
            agency: "CodeAgency".into(),
            agent: None,
            id: Some(3),
            what: "#3 Add OAuth2 login (feature/oauth, 12✓ 0✗)".into(),
            since: Some(ago(1500)),
            command: format!("{me} approvals"),
            tests_failed: false,
        },
        NeedsYou {
            kind: Kind::Approval,
            agency: "QAAgency".into(),
            agent: None,
            id: Some(4),
            what: "#4 Fix flaky cache test (fix/cache, 11✓ 1✗)".into(),
            since: Some(ago(300)),
            command: format!("{me} approvals"),
            tests_failed: true,
        },
        NeedsYou {
            kind: Kind::Waiting,
            agency: "CodeAgency".into(),
            agent: Some("dev".into()),
            id: None,
            what: "asks: Bash(rm -rf build && cargo build)".into(),
            since: Some(ago(95)),
            command: format!("{me} answer CodeAgency dev yes"),
            tests_failed: false,
        },
        NeedsYou {
            kind: Kind::Blocked,
            agency: "DevOpsAgency".into(),
            agent: Some("deploy".into()),
            id: Some(12),
            what: "task #12 Deploy staging: needs the cloud API key".into(),
            since: Some(ago(4000)),
            command: format!("{me} task show 12"),
            tests_failed: false,
        },
        NeedsYou {
            kind: Kind::Failed,
            agency: "QAAgency".into(),
            agent: Some("tester".into()),
            id: Some(41),
            what: "message #41 TASK from CodeAgency/coordinator: pane %7 is gone".into(),
            since: Some(ago(700)),
            command: format!("{me} inbox QAAgency tester"),
            tests_failed: false,
        },
        NeedsYou {
            kind: Kind::Exited,
            agency: "DocsAgency".into(),
            agent: Some("writer".into()),
            id: None,
            what: "its program exited".into(),
            since: Some(ago(40)),
            command: format!("{me} status DocsAgency --restart"),
            tests_failed: false,
        },
    ]
}

fn agent(name: &str, role: Role, n: usize, state: &str) -> AgentLive {
    AgentLive {
        name: name.into(),
        role,
        pane: Some(format!("%{n}")),
        state: state.into(),
        question: (state == "waiting").then(|| "Bash(npm install)".to_string()),
        since: Some(unix(now()) - 60),
        setup_error: None,
        unread: false,
    }
}

/// `agencies` agencies of `per` agents each (a coordinator and
/// specialists), in a spread of states, with `events` events over the last
/// hour and the needs-you rows of `every_kind`.
pub fn fleet(agencies: usize, per: usize, events: usize) -> Snapshot {
    let lines = agency_lines(agencies, per);
    let mut feed = feed(agencies, events);
    let (throughput, done_last_hour) = feed.throughput(unix(now()));
    let mut needs_you = every_kind();
    needs_you.extend(stopped_agents(&lines));
    needs_you.sort_by_key(|n| n.kind);
    Snapshot {
        needs_you,
        agencies: lines,
        events: feed.events.iter().cloned().collect(),
        throughput,
        done_last_hour,
        router: Some(4242),
    }
}

/// `agencies` agencies of `per` agents each, in a spread of states.
fn agency_lines(agencies: usize, per: usize) -> Vec<AgencyLine> {
    const STATES: [&str; 8] = [
        "busy", "idle", "busy", "busy", "idle", "waiting", "busy", "exited",
    ];
    let mut lines = Vec::new();
    let mut n = 0;
    for a in 0..agencies {
        let mut agents = Vec::new();
        for g in 0..per {
            let (name, role) = if g == 0 {
                ("coordinator".to_string(), Role::Coordinator)
            } else {
                (format!("agent-{g}"), Role::Specialist)
            };
            agents.push(agent(&name, role, n, STATES[(a + g) % STATES.len()]));
            n += 1;
        }
        let count = |s: &str| agents.iter().filter(|x| x.state == s).count();
        lines.push(AgencyLine {
            name: format!("Agency{a:03}"),
            running: a % 17 != 16,
            idle: count("idle"),
            busy: count("busy"),
            waiting: count("waiting"),
            exited: count("exited"),
            tasks_done: (a % 9) as i64,
            tasks_total: 8 + (a % 3) as i64,
            last_activity: Some(ago((a as u64 * 37) % 3000)),
            agents,
        });
    }
    lines
}

/// `events` events over the last hour, spread over `agencies` agencies.
fn feed(agencies: usize, events: usize) -> Feed {
    let mut feed = Feed::default();
    let start = unix(now()) - 3600;
    let kinds = [
        "message.delivered",
        "message.queued",
        "task.done",
        "message.acked",
    ];
    feed.ingest(
        (0..events)
            .map(|i| EventRow {
                id: i as i64 + 1,
                at: humantime::format_rfc3339_millis(
                    SystemTime::UNIX_EPOCH
                        + Duration::from_millis(start * 1000 + (i as u64 * 3_600_000) / events.max(1) as u64),
                )
                .to_string(),
                agency: Some(format!("Agency{:03}", i % agencies.max(1))),
                kind: kinds[(i * 7 + i / 13) % kinds.len()].into(),
                detail: serde_json::json!({"id": i, "to": format!("Agency{:03}/agent-1", i % agencies.max(1))}),
            })
            .collect(),
    );
    feed
}

/// Every waiting or exited agent of a running agency needs you too.
fn stopped_agents(lines: &[AgencyLine]) -> Vec<NeedsYou> {
    let mut needs_you = Vec::new();
    for l in lines.iter().filter(|l| l.running) {
        for a in &l.agents {
            let kind = match a.state.as_str() {
                "waiting" => Kind::Waiting,
                "exited" => Kind::Exited,
                _ => continue,
            };
            needs_you.push(NeedsYou {
                kind,
                agency: l.name.clone(),
                agent: Some(a.name.clone()),
                id: None,
                what: match kind {
                    Kind::Waiting => "asks: Bash(npm install)".into(),
                    _ => "its program exited".into(),
                },
                since: a.since.map(rfc3339),
                command: format!("agency status {} --restart", l.name),
                tests_failed: false,
            });
        }
    }
    needs_you
}
