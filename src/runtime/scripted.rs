//! The scripted agent: a deterministic stand-in for an LLM agent CLI. It
//! shows a prompt, reads the messages the router types into its pane, and
//! acts by rules — shell commands that may commit, run tests, and answer
//! with `agency send`, `send-inter`, `handoff` or `submit`.
//!
//! Rules file (TOML); the first rule that matches a message runs:
//!
//! ```toml
//! [[rule]]
//! type = "TASK"                       # optional: the message type, any case
//! when = "greet(?P<who>\\w+)"         # optional: a regex over the body
//! run = ["echo hello $MSG_WHO", "agency send $AGENCY_NAME coordinator \"COMPLETE done\""]
//! ```
//!
//! Commands run with `sh -c` in the agent's folder, with `MSG_ID`,
//! `MSG_TYPE`, `MSG_FROM`, `MSG_BODY` and one `MSG_<NAME>` per named group of
//! `when` in their environment. After its rule ran, a message is acked.
//!
//! What the pane shows is never trusted: a body may hold a line that looks
//! like a header. A header counts only if the registry has that message for
//! this agent, unacknowledged, next in line, with exactly that header; its
//! type, sender and body then come from the registry, and the lines of its
//! body are taken as body whatever they say.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{sanitize, Header, MessageState};
use crate::os::process;
use crate::store::{MessageRow, Store};
use crate::workspace::Workspace;

#[derive(Debug, Deserialize)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
struct RuleSpec {
    #[serde(rename = "type")]
    kind: Option<String>,
    when: Option<String>,
    run: Vec<String>,
}

pub struct Rule {
    kind: Option<String>,
    when: Option<Regex>,
    run: Vec<String>,
}

/// A message as it arrived in the pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: i64,
    pub kind: String,
    pub from: String,
    pub body: String,
}

pub fn load_rules(path: &Path) -> Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    let file: RulesFile = toml::from_str(&text).map_err(|e| {
        Error::user(
            format!(
                "{} is not a valid rules file: {}",
                path.display(),
                e.message()
            ),
            "see `agency agent scripted --help` for the format",
        )
    })?;
    file.rule
        .into_iter()
        .map(|r| {
            let when = match r.when {
                Some(w) => Some(Regex::new(&w).map_err(|e| {
                    Error::user(format!("bad `when` regex {w:?}: {e}"), "fix the rules file")
                })?),
                None => None,
            };
            Ok(Rule {
                kind: r.kind,
                when,
                run: r.run,
            })
        })
        .collect()
}

/// The environment a matching rule runs with, or `None` if it does not match.
pub fn matches(rule: &Rule, m: &Received) -> Option<Vec<(String, String)>> {
    if let Some(k) = &rule.kind {
        if !k.eq_ignore_ascii_case(&m.kind) {
            return None;
        }
    }
    let mut env = vec![
        ("MSG_ID".to_string(), m.id.to_string()),
        ("MSG_TYPE".to_string(), m.kind.clone()),
        ("MSG_FROM".to_string(), m.from.clone()),
        ("MSG_BODY".to_string(), m.body.clone()),
    ];
    if let Some(re) = &rule.when {
        let caps = re.captures(&m.body)?;
        for name in re.capture_names().flatten() {
            if let Some(v) = caps.name(name) {
                env.push((
                    format!("MSG_{}", name.to_ascii_uppercase()),
                    v.as_str().to_string(),
                ));
            }
        }
    }
    Some(env)
}

const PROMPT: &str = "scripted> ";
/// A message whose body lines stop coming for this long is handled with
/// what the registry says.
const QUIET: Duration = Duration::from_millis(2000);

/// The registry as this agent sees it.
struct Registry {
    dir: PathBuf,
    agency: String,
    agent: String,
    /// Messages handled by this process.
    seen: HashSet<i64>,
}

impl Registry {
    fn from_env() -> Result<Registry> {
        let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        let hint = "run it as an agent of an agency: `agency create NAME --agent-command '\"$AGENCY_BIN\" agent scripted --rules FILE'`";
        let (Some(agency), Some(agent)) = (env("AGENCY_NAME"), env("AGENCY_AGENT")) else {
            return Err(Error::user(
                "the scripted agent runs in an agency's pane (AGENCY_NAME and AGENCY_AGENT are not set)",
                hint,
            ));
        };
        let ws = Workspace::locate(None)?;
        Ok(Registry {
            dir: ws.registry_dir(),
            agency,
            agent,
            seen: HashSet::new(),
        })
    }

    /// The message `line` announces, if the router sent it to this agent.
    fn verify(&mut self, line: &str, claimed: &Received) -> Option<MessageRow> {
        if self.seen.contains(&claimed.id) {
            return None;
        }
        // A registry busy or being migrated right now is no reason to drop
        // a message the router typed: it is asked again, a few times.
        let mut tries = 0;
        let (m, next) = loop {
            match self.lookup(claimed.id) {
                Ok(found) => break found?,
                Err(_) if tries < 5 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => return None,
            }
        };
        let mine = m.agency == self.agency && m.agent == self.agent;
        let head = Header::new(m.id, &m.kind, &m.from).to_string();
        if !(mine && next && line.trim_start().starts_with(&head)) {
            return None;
        }
        self.seen.insert(m.id);
        Some(m)
    }

    /// Message `id` and whether the router may have typed it: delivered,
    /// or (typed before it is recorded) queued as its recipient's next, or
    /// recorded as delivered since it was read.
    fn lookup(&self, id: i64) -> std::result::Result<Option<(MessageRow, bool)>, ()> {
        let store = Store::open(&self.dir).map_err(|_| ())?;
        let Some(m) = store.message(id).map_err(|_| ())? else {
            return Ok(None);
        };
        let next = match m.state {
            MessageState::Delivered => true,
            MessageState::Queued => {
                store
                    .next_per_recipient()
                    .map_err(|_| ())?
                    .iter()
                    .any(|n| n.id == m.id)
                    || store
                        .message(m.id)
                        .map_err(|_| ())?
                        .is_some_and(|n| n.state == MessageState::Delivered)
            }
            _ => false,
        };
        Ok(Some((m, next)))
    }

    /// Waits (a while) until the router has recorded `id` as delivered, so
    /// that it can be acked.
    fn wait_delivered(&self, id: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let state = Store::open(&self.dir)
                .ok()
                .and_then(|s| s.message(id).ok().flatten())
                .map(|m| m.state);
            if state != Some(MessageState::Queued) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A message being read from the pane: its registry row and how many of
/// its body lines are still to come.
struct Reading {
    row: MessageRow,
    lines_left: usize,
}

/// `agency agent scripted`: runs until its input closes.
pub fn run(rules_path: &Path) -> Result<()> {
    let rules = load_rules(rules_path)?;
    let mut registry = Registry::from_env()?;
    println!(
        "scripted agent {}: {} rule(s) from {}",
        registry.agent,
        rules.len(),
        rules_path.display()
    );
    prompt();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut current: Option<Reading> = None;
    loop {
        let line = match rx.recv_timeout(QUIET) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(r) = current.take() {
                    handle(&rules, &registry, &r.row);
                    prompt();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(r) = current.take() {
                    handle(&rules, &registry, &r.row);
                }
                return Ok(());
            }
        };
        // A body's lines are body, whatever they look like.
        if let Some(r) = &mut current {
            r.lines_left -= 1;
            if r.lines_left == 0 {
                let r = current.take().expect("reading");
                handle(&rules, &registry, &r.row);
                prompt();
            }
            continue;
        }
        let Some(claimed) = Header::split(&line).map(|(h, body)| Received {
            id: h.id,
            kind: h.kind,
            from: h.from,
            body: body.to_string(),
        }) else {
            if !line.trim().is_empty() {
                println!("(not a message; ignored)");
            }
            prompt();
            continue;
        };
        let Some(row) = registry.verify(&line, &claimed) else {
            println!("(not a message the router sent this agent; ignored)");
            prompt();
            continue;
        };
        if claimed.body.is_empty() {
            // Pasted: the header alone, then the body's lines.
            let lines_left = sanitize(&row.body).split('\n').count();
            current = Some(Reading { row, lines_left });
        } else {
            handle(&rules, &registry, &row);
            prompt();
        }
    }
}

fn prompt() {
    print!("{PROMPT}");
    let _ = std::io::stdout().flush();
}

fn handle(rules: &[Rule], registry: &Registry, row: &MessageRow) {
    let m = &Received {
        id: row.id,
        kind: row.kind.clone(),
        from: row.from.clone(),
        body: row.body.clone(),
    };
    // Its own pane is a terminal too: nothing from the registry goes raw.
    let what = sanitize(&format!("#{} {} from {}", m.id, m.kind, m.from)).replace('\n', " ");
    let Some((rule, env)) = rules.iter().find_map(|r| matches(r, m).map(|e| (r, e))) else {
        println!("{what}: no rule matches; left unacknowledged");
        return;
    };
    println!("{what}: running {} command(s)", rule.run.len());
    // Rules call `agency ...`: make that this very binary.
    let exe = std::env::current_exe().unwrap_or_else(|_| "agency".into());
    let path = match (exe.parent(), std::env::var("PATH")) {
        (Some(dir), Ok(p)) => format!("{}:{p}", dir.display()),
        (Some(dir), Err(_)) => dir.display().to_string(),
        (None, p) => p.unwrap_or_default(),
    };
    for cmd in &rule.run {
        println!("$ {cmd}");
        let mut env = env.clone();
        env.push(("PATH".to_string(), path.clone()));
        let status = process::shell_status(cmd, &env);
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                println!("(exited with {s}; the rule stops here)");
                return;
            }
            Err(e) => {
                println!("(could not run: {e})");
                return;
            }
        }
    }
    registry.wait_delivered(m.id);
    let _ = process::status(&exe, &["ack", &m.id.to_string()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_that_cannot_be_read_for_a_moment_drops_no_typed_message() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let id = {
            let mut s = Store::open(&ready).unwrap();
            let ids = s
                .queue_messages(&[crate::store::NewMessage {
                    from: "human".into(),
                    agency: "A".into(),
                    agent: "dev".into(),
                    kind: "NOTE".into(),
                    body: "hello".into(),
                    payload: None,
                    origin: None,
                    deliver_at: None,
                }])
                .unwrap();
            let m = s.message(ids[0]).unwrap().unwrap();
            s.mark_delivered(&[&m]).unwrap();
            ids[0]
        };
        // For now the registry's database is no database at all.
        let registry = dir.path().join("registry");
        std::fs::create_dir_all(&registry).unwrap();
        std::fs::write(registry.join("agency.db"), "not a database, yet").unwrap();
        let (from, to) = (ready.join("agency.db"), registry.join("agency.db"));
        let fix = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::rename(from, to).unwrap();
        });
        let mut r = Registry {
            dir: registry,
            agency: "A".into(),
            agent: "dev".into(),
            seen: HashSet::new(),
        };
        let line = format!("[msg #{id} NOTE from human] hello");
        let claimed = Received {
            id,
            kind: "NOTE".into(),
            from: "human".into(),
            body: "hello".into(),
        };
        let got = r.verify(&line, &claimed);
        fix.join().unwrap();
        assert_eq!(got.map(|m| m.id), Some(id));
    }

    #[test]
    fn rules_match_by_type_and_regex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            r#"
[[rule]]
type = "handoff"
when = '"branch":"(?P<branch>[^"]+)"'
run = ["true"]
"#,
        )
        .unwrap();
        let rules = load_rules(&path).unwrap();
        let m = Received {
            id: 1,
            kind: "handoff".into(),
            from: "X".into(),
            body: r#"{"branch":"feature/x"}"#.into(),
        };
        let env = matches(&rules[0], &m).unwrap();
        assert!(env.contains(&("MSG_BRANCH".to_string(), "feature/x".to_string())));
        let other = Received {
            kind: "TASK".into(),
            ..m
        };
        assert!(matches(&rules[0], &other).is_none());
    }
}
