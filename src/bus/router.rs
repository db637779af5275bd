//! The router: one per workspace, the only process that types into panes.
//!
//! It takes the oldest queued message of each recipient, checks the pane is
//! ready (one `list-panes`), types every ready one in a single tmux
//! invocation, then records
//! them as delivered in one transaction. So a crash between typing and
//! recording repeats at most one message per recipient, and the header
//! carries the id so the agent can tell.
//!
//! Wake-ups come over a Unix datagram socket (`registry/router.sock`) from
//! the commands that queue messages and from the outbox watcher; a short
//! tick covers everything else (a pane that became ready, a lost wake-up).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agency::spec::AgencySpec;
use crate::agency::{Ctx, SHELLS};
use crate::bus::{header, outbox, wake_socket};
use crate::error::{Error, Result};
use crate::runtime::profile::{self, Profile, ScreenState};
use crate::store::MessageRow;
use crate::tmux::{Op, PaneInfo};
use crate::workspace::{write_atomic, Workspace};

/// How often the router looks again without being woken.
const TICK: Duration = Duration::from_millis(250);
/// Failed typing attempts before a message is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 5;
/// Bodies up to this long and on one line are typed; others are pasted.
const TYPE_LIMIT: usize = 512;
/// The queue mirror is rewritten at most this often while busy.
const MIRROR_EVERY: Duration = Duration::from_millis(200);

fn lock_path(registry: &Path) -> PathBuf {
    registry.join("router.lock")
}

/// Starts a router for the workspace unless one holds the lock.
pub fn ensure_running(ws: &Workspace) -> Result<()> {
    let registry = ws.registry_dir();
    fs::create_dir_all(&registry).map_err(|e| Error::io(registry.display(), e))?;
    let path = lock_path(&registry);
    let lock = open_lock(&path)?;
    match lock.try_lock() {
        Ok(()) => {
            // Nobody holds it: release and start one. Two commands racing
            // here start two routers; the second finds the lock taken and
            // exits.
            drop(lock);
            spawn(ws)
        }
        Err(TryLockError::WouldBlock) => Ok(()),
        Err(TryLockError::Error(e)) => Err(Error::io(path.display(), e)),
    }
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path.display(), e))
}

/// Starts `agency router --foreground` detached: its own process group, no
/// terminal, output to `registry/router.log` (an inherited pipe would keep
/// whoever reads ours waiting for it).
fn spawn(ws: &Workspace) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let log_path = ws.registry_dir().join("router.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(log_path.display(), e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| Error::io(log_path.display(), e))?;
    Command::new(exe)
        .arg("--home")
        .arg(&ws.root)
        .args(["router", "--foreground"])
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("starting the router", e))?;
    Ok(())
}

/// Nudges the router; harmless when none listens.
pub fn wake(registry: &Path) {
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to(b"!", wake_socket(registry));
    }
}

/// The router's process id, when one runs.
pub fn running_pid(registry: &Path) -> Option<u32> {
    let lock = open_lock(&lock_path(registry)).ok()?;
    match lock.try_lock() {
        Ok(()) => None,
        Err(_) => fs::read_to_string(registry.join("router.pid"))
            .ok()?
            .trim()
            .parse()
            .ok(),
    }
}

/// `agency router --foreground`: runs until the workspace's registry goes
/// away or the process is stopped. Returns at once if another router runs.
pub fn run(ws: Workspace) -> Result<()> {
    let registry = ws.registry_dir();
    fs::create_dir_all(&registry).map_err(|e| Error::io(registry.display(), e))?;
    let lock = open_lock(&lock_path(&registry))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "router: another router already serves {}",
            ws.root.display()
        );
        return Ok(());
    }
    write_atomic(
        &registry.join("router.pid"),
        format!("{}\n", std::process::id()).as_bytes(),
    )?;
    let sock_path = wake_socket(&registry);
    let _ = fs::remove_file(&sock_path);
    // A path too long for a Unix socket only costs latency: the tick remains.
    let sock = UnixDatagram::bind(&sock_path).ok();
    if let Some(s) = &sock {
        let _ = s.set_read_timeout(Some(TICK));
    }
    let _watcher = outbox::watch(&registry, sock_path.clone());
    let mut ctx = Ctx::open(ws)?;
    let mut router = Router {
        profiles: crate::runtime::profile::load(&ctx.ws.root)?,
        ..Router::default()
    };
    eprintln!(
        "router: pid {} serving {}",
        std::process::id(),
        ctx.ws.root.display()
    );
    loop {
        if !registry.is_dir() {
            eprintln!("router: the workspace is gone; stopping");
            return Ok(());
        }
        if let Err(e) = outbox::ingest(&mut ctx) {
            eprintln!("router: outbox: {e}");
        }
        let delivered = match router.cycle(&mut ctx) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("router: {e}");
                0
            }
        };
        router.maybe_write_mirror(&ctx, delivered == 0);
        if delivered == 0 {
            wait(sock.as_ref());
        }
    }
}

/// Sleeps until woken or a tick passes, then swallows queued wake-ups.
fn wait(sock: Option<&UnixDatagram>) {
    let mut buf = [0u8; 64];
    match sock {
        Some(s) => {
            if s.recv(&mut buf).is_ok() {
                let _ = s.set_nonblocking(true);
                while s.recv(&mut buf).is_ok() {}
                let _ = s.set_nonblocking(false);
            }
        }
        None => std::thread::sleep(TICK),
    }
}

/// Whether a pane can take a message now.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// No pane (agency down, window killed) or its program has exited.
    Gone,
    /// In copy-mode: keys would move the cursor, not reach the program.
    InMode,
    /// An interactive shell: text would run as a command line.
    Shell,
}

pub fn readiness(pane: Option<&PaneInfo>) -> Readiness {
    match pane {
        None => Readiness::Gone,
        Some(p) if p.dead => Readiness::Gone,
        Some(p) if p.in_mode => Readiness::InMode,
        Some(p) if SHELLS.contains(&p.current_command.as_str()) => Readiness::Shell,
        Some(_) => Readiness::Ready,
    }
}

/// An agent's named profile and its command, from `agency.json`.
fn agent_command(spec: Option<&AgencySpec>, agent: &str) -> (Option<String>, String) {
    let Some(spec) = spec else {
        return (None, String::new());
    };
    let a = if agent == "coordinator" {
        Some(&spec.coordinator)
    } else {
        spec.agents.iter().find(|a| a.name == agent)
    };
    match a {
        Some(a) => (a.profile.clone(), a.command.clone().unwrap_or_default()),
        None => (None, String::new()),
    }
}

/// The tmux steps that put `m` into `pane` and submit it.
pub fn delivery_ops(m: &MessageRow, pane: &str) -> Vec<Op> {
    let head = header(m.id, &m.kind, &m.from);
    let single = !m.body.contains('\n') && m.body.len() <= TYPE_LIMIT;
    let mut ops = Vec::with_capacity(2);
    if single {
        ops.push(Op::TypeText {
            pane: pane.to_string(),
            text: format!("{head} {}", m.body),
        });
    } else {
        ops.push(Op::Paste {
            pane: pane.to_string(),
            buffer: format!("agency-msg-{}", m.id),
            text: format!("{head}\n{}", m.body),
        });
    }
    ops.push(Op::PressKey {
        pane: pane.to_string(),
        key: "Enter".into(),
    });
    ops
}

#[derive(Default)]
struct Router {
    /// Agent profiles, loaded once at start.
    profiles: std::collections::BTreeMap<String, Profile>,
    /// The last screen seen of each pane waiting for its agent's prompt:
    /// typing starts only once it has stayed the same for a tick.
    screens: HashMap<String, String>,
    /// Messages already announced on a shell pane's status line.
    announced: HashSet<i64>,
    mirror_dirty: bool,
    mirror_at: Option<Instant>,
    /// The queue as last mirrored (see `Store::queue_signature`).
    mirrored: Option<(i64, i64, i64)>,
}

impl Router {
    /// One pass over the queue; returns how many messages were delivered.
    fn cycle(&mut self, ctx: &mut Ctx) -> Result<usize> {
        let next = ctx.store.next_per_recipient()?;
        if next.is_empty() {
            return Ok(0);
        }
        let panes = ctx.tmux.list_panes()?;
        let root = ctx.ws.root.display().to_string();
        let mut pane_ids: HashMap<String, HashMap<String, Option<String>>> = HashMap::new();
        let mut ready: Vec<(&MessageRow, String)> = Vec::new();
        let mut notices = Vec::new();
        for m in &next {
            if !pane_ids.contains_key(&m.agency) {
                let rows = ctx.store.agents(&m.agency)?;
                pane_ids.insert(
                    m.agency.clone(),
                    rows.into_iter().map(|a| (a.name, a.pane_id)).collect(),
                );
            }
            let id = pane_ids[&m.agency].get(&m.agent).cloned().flatten();
            let pane = id.as_ref().and_then(|id| {
                panes
                    .iter()
                    .find(|p| &p.pane_id == id && p.session == m.agency && p.agency_home == root)
            });
            match readiness(pane) {
                Readiness::Ready => ready.push((m, pane.unwrap().pane_id.clone())),
                Readiness::Shell => {
                    if self.announced.insert(m.id) {
                        notices.push(Op::DisplayMessage {
                            pane: pane.unwrap().pane_id.clone(),
                            text: format!(
                                "agency: message #{} for {} waits in `agency inbox {} {}`",
                                m.id, m.agent, m.agency, m.agent
                            ),
                        });
                    }
                }
                Readiness::Gone | Readiness::InMode => {}
            }
        }
        if !notices.is_empty() {
            // Only a courtesy: the message waits in the inbox either way.
            let _ = ctx.tmux.batch(&notices);
        }
        let ready = self.prompt_ready(ctx, ready)?;
        if ready.is_empty() {
            return Ok(0);
        }
        let ops: Vec<Op> = ready
            .iter()
            .flat_map(|(m, pane)| delivery_ops(m, pane))
            .collect();
        let mut delivered: Vec<&MessageRow> = Vec::new();
        if ctx.tmux.batch(&ops).is_ok() {
            delivered = ready.iter().map(|(m, _)| *m).collect();
        } else {
            // tmux stops a sequence at the first failing command: find out
            // which ones fail by trying each on its own.
            for (m, pane) in &ready {
                match ctx.tmux.batch(&delivery_ops(m, pane)) {
                    Ok(_) => delivered.push(m),
                    Err(e) => {
                        let state = ctx.store.record_failure(m, &e.to_string(), MAX_ATTEMPTS)?;
                        if state == "failed" {
                            ctx.activity_line(
                                &m.agency,
                                "message.failed",
                                &serde_json::json!({"id": m.id, "to": m.to, "error": e.to_string()}),
                            )?;
                        }
                        self.mirror_dirty = true;
                    }
                }
            }
        }
        if delivered.is_empty() {
            return Ok(0);
        }
        ctx.store.mark_delivered(&delivered)?;
        for m in &delivered {
            ctx.activity_line(
                &m.agency,
                "message.delivered",
                &serde_json::json!({"id": m.id, "to": m.to, "type": m.kind}),
            )?;
        }
        self.mirror_dirty = true;
        Ok(delivered.len())
    }

    /// Keeps the messages whose agent shows its prompt on a screen that has
    /// not changed since the last look (for agents whose profile knows
    /// their prompt; others pass as they are).
    fn prompt_ready<'m>(
        &mut self,
        ctx: &Ctx,
        ready: Vec<(&'m MessageRow, String)>,
    ) -> Result<Vec<(&'m MessageRow, String)>> {
        let mut specs: HashMap<String, Option<AgencySpec>> = HashMap::new();
        let mut checked = Vec::new();
        let mut pass = Vec::new();
        for (m, pane) in ready {
            let spec = specs
                .entry(m.agency.clone())
                .or_insert_with(|| AgencySpec::load(&ctx.ws.agency_dir(&m.agency)).ok());
            let (named, mut command) = agent_command(spec.as_ref(), &m.agent);
            if command.is_empty() {
                command = ctx.ws.default_agent_command();
            }
            match profile::for_agent(&self.profiles, named.as_deref(), &command) {
                Some(p) if p.ready.is_some() => checked.push((m, pane, p.clone())),
                _ => pass.push((m, pane)),
            }
        }
        if checked.is_empty() {
            return Ok(pass);
        }
        let panes: Vec<String> = checked.iter().map(|(_, p, _)| p.clone()).collect();
        let screens = ctx.tmux.capture(&panes)?;
        for ((m, pane, profile), screen) in checked.into_iter().zip(screens) {
            let stable = self.screens.get(&pane) == Some(&screen);
            let idle = profile.screen_state(&screen) == ScreenState::Idle;
            if stable && idle {
                self.screens.remove(&pane);
                pass.push((m, pane));
            } else {
                self.screens.insert(pane, screen);
            }
        }
        Ok(pass)
    }

    /// Rewrites `message_queue.json` when the queue changed: at once when
    /// idle, at most every `MIRROR_EVERY` while busy.
    fn maybe_write_mirror(&mut self, ctx: &Ctx, idle: bool) {
        let due = self.mirror_at.is_none_or(|t| t.elapsed() >= MIRROR_EVERY);
        if !(idle || due) {
            return;
        }
        let Ok(sig) = ctx.store.queue_signature() else {
            return;
        };
        if self.mirrored != Some(sig) || self.mirror_dirty {
            if let Err(e) = ctx.store.write_queue_mirror() {
                eprintln!("router: {e}");
            }
            self.mirrored = Some(sig);
            self.mirror_dirty = false;
            self.mirror_at = Some(Instant::now());
        }
    }
}
