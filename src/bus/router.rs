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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bus::{outbox, wake_socket};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::AgencySpec;
use crate::model::{sanitize, AgencyState, Event, Header};
use crate::os::process::{self, Signal};
use crate::os::tmux::{Op, PaneInfo};
use crate::runtime::profile::{self, Multiline, Profile, ScreenState};
use crate::runtime::SHELLS;
use crate::store::MessageRow;
use crate::workspace::{write_atomic, Workspace};
use tracing::{debug, info, warn};

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

/// Set in the environment of a router `ensure_running` started (whose
/// stderr is its log file already).
const SPAWNED: &str = "AGENCY_ROUTER_SPAWNED";

fn log_path(registry: &Path) -> PathBuf {
    registry.join("router.log")
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
    // The router logs through `logging`; its stderr only catches what
    // escapes that (a panic), and a log that cannot be opened is no reason
    // to leave messages undelivered.
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(&ws.registry_dir()))
        .ok();
    let args = [
        OsStr::new("--home"),
        ws.root.as_os_str(),
        OsStr::new("router"),
        OsStr::new("--foreground"),
    ];
    // The human's process, whoever starts it (an agent's `send`, say): it
    // runs the notify command and prints commands for the human.
    let (path, remove) = ws.human_env();
    let mut env = process::Env {
        set: vec![(SPAWNED, OsStr::new("1"))],
        remove,
    };
    env.set.extend(path.as_deref().map(|p| ("PATH", p)));
    let mut child = process::spawn_detached(&exe, &args, &ws.root, &env, stderr)
        .map_err(|e| Error::io("starting the router", e))?;
    // Back only once it serves (or lost the race to another router), so
    // what the caller does next (`router --status`, a test stopping it)
    // sees it. A router slow to open the registry costs at most the wait.
    let pid = child.id();
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if running_pid(&ws.registry_dir()) == Some(pid) || !matches!(child.try_wait(), Ok(None)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// How long `ensure_running` waits for the router it started.
const START_WAIT: Duration = Duration::from_secs(3);

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

/// `agency router --stop`: ends the running router (SIGTERM, then SIGKILL
/// if it lingers) and waits until its lock is free. Returns its pid.
pub fn stop(registry: &Path) -> Result<Option<u32>> {
    let Some(pid) = running_pid(registry) else {
        return Ok(None);
    };
    let lock = open_lock(&lock_path(registry))?;
    for (signal, wait) in [(Signal::TERM, 3000), (Signal::KILL, 2000)] {
        // The pid that holds our lock.
        process::signal(pid, signal);
        let deadline = Instant::now() + Duration::from_millis(wait);
        while Instant::now() < deadline {
            if lock.try_lock().is_ok() {
                return Ok(Some(pid));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Err(Error::user(
        format!("the router (pid {pid}) did not stop"),
        format!("end it yourself: kill -9 {pid}"),
    ))
}

/// A router that has never seen an agency of its workspace running waits
/// this long for one before it stops.
const LINGER: Duration = Duration::from_secs(60);

/// Whether the registry has an agency in the `running` state (unsure: yes).
pub fn any_running(ctx: &Ctx) -> bool {
    ctx.store
        .agencies()
        .map(|a| a.iter().any(|a| a.state == AgencyState::Running))
        .unwrap_or(true)
}

/// Time to stop: the last agency was killed (or none came in `LINGER`).
struct Liveness {
    seen: bool,
    started: Instant,
}

impl Liveness {
    fn done(&mut self, ctx: &Ctx) -> bool {
        if any_running(ctx) {
            self.seen = true;
            return false;
        }
        self.seen || self.started.elapsed() >= LINGER
    }
}

/// Hands the workspace over before stopping: the lock is let go, then the
/// registry read again. A `create` that found the lock still held had
/// already recorded its agency as running, so it is seen here and this
/// router stays (if it gets the lock back; else a new one has it).
fn may_stop(lock: &File, ctx: &Ctx) -> bool {
    let _ = lock.unlock();
    !any_running(ctx) || lock.try_lock().is_err()
}

impl Router {
    /// See `may_stop`; a router without its lock has nothing to hand over.
    fn may_stop(&self, ctx: &Ctx) -> bool {
        self.lock.as_ref().is_none_or(|l| may_stop(l, ctx))
    }
}

/// `agency router --foreground`: runs until the workspace's registry goes
/// away, the last agency of the workspace has stopped, or the process is
/// stopped. Returns at once if another router runs.
pub fn run(ws: Workspace) -> Result<()> {
    run_with(ws, |_| {})
}

/// `run`, calling `upkeep` on every tick (for work that watches panes,
/// like task leases).
pub fn run_with(ws: Workspace, mut upkeep: impl FnMut(&mut Ctx)) -> Result<()> {
    let registry = ws.registry_dir();
    fs::create_dir_all(&registry).map_err(|e| Error::io(registry.display(), e))?;
    // Started by hand, it also shows its log in the terminal.
    let by_hand = std::env::var_os(SPAWNED).is_none();
    crate::logging::to_file(&log_path(&registry), by_hand);
    let lock = open_lock(&lock_path(&registry))?;
    if lock.try_lock().is_err() {
        info!("another router already serves {}", ws.root.display());
        return Ok(());
    }
    // The registry is read before the pid says this router runs: an agency
    // killed right after (the last one) is seen stopping, and this router
    // stops too, rather than waiting `LINGER` for one to come.
    let mut ctx = Ctx::open(ws)?;
    let mut live = Liveness {
        seen: any_running(&ctx),
        started: Instant::now(),
    };
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
    let mut router = Router {
        // A broken profiles.toml must not stop delivery to everyone else.
        profiles: profile::load(&ctx.ws.root).unwrap_or_else(|e| {
            warn!("{e}; using the built-in profiles");
            profile::builtins()
        }),
        lock: Some(lock),
        ..Router::default()
    };
    info!(
        "pid {} serving {}",
        std::process::id(),
        ctx.ws.root.display()
    );
    while router.keeps_serving(&mut ctx, &registry, &mut live) {
        router.tick(&mut ctx, &mut upkeep, sock.as_ref());
    }
    Ok(())
}

impl Router {
    /// Whether this router goes on: false (and why, in the log) once the
    /// workspace is gone, another router serves it, or no agency runs.
    fn keeps_serving(&mut self, ctx: &mut Ctx, registry: &Path, live: &mut Liveness) -> bool {
        if !registry.is_dir() {
            info!("the workspace is gone; stopping");
            return false;
        }
        if !self.holds_lock(registry) {
            info!("another router serves this workspace now; stopping");
            return false;
        }
        if ctx.store.replaced() {
            self.reopen(ctx);
            // A new registry knows no agency yet: wait for one as at start.
            *live = Liveness {
                seen: false,
                started: Instant::now(),
            };
        }
        if live.done(ctx) && self.typed.is_empty() && self.may_stop(ctx) {
            // Queued messages wait in the registry; `create` starts a router.
            info!("no agency is running; stopping");
            return false;
        }
        true
    }

    /// One turn of the loop: takes in the outbox, delivers, and sleeps
    /// when there was nothing to deliver.
    fn tick(
        &mut self,
        ctx: &mut Ctx,
        upkeep: &mut impl FnMut(&mut Ctx),
        sock: Option<&UnixDatagram>,
    ) {
        if let Err(e) = outbox::ingest(ctx) {
            warn!("outbox: {e}");
        }
        upkeep(ctx);
        let delivered = match self.cycle(ctx) {
            Ok(n) => n,
            Err(e) => {
                warn!("{e}");
                0
            }
        };
        self.maybe_write_mirror(ctx, delivered == 0);
        if delivered == 0 {
            wait(sock);
        }
    }
}

/// Whether this router still holds the workspace's lock. Someone who
/// removes `router.lock` lets a second router start, and two routers would
/// type each message twice: the lock is taken again, or, when another
/// router has it, this one stops.
fn still_the_router(registry: &Path, lock: &mut File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = lock_path(registry);
    let same = match (lock.metadata(), fs::metadata(&path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    if same {
        return true;
    }
    let Ok(new) = open_lock(&path) else {
        return true; // cannot tell: keep serving
    };
    if new.try_lock().is_err() {
        return false;
    }
    warn!("router.lock was replaced; locked it again");
    *lock = new;
    let _ = write_atomic(
        &registry.join("router.pid"),
        format!("{}\n", std::process::id()).as_bytes(),
    );
    true
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

/// The tmux steps that put `m` into `pane` and submit it: one line is
/// typed, several are pasted (or joined, if the profile says so).
pub fn delivery_ops(m: &MessageRow, pane: &str, profile: Option<&Profile>) -> Vec<Op> {
    let head = Header::new(m.id, &m.kind, &m.from).to_string();
    let join = profile.is_some_and(|p| p.multiline == Multiline::Join);
    // Bodies are cleaned when queued; a row from before that (or written
    // by hand) is cleaned here too.
    let clean = sanitize(&m.body);
    let body = if join && clean.contains('\n') {
        clean.lines().collect::<Vec<_>>().join(" | ")
    } else {
        clean
    };
    let single = !body.contains('\n') && (join || body.len() <= TYPE_LIMIT);
    let mut ops = Vec::with_capacity(2);
    if single {
        ops.push(Op::TypeText {
            pane: pane.to_string(),
            text: format!("{head} {body}"),
        });
    } else {
        ops.push(Op::Paste {
            pane: pane.to_string(),
            buffer: paste_buffer(m.id),
            text: format!("{head}\n{body}"),
        });
    }
    ops.push(Op::PressKey {
        pane: pane.to_string(),
        key: profile.map_or("Enter", |p| p.submit.as_str()).to_string(),
    });
    ops
}

/// A buffer name for pasting message `id`. Buffers are global to a tmux
/// server, which other workspaces' routers may share, and they number their
/// messages from 1 too: the name holds this process's id and a count, so no
/// two routers (nor two attempts) ever fill the same buffer.
fn paste_buffer(id: i64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("agency-msg-{}-{n}-{id}", std::process::id())
}

/// At most this many lines of a message are shown in a shell's pane.
const SHOWN_LINES: usize = 20;

/// What a shell's pane shows of a message: a header that says it was not
/// run and where it waits, the body (cut to `SHOWN_LINES`), how to ack.
pub fn shell_notice(m: &MessageRow) -> String {
    let head = Header::new(m.id, &m.kind, &m.from).to_string();
    let lines: Vec<&str> = m.body.lines().collect();
    let mut body = lines
        .iter()
        .take(SHOWN_LINES)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > SHOWN_LINES {
        body.push_str(&format!("\n... ({} more lines)", lines.len() - SHOWN_LINES));
    }
    format!(
        "-- agency: a message for {agent} (shown, not run: this pane is a shell) --\n{head}\n{body}\n-- it stays in `agency inbox {agency} {agent}` until acknowledged; when done: `agency ack {id}` --",
        agent = m.agent,
        agency = m.agency,
        id = m.id
    )
}

/// What the router prints after typing message `id`, to tell how far a
/// batch got.
fn typed_mark(id: i64) -> String {
    format!("agency-typed-{id}")
}

/// Each message's keys, then a mark that they were typed: tmux stops a
/// sequence at its first failing command, and the marks printed tell which
/// messages went in before it. None is typed again.
fn typing_ops(ready: &[(&MessageRow, String, Option<Profile>)]) -> Vec<Op> {
    ready
        .iter()
        .flat_map(|(m, pane, p)| {
            let mut ops = delivery_ops(m, pane, p.as_ref());
            ops.push(Op::Print {
                pane: pane.clone(),
                text: typed_mark(m.id),
            });
            ops
        })
        .collect()
}

/// A message typed into an agent whose profile can read its input box:
/// checked after a moment, and submitted again if it is still there.
/// Nothing more is typed into its pane until it is known to be taken.
struct Unsent {
    id: i64,
    agency: String,
    to: String,
    head: String,
    body: String,
    profile: Profile,
    /// The screen just before it was typed: while the pane still shows
    /// exactly that, the agent has not read it yet.
    before: Option<String>,
    typed_at: Instant,
    at: Instant,
    presses: u32,
    /// The screen at the last look.
    screen: Option<String>,
}

/// How long to let an agent take typed text before checking it left the
/// input box.
const VERIFY_AFTER: Duration = Duration::from_millis(400);
/// Submit presses after the first before giving up on a message.
const MAX_RESUBMITS: u32 = 3;
/// How long an agent may show nothing of a message typed into it before
/// the router gives up on it.
const TAKE_LIMIT: Duration = Duration::from_secs(60);

/// What a look at a pane says about the message last typed into it.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// Submitted: gone from the input box on a screen that has settled,
    /// or the agent is at work.
    Taken,
    /// Still in the input box on a screen that has settled: the submit key
    /// was lost (or taken as a new line).
    Unsent,
    /// The pane still shows what it showed before the message was typed:
    /// the agent has not read its input yet.
    Unread,
    /// Changing: look again.
    Wait,
}

impl Unsent {
    /// Reads `screen`, and keeps it for the next look. A settled screen is
    /// one that is the same across two looks: a program still taking a
    /// paste redraws.
    fn look(&mut self, screen: &str) -> Look {
        let settled = self.screen.as_deref() == Some(screen);
        self.screen = Some(screen.to_string());
        self.at = Instant::now();
        let state = self.profile.screen_state(screen);
        if self.profile.holds(screen, &self.head, &self.body) {
            // Submitted again only at a settled, idle prompt.
            return if settled && state == ScreenState::Idle {
                Look::Unsent
            } else {
                Look::Wait
            };
        }
        if state == ScreenState::Busy {
            Look::Taken
        } else if self.before.as_deref() == Some(screen) {
            Look::Unread
        } else if settled {
            Look::Taken
        } else {
            Look::Wait
        }
    }
}

/// What one round of looks at unsent messages calls for.
#[derive(Default)]
struct Looks {
    /// Submit keys to press again.
    presses: Vec<Op>,
    /// (message id, agency, recipient, press number) of each press.
    resubmitted: Vec<(i64, String, String, u32)>,
    /// Messages given up on, with why.
    failed: Vec<(Unsent, String)>,
}

#[derive(Default)]
struct Router {
    /// Agent profiles, loaded again when the workspace's `profiles.toml`
    /// changes.
    profiles: BTreeMap<String, Profile>,
    profiles_stamp: Option<std::time::SystemTime>,
    /// The last screen seen of each pane waiting for its agent's prompt:
    /// typing starts only once it has stayed the same for a tick.
    screens: HashMap<String, String>,
    /// Panes whose last message is checked for having been submitted;
    /// nothing more is typed into them until it has.
    unsent: HashMap<String, Unsent>,
    /// Messages already shown in a shell's pane: (pane, message id).
    shown: HashSet<(String, i64)>,
    /// Messages typed whose delivery could not be recorded yet (database
    /// locked, disk full).
    typed: Vec<MessageRow>,
    /// The workspace's router lock, held while this router runs.
    lock: Option<File>,
    /// The screen each pane showed when a message was last typed into it.
    typed_over: HashMap<String, String>,
    mirror_dirty: bool,
    mirror_at: Option<Instant>,
    /// The queue as last mirrored (see `Store::queue_signature`).
    mirrored: Option<(i64, i64, i64)>,
}

impl Router {
    /// One pass over the queue; returns how many messages were delivered.
    fn cycle(&mut self, ctx: &mut Ctx) -> Result<usize> {
        self.reload_profiles(ctx);
        self.verify(ctx)?;
        self.record_typed(ctx);
        let held = self.held();
        let mut next = ctx.store.next_per_recipient()?;
        next.retain(|m| !held.contains(&(m.agency.as_str(), m.agent.as_str())));
        if next.is_empty() {
            return Ok(0);
        }
        let ready = self.ready_panes(ctx, &next)?;
        let ready = self.prompt_ready(ctx, ready)?;
        if ready.is_empty() {
            return Ok(0);
        }
        let ops = typing_ops(&ready);
        // Checked again right before typing: a second router must never
        // type what this one types.
        if !self.holds_lock(&ctx.ws.registry_dir()) {
            return Ok(0);
        }
        let (printed, result) = ctx.tmux.batch_printing(&ops);
        let n_typed = ready
            .iter()
            .take_while(|(m, _, _)| printed.contains(&typed_mark(m.id)))
            .count();
        if let (Err(e), Some((m, _, _))) = (result, ready.get(n_typed)) {
            // The one it stopped at; those after it wait for the next cycle.
            // Not `?`: the messages typed before it must still be recorded.
            if let Err(err) = ctx.store.record_failure(m, &e.to_string(), MAX_ATTEMPTS) {
                warn!("#{}: {e}; not recorded: {err}", m.id);
            }
            self.mirror_dirty = true;
        }
        let typed = &ready[..n_typed];
        self.watch_unsent(typed);
        let delivered: Vec<&MessageRow> = typed.iter().map(|(m, _, _)| *m).collect();
        self.record_delivered(ctx, &delivered)
    }

    /// The messages of `next` whose pane can take them now, with that pane.
    /// A shell's are shown in its pane instead (see `show_to_shell`).
    fn ready_panes<'m>(
        &mut self,
        ctx: &mut Ctx,
        next: &'m [MessageRow],
    ) -> Result<Vec<(&'m MessageRow, String)>> {
        let panes = ctx.tmux.list_panes()?;
        let root = ctx.ws.root.display().to_string();
        let mut pane_ids: HashMap<String, HashMap<String, Option<String>>> = HashMap::new();
        // Each agency's agency.json, read once a cycle (see `runs_a_shell`).
        let mut specs: HashMap<String, Option<AgencySpec>> = HashMap::new();
        let mut ready: Vec<(&MessageRow, String)> = Vec::new();
        let mut notices = Vec::new();
        for m in next {
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
            let spec = specs
                .entry(m.agency.clone())
                .or_insert_with(|| AgencySpec::load(&ctx.ws.agency_dir(&m.agency)).ok());
            let shell = || self.runs_a_shell(ctx, spec.as_ref(), &m.agent);
            match readiness(pane) {
                Readiness::Ready if self.unsent.contains_key(&pane.unwrap().pane_id) => {}
                // A shell agent's pane running something else (a REPL, ssh,
                // psql a person started): typed there, a message would run.
                // It waits until the shell is back, then is shown.
                Readiness::Ready if shell() => {}
                Readiness::Ready => ready.push((m, pane.unwrap().pane_id.clone())),
                Readiness::Shell if shell() => {
                    notices.extend(self.show_to_shell(ctx, m, pane.unwrap())?);
                }
                // An agent CLI whose pane still shows the shell that starts
                // it (or that it left): its messages wait for it.
                Readiness::Shell | Readiness::Gone | Readiness::InMode => {}
            }
        }
        if !notices.is_empty() {
            // Only a courtesy: the message waits in the inbox either way.
            let _ = ctx.tmux.batch(&notices);
        }
        Ok(ready)
    }

    /// Messages just typed into agents whose profile can read their input
    /// box are looked at again (see `verify`) before more is typed there.
    fn watch_unsent(&mut self, typed: &[(&MessageRow, String, Option<Profile>)]) {
        for (m, pane, p) in typed {
            if let Some(p) = p.as_ref().filter(|p| p.input.is_some()) {
                self.unsent.insert(
                    pane.clone(),
                    Unsent {
                        id: m.id,
                        agency: m.agency.clone(),
                        to: m.to.clone(),
                        head: Header::new(m.id, &m.kind, &m.from).to_string(),
                        body: m.body.clone(),
                        profile: p.clone(),
                        before: self.typed_over.remove(pane),
                        typed_at: Instant::now(),
                        at: Instant::now(),
                        presses: 0,
                        screen: None,
                    },
                );
            }
        }
    }

    /// Records `delivered` as typed; returns how many they are.
    fn record_delivered(&mut self, ctx: &mut Ctx, delivered: &[&MessageRow]) -> Result<usize> {
        if delivered.is_empty() {
            return Ok(0);
        }
        for m in delivered {
            debug!("typed #{} {} from {} into {}", m.id, m.kind, m.from, m.to);
        }
        if let Err(e) = ctx.store.mark_delivered(delivered) {
            // Typed, maybe read already: never typed again. Its recipient
            // gets nothing more until the record is written.
            self.typed.extend(delivered.iter().map(|m| (*m).clone()));
            return Err(e.into());
        }
        self.mirror_dirty = true;
        Ok(delivered.len())
    }

    /// A shell is never typed into: each of its agent's due messages is
    /// shown in its pane once (as output, see `tmux::show_in_pane`) and
    /// recorded as delivered, so `agency ack` takes it as any other.
    /// Returns status-line notices for whoever watches.
    fn show_to_shell(
        &mut self,
        ctx: &mut Ctx,
        head: &MessageRow,
        pane: &PaneInfo,
    ) -> Result<Vec<Op>> {
        let mut notices = Vec::new();
        let mut shown = Vec::new();
        for m in ctx.store.due_for(&head.agency, &head.agent)? {
            if self.shown.contains(&(pane.pane_id.clone(), m.id)) {
                continue;
            }
            let text = shell_notice(&m);
            match crate::os::tmux::show_in_pane(&pane.tty, &text) {
                Ok(()) => {
                    self.shown.insert((pane.pane_id.clone(), m.id));
                    notices.push(Op::DisplayMessage {
                        pane: pane.pane_id.clone(),
                        text: format!(
                            "agency: message #{} for {} is shown in its pane; `agency ack {}` when done",
                            m.id, m.agent, m.id
                        ),
                    });
                    shown.push(m);
                }
                // Output stopped (Ctrl-S) or the pane just went: next pass.
                Err(e) => warn!("showing #{} in {}: {e}", m.id, pane.pane_id),
            }
        }
        if !shown.is_empty() {
            let rows: Vec<&MessageRow> = shown.iter().collect();
            if let Err(e) = ctx.store.mark_delivered(&rows) {
                // Shown already: recorded later, never shown again.
                warn!("recording {} shown message(s): {e}", rows.len());
                self.typed.extend(shown);
            }
            self.mirror_dirty = true;
        }
        Ok(notices)
    }

    /// Whether the agent's own program is an interactive shell (its
    /// profile is `shell`, its command runs no `-c` script): only then is a
    /// message shown in its pane (and counted delivered), and never typed.
    fn runs_a_shell(&self, ctx: &Ctx, spec: Option<&AgencySpec>, agent: &str) -> bool {
        let default = ctx.ws.default_agent_command();
        let Some(a) = spec.and_then(|s| s.agent(agent)) else {
            return false;
        };
        let (command, p) = profile::resolve(&self.profiles, a, &default);
        p.is_some_and(|p| p.name == "shell") && crate::runtime::interactive_shell(&command)
    }

    /// See `still_the_router`.
    fn holds_lock(&mut self, registry: &Path) -> bool {
        self.lock
            .as_mut()
            .is_some_and(|lock| still_the_router(registry, lock))
    }

    /// Records the deliveries that could not be recorded when typed.
    fn record_typed(&mut self, ctx: &mut Ctx) {
        if self.typed.is_empty() {
            return;
        }
        let rows: Vec<&MessageRow> = self.typed.iter().collect();
        match ctx.store.mark_delivered(&rows) {
            Ok(_) => {
                info!("recorded the delivery of {} typed message(s)", rows.len());
                self.typed.clear();
                self.mirror_dirty = true;
            }
            Err(e) => warn!(
                "cannot record the delivery of {} typed message(s) yet: {e}; their recipients wait",
                rows.len()
            ),
        }
    }

    /// Recipients whose last typed message is not recorded yet.
    fn held(&self) -> HashSet<(&str, &str)> {
        self.typed
            .iter()
            .map(|m| (m.agency.as_str(), m.agent.as_str()))
            .collect()
    }

    /// The registry database was deleted or replaced under us (its file
    /// is another one now): the next messages are in the new one.
    fn reopen(&mut self, ctx: &mut Ctx) {
        match Ctx::open_store(&ctx.ws) {
            Ok(store) => {
                // Not closed: closing the last connection to the old file
                // checkpoints and removes `agency.db-wal` by name, which may
                // be the new database's by now.
                std::mem::forget(std::mem::replace(&mut ctx.store, store));
                if !self.typed.is_empty() {
                    warn!(
                        "{} typed message(s) were in the old database; not recorded",
                        self.typed.len()
                    );
                    self.typed.clear();
                }
                self.shown.clear();
                self.mirrored = None;
                warn!("the registry database was replaced or deleted; using the new one");
            }
            Err(e) => warn!("the registry database was replaced; cannot open the new one: {e}"),
        }
    }

    /// Keeps the messages whose agent shows its prompt, with an empty input
    /// box, on a screen that has not changed since the last look (for
    /// agents whose profile knows their prompt; others pass as they are),
    /// each with its agent's profile.
    fn prompt_ready<'m>(
        &mut self,
        ctx: &Ctx,
        ready: Vec<(&'m MessageRow, String)>,
    ) -> Result<Vec<(&'m MessageRow, String, Option<Profile>)>> {
        let mut specs: HashMap<String, Option<AgencySpec>> = HashMap::new();
        let default = ctx.ws.default_agent_command();
        let mut checked = Vec::new();
        let mut pass = Vec::new();
        for (m, pane) in ready {
            let spec = specs
                .entry(m.agency.clone())
                .or_insert_with(|| AgencySpec::load(&ctx.ws.agency_dir(&m.agency)).ok());
            let p = match spec.as_ref().and_then(|s| s.agent(&m.agent)) {
                Some(a) => profile::resolve(&self.profiles, a, &default).1,
                None => profile::for_agent(&self.profiles, None, &default),
            };
            match p.cloned() {
                Some(p) if p.ready.is_some() => checked.push((m, pane, p)),
                p => pass.push((m, pane, p)),
            }
        }
        if checked.is_empty() {
            return Ok(pass);
        }
        let panes: Vec<String> = checked.iter().map(|(_, p, _)| p.clone()).collect();
        let screens = ctx.tmux.capture(&panes)?;
        for ((m, pane, profile), screen) in checked.into_iter().zip(screens) {
            let stable = self.screens.get(&pane) == Some(&screen);
            if stable && profile.can_type(&screen) {
                self.screens.remove(&pane);
                self.typed_over.insert(pane.clone(), screen);
                pass.push((m, pane, Some(profile)));
            } else {
                self.screens.insert(pane, screen);
            }
        }
        Ok(pass)
    }

    /// Picks up edits to the workspace's `profiles.toml`; a broken one is
    /// reported and the profiles in use are kept.
    fn reload_profiles(&mut self, ctx: &Ctx) {
        let stamp = fs::metadata(ctx.ws.root.join("profiles.toml"))
            .and_then(|m| m.modified())
            .ok();
        if stamp == self.profiles_stamp {
            return;
        }
        self.profiles_stamp = stamp;
        match profile::load(&ctx.ws.root) {
            Ok(p) => self.profiles = p,
            Err(e) => warn!("{e}"),
        }
        for w in profile::warnings(&ctx.ws.root) {
            warn!("{w}");
        }
    }

    /// Looks again at panes just typed into: a message still in the input
    /// box (the submit key was lost, or arrived while the program was
    /// still taking the paste) gets the submit key again.
    fn verify(&mut self, ctx: &mut Ctx) -> Result<()> {
        let due = self.due_looks(ctx)?;
        if due.is_empty() {
            return Ok(());
        }
        let screens = ctx.tmux.capture(&due)?;
        let mut looks = Looks::default();
        for (pane, screen) in due.into_iter().zip(screens) {
            self.look_at(pane, &screen, &mut looks);
        }
        self.act_on(ctx, looks)
    }

    /// The panes whose typed message is due for a look. A pane that has
    /// gone cannot be captured: it is forgotten.
    fn due_looks(&mut self, ctx: &Ctx) -> Result<Vec<String>> {
        let due: Vec<String> = self
            .unsent
            .iter()
            .filter(|(_, u)| u.at.elapsed() >= VERIFY_AFTER)
            .map(|(p, _)| p.clone())
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        let live: HashSet<String> = ctx
            .tmux
            .list_panes()?
            .into_iter()
            .filter(|p| !p.dead)
            .map(|p| p.pane_id)
            .collect();
        let (due, gone): (Vec<String>, Vec<String>) =
            due.into_iter().partition(|p| live.contains(p));
        for p in gone {
            self.unsent.remove(&p);
        }
        Ok(due)
    }

    /// Reads `screen` of `pane` for its unsent message, and notes in
    /// `looks` what to do about it.
    fn look_at(&mut self, pane: String, screen: &str, looks: &mut Looks) {
        let u = self.unsent.get_mut(&pane).expect("present");
        match u.look(screen) {
            Look::Taken => {
                self.unsent.remove(&pane);
            }
            Look::Wait => {}
            Look::Unread if u.typed_at.elapsed() >= TAKE_LIMIT => {
                let why = format!(
                    "{} showed nothing of it for {}s after it was typed",
                    u.to,
                    TAKE_LIMIT.as_secs()
                );
                looks
                    .failed
                    .push((self.unsent.remove(&pane).expect("present"), why));
            }
            Look::Unread => u.at = Instant::now(),
            Look::Unsent if u.presses >= MAX_RESUBMITS => {
                let why = format!(
                    "still in the input box of {} after {} presses of {}",
                    u.to,
                    u.presses + 1,
                    u.profile.submit
                );
                looks
                    .failed
                    .push((self.unsent.remove(&pane).expect("present"), why));
            }
            Look::Unsent => {
                // Worth a line: it tells which CLIs lose submit keys.
                info!(
                    "{} still in the input box of {pane} ({}): {} again",
                    u.head, u.profile.name, u.profile.submit
                );
                looks.presses.push(Op::PressKey {
                    pane: pane.clone(),
                    key: u.profile.submit.clone(),
                });
                looks
                    .resubmitted
                    .push((u.id, u.agency.clone(), u.to.clone(), u.presses + 1));
                u.presses += 1;
                u.screen = None;
                u.at = Instant::now();
            }
        }
    }

    /// Records the messages given up on, and presses the submit keys again.
    fn act_on(&mut self, ctx: &mut Ctx, looks: Looks) -> Result<()> {
        for (u, why) in looks.failed {
            warn!("{} failed: {why}", u.head);
            if ctx.store.fail_delivered(u.id, &u.to, &u.agency, &why)? {
                self.mirror_dirty = true;
            }
        }
        if !looks.presses.is_empty() && ctx.tmux.batch(&looks.presses).is_ok() {
            // What `agency metrics` counts as resubmitted.
            for (id, agency, to, press) in looks.resubmitted {
                let detail = serde_json::json!({"id": id, "to": to, "press": press});
                if let Err(e) = ctx.record(Event::new(&agency, "message.resubmitted", detail)) {
                    warn!("#{id}: {e}");
                }
            }
        }
        Ok(())
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
                warn!("{e}");
            }
            self.mirrored = Some(sig);
            self.mirror_dirty = false;
            self.mirror_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(before: &str) -> Unsent {
        Unsent {
            id: 1,
            agency: "A".into(),
            to: "A/dev".into(),
            head: "[msg #1 BRIEFING from agency]".into(),
            body: "You are dev.\nline two".into(),
            profile: profile::builtins()["codex"].clone(),
            before: Some(before.into()),
            typed_at: Instant::now(),
            at: Instant::now(),
            presses: 0,
            screen: None,
        }
    }

    fn row(id: i64, body: &str) -> MessageRow {
        MessageRow {
            id,
            from: "human".into(),
            to: "A/dev".into(),
            agency: "A".into(),
            agent: "dev".into(),
            kind: "NOTE".into(),
            body: body.into(),
            payload: None,
            state: crate::model::MessageState::Queued,
            attempts: 0,
            last_error: None,
            created_at: String::new(),
            delivered_at: None,
        }
    }

    fn buffer_of(ops: &[Op]) -> String {
        match &ops[0] {
            Op::Paste { buffer, .. } => buffer.clone(),
            op => panic!("not a paste: {op:?}"),
        }
    }

    #[test]
    fn paste_buffers_are_this_routers_own() {
        let m = row(1, "two\nlines");
        let a = buffer_of(&delivery_ops(&m, "%1", None));
        let b = buffer_of(&delivery_ops(&m, "%1", None));
        // Another router (another process) numbers from 1 too.
        assert!(
            a.starts_with(&format!("agency-msg-{}-", std::process::id())),
            "{a}"
        );
        assert_ne!(a, b);
    }

    const IDLE: &str = "  Welcome\n\n› Ask Codex to do anything\n\n  gpt · ~/p\n";

    #[test]
    fn a_message_is_taken_only_on_evidence() {
        // Nothing drawn yet: the agent has not read it.
        let mut u = typed(IDLE);
        assert_eq!(u.look(IDLE), Look::Unread);
        assert_eq!(u.look(IDLE), Look::Unread);
        // Its paste shows, while something else reads as work going on:
        // still ours, and no key is pressed into it.
        let pasted_busy = "  Booting (esc to interrupt)\n\n› [Pasted Content 2270 chars]\n";
        assert_eq!(u.look(pasted_busy), Look::Wait);
        assert_eq!(u.look(pasted_busy), Look::Wait);
        // Settled at an idle prompt, still there: submit again.
        let pasted = "  Welcome\n\n› [Pasted Content 2270 chars]\n\n  gpt · ~/p\n";
        assert_eq!(u.look(pasted), Look::Wait);
        assert_eq!(u.look(pasted), Look::Unsent);
        // Gone from the box, at work: taken.
        let working =
            "› [msg #1 BRIEFING from agency]\n\n  Working (esc to interrupt)\n\n› Ask Codex to do anything\n";
        assert_eq!(u.look(working), Look::Taken);
        // Gone from the box, done already: taken once the screen settles.
        let mut u = typed(IDLE);
        let done = "› [msg #1 BRIEFING from agency]\n\n• Done.\n\n› Ask Codex to do anything\n";
        assert_eq!(u.look(done), Look::Wait);
        assert_eq!(u.look(done), Look::Taken);
    }
}
