//! The only door to tmux: a small typed API over `tmux_interface`.
//!
//! Every call goes to the configured server (`-L socket`), runs with a null
//! stdin, and turns a failed exit status or any stderr output into a typed
//! [`TmuxError`] (`tmux_interface`'s `output()` is `Ok` even when tmux failed).
//! Several commands are sent as one `;`-separated sequence where we can, since
//! each tmux process costs a few milliseconds while a command inside one costs
//! almost nothing.

use std::borrow::Cow;
use std::io;

use tmux_interface::{StdIO, Tmux as TmuxProcess, TmuxCommand, TmuxCommands};

/// What went wrong talking to tmux.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed (no `tmux` on PATH)")]
    Missing,
    #[error("no tmux server is running{}", socket_label(.socket))]
    NoServer { socket: Option<String> },
    #[error("cannot reach the tmux server{}: {stderr}", socket_label(.socket))]
    Unreachable {
        socket: Option<String>,
        stderr: String,
    },
    #[error("tmux {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("could not run tmux: {0}")]
    Spawn(io::Error),
}

fn socket_label(socket: &Option<String>) -> String {
    match socket {
        Some(s) => format!(" on socket `{s}`"),
        None => String::new(),
    }
}

impl TmuxError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TmuxError::Missing => {
                Some("install tmux (e.g. `apt-get install tmux` or `brew install tmux`)".into())
            }
            TmuxError::NoServer { .. } => {
                Some("run `agency create NAME` to start an agency (it starts tmux)".into())
            }
            TmuxError::Unreachable { .. } => Some(
                "check AGENCY_TMUX_SOCKET / [tmux] socket in agency.toml and that TMUX_TMPDIR is writable"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A pane as tmux reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneInfo {
    pub session: String,
    pub window_index: u32,
    pub window_name: String,
    pub window_id: String,
    pub pane_id: String,
    pub dead: bool,
    /// In copy-mode or another mode: keys would drive the mode, not the program.
    pub in_mode: bool,
    pub current_command: String,
    /// Value of the session's `@agency-home` option: set on sessions this tool made.
    pub agency_home: String,
    /// The pane's process: leader of the process group its program runs in.
    pub pid: u32,
}

/// What to run in a new pane.
#[derive(Debug, Clone)]
pub struct PaneSpec {
    /// Window name (ignored for split panes).
    pub name: String,
    pub dir: String,
    pub env: Vec<(String, String)>,
    /// A shell command line run by tmux's default shell; `None` starts the
    /// user's default shell.
    pub command: Option<String>,
    /// When its program exits, the pane stays, showing its last screen with
    /// this line (a tmux format) at the bottom; `None`: the pane closes.
    pub dead_note: Option<String>,
}

/// Where a new window goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// After the last window of the session.
    End,
    /// Right after this window (a window id, `@N`).
    After(String),
    /// Right before this window (a window id, `@N`).
    Before(String),
}

/// One step of a batch; the ones that make a pane report its id.
#[derive(Debug, Clone)]
pub enum Op {
    /// A detached session with its first window.
    NewSession {
        session: String,
        pane: PaneSpec,
    },
    /// A window in `session`, placed by `place`.
    NewWindow {
        session: String,
        place: Place,
        pane: PaneSpec,
    },
    /// A pane split off the window holding `target`.
    SplitWindow {
        target: String,
        pane: PaneSpec,
    },
    SelectLayout {
        target: String,
        layout: String,
    },
    /// Types `text` into a pane as literal keys (no key names, no shell).
    TypeText {
        pane: String,
        text: String,
    },
    /// Pastes `text` into a pane through a named buffer, bracketed if the
    /// program asked for it; the buffer is deleted after.
    Paste {
        pane: String,
        buffer: String,
        text: String,
    },
    /// Presses one key (e.g. `Enter`).
    PressKey {
        pane: String,
        key: String,
    },
    /// Prints `text` on the invocation's output (in the context of `pane`).
    Print {
        pane: String,
        text: String,
    },
    /// Shows a message on the status line of clients watching the pane.
    DisplayMessage {
        pane: String,
        text: String,
    },
    /// Starts `pane`'s command again in the same pane (ending what runs
    /// there), as `spec` says.
    Respawn {
        pane: String,
        spec: PaneSpec,
    },
    /// A user option (`@name`) on a session.
    SetSessionOption {
        session: String,
        key: String,
        value: String,
    },
}

impl Op {
    fn makes_pane(&self) -> bool {
        matches!(
            self,
            Op::NewSession { .. } | Op::NewWindow { .. } | Op::SplitWindow { .. }
        )
    }
}

/// A handle on one tmux server.
#[derive(Debug, Clone)]
pub struct Tmux {
    socket: Option<String>,
}

/// Separator tmux reads between the fields of our formats; tabs are safe
/// because names are validated and tmux shows control characters escaped.
const FIELD_SEP: char = '\t';

impl Tmux {
    /// `socket` is a `-L` name; `None` or empty means the user's default server.
    pub fn new(socket: Option<String>) -> Self {
        Tmux {
            socket: socket.filter(|s| !s.is_empty()),
        }
    }

    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    /// Runs a command sequence (one tmux process) and returns its stdout.
    fn run(&self, cmds: Vec<TmuxCommand<'_>>) -> Result<String, TmuxError> {
        let (stdout, result) = self.run_output(cmds);
        result.map(|()| stdout)
    }

    /// Runs a command sequence and returns what it printed even when it
    /// failed: tmux stops a sequence at its first failing command, and what
    /// the commands before it printed tells how far it got.
    fn run_output(&self, cmds: Vec<TmuxCommand<'_>>) -> (String, Result<(), TmuxError>) {
        let label = cmds
            .first()
            .and_then(|c| c.name.as_ref().map(|n| n.to_string()))
            .unwrap_or_default();
        // On a command line, tmux reads an argument ending in `;` as a
        // separator: escape every one.
        let mut seq = TmuxCommands::new();
        for c in cmds {
            let mut args = c.to_vec().into_iter();
            let mut escaped = TmuxCommand::new();
            if let Some(name) = args.next() {
                escaped.name(name.into_owned());
            }
            for a in args {
                escaped.push_param(escape_trailing_semicolon(&a).into_owned());
            }
            seq.push(escaped);
        }
        let mut process = TmuxProcess::new()
            .commands(seq)
            .stdin(Some(StdIO::Null))
            .stdout(Some(StdIO::Piped))
            .stderr(Some(StdIO::Piped));
        if let Some(s) = &self.socket {
            process = process.socket_name(s.as_str());
        }
        let output = match process.output() {
            Ok(o) => o.into_inner(),
            Err(tmux_interface::Error::IO(e)) if e.kind() == io::ErrorKind::NotFound => {
                return (String::new(), Err(TmuxError::Missing))
            }
            Err(tmux_interface::Error::IO(e)) => return (String::new(), Err(TmuxError::Spawn(e))),
            Err(e) => {
                return (
                    String::new(),
                    Err(TmuxError::Spawn(io::Error::other(e.to_string()))),
                )
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if !output.status.success() || !stderr.is_empty() {
            return (stdout, Err(self.classify(label, stderr)));
        }
        (stdout, Ok(()))
    }

    fn classify(&self, command: String, stderr: String) -> TmuxError {
        let socket = self.socket.clone();
        if stderr.starts_with("no server running") {
            TmuxError::NoServer { socket }
        } else if stderr.starts_with("error connecting")
            || stderr.contains("couldn't create directory")
            || stderr.contains("Permission denied")
            || stderr.starts_with("server exited")
        {
            TmuxError::Unreachable { socket, stderr }
        } else {
            TmuxError::Failed { command, stderr }
        }
    }

    /// Checks that tmux exists and that its server is running or can be
    /// started. (Not `start-server`: with no sessions that server exits at
    /// once, racing a `new-session` sent right after it.)
    pub fn probe(&self) -> Result<(), TmuxError> {
        self.list_panes().map(|_| ())
    }

    /// Every pane on the server; an absent server has none.
    pub fn list_panes(&self) -> Result<Vec<PaneInfo>, TmuxError> {
        let format = [
            "#{session_name}",
            "#{window_index}",
            "#{window_name}",
            "#{window_id}",
            "#{pane_id}",
            "#{pane_dead}",
            "#{pane_in_mode}",
            "#{pane_current_command}",
            "#{@agency-home}",
            "#{pane_pid}",
        ]
        .join(&FIELD_SEP.to_string());
        let mut c = cmd("list-panes");
        c.push_flag("-a").push_option("-F", format);
        let out = match self.run(vec![c]) {
            Ok(out) => out,
            Err(TmuxError::NoServer { .. }) => return Ok(Vec::new()),
            // A socket file left behind by a dead server reads as "no server".
            Err(TmuxError::Unreachable { stderr, .. })
                if stderr.contains("No such file") || stderr.contains("Connection refused") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        Ok(out.lines().filter_map(parse_pane_line).collect())
    }

    pub fn has_session(&self, session: &str) -> Result<bool, TmuxError> {
        Ok(self.list_panes()?.iter().any(|p| p.session == session))
    }

    /// Runs `ops` in as few tmux invocations as possible and returns the ids
    /// of the panes they made, in order.
    pub fn batch(&self, ops: &[Op]) -> Result<Vec<String>, TmuxError> {
        // tmux resolves `-t` targets before a sequence runs, so a session
        // made by `new-session` cannot be named later in the same sequence:
        // each new session ends its invocation.
        let mut ids = Vec::new();
        let mut rest = ops;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|o| matches!(o, Op::NewSession { .. }))
                .map_or(rest.len(), |i| i + 1);
            let (now, later) = rest.split_at(end);
            ids.extend(self.run_sequence(now)?);
            rest = later;
        }
        Ok(ids)
    }

    fn run_sequence(&self, ops: &[Op]) -> Result<Vec<String>, TmuxError> {
        let expected = ops.iter().filter(|o| o.makes_pane()).count();
        let out = self.run(ops.iter().flat_map(op_commands).collect())?;
        let ids: Vec<String> = out
            .lines()
            .filter(|l| l.starts_with('%'))
            .map(str::to_string)
            .collect();
        if ids.len() != expected {
            return Err(TmuxError::Failed {
                command: "batch".into(),
                stderr: format!("expected {expected} new panes, tmux reported {}", ids.len()),
            });
        }
        Ok(ids)
    }

    /// Runs `ops` in one invocation (they make no session) and returns the
    /// `Op::Print` lines that were printed: on a failure, those of the ops
    /// before the failing one.
    pub fn batch_printing(&self, ops: &[Op]) -> (Vec<String>, Result<(), TmuxError>) {
        let (stdout, result) = self.run_output(ops.iter().flat_map(op_commands).collect());
        (stdout.lines().map(str::to_string).collect(), result)
    }

    /// The visible screen of each pane, in one tmux invocation.
    pub fn capture(&self, panes: &[String]) -> Result<Vec<String>, TmuxError> {
        if panes.is_empty() {
            return Ok(Vec::new());
        }
        // Each screen is preceded by a marker line of our own, so the
        // concatenated output splits back into screens.
        const MARK: &str = "@@agency-screen-7f3a9c@@";
        let mut cmds = Vec::new();
        for p in panes {
            let mut m = cmd("display-message");
            m.push_flag("-p")
                .push_option("-t", p.clone())
                .push_param(MARK);
            let mut c = cmd("capture-pane");
            c.push_flag("-p").push_option("-t", p.clone());
            cmds.push(m);
            cmds.push(c);
        }
        let out = self.run(cmds)?;
        let mut screens: Vec<String> = out
            .split(&format!("{MARK}\n"))
            .skip(1)
            .map(str::to_string)
            .collect();
        screens.resize(panes.len(), String::new());
        Ok(screens)
    }

    /// tmux 3.3a can miss the exit of a pane's program (here, about one
    /// pane in three whose program ran a moment): the pane reads as dead
    /// but has no exit status and no remain-on-exit line until another
    /// child of the server exits. A job that ends at once is such a child.
    pub fn reap_exited(&self) -> Result<(), TmuxError> {
        let mut c = cmd("run-shell");
        c.push_param("true");
        self.run(vec![c]).map(|_| ())
    }

    /// Ends a session and the programs in its panes. tmux only sends them
    /// SIGHUP, which some agent CLIs (Gemini CLI among them) survive,
    /// running on with no terminal: so what is left of each pane's process
    /// group gets SIGTERM, then SIGKILL.
    pub fn kill_session(&self, session: &str) -> Result<(), TmuxError> {
        let pids: Vec<u32> = self
            .list_panes()?
            .into_iter()
            .filter(|p| p.session == session && !p.dead)
            .map(|p| p.pid)
            .collect();
        let mut c = cmd("kill-session");
        c.push_option("-t", exact_session(session));
        self.run(vec![c])?;
        end_process_groups(&pids);
        Ok(())
    }

    /// Attaches the user's terminal to `target`, or switches the current
    /// client when already inside tmux on this same server. This is the one
    /// call that needs the terminal, so stdin is inherited.
    pub fn attach(&self, target: &str) -> Result<(), TmuxError> {
        // $TMUX is "<socket path>,<pid>,<session>"; the socket's file name is
        // the -L name ("default" without one).
        let ours = self.socket.as_deref().unwrap_or("default");
        let inside_same_server = std::env::var("TMUX").ok().is_some_and(|t| {
            let path = t.split(',').next().unwrap_or("");
            std::path::Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                == Some(ours)
        });
        let mut c = cmd(if inside_same_server {
            "switch-client"
        } else {
            "attach-session"
        });
        c.push_option("-t", target.to_string());
        let mut process = TmuxProcess::new()
            .command(c)
            .stdin(Some(StdIO::Inherit))
            .stdout(Some(StdIO::Inherit))
            .stderr(Some(StdIO::Piped));
        if let Some(s) = &self.socket {
            process = process.socket_name(s.as_str());
        }
        let mut command = process.into_command();
        // Attaching from inside another tmux server nests a client.
        command.env_remove("TMUX");
        let output = match command.output() {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(TmuxError::Missing),
            Err(e) => return Err(TmuxError::Spawn(e)),
        };
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if !output.status.success() {
            return Err(self.classify("attach-session".into(), stderr));
        }
        Ok(())
    }
}

fn cmd(name: &'static str) -> TmuxCommand<'static> {
    let mut c = TmuxCommand::new();
    c.name(name);
    c
}

/// `=name` makes tmux match the session name exactly instead of by prefix.
fn exact_session(session: &str) -> String {
    format!("={session}")
}

/// tmux treats an argument ending in `;` as a command separator; a `\;` keeps
/// it literal.
fn escape_trailing_semicolon(arg: &str) -> Cow<'_, str> {
    match arg.strip_suffix(';') {
        Some(head) => Cow::Owned(format!("{head}\\;")),
        None => Cow::Borrowed(arg),
    }
}

fn push_pane(c: &mut TmuxCommand<'static>, pane: &PaneSpec, window_name: bool) {
    c.push_flag("-P").push_option("-F", "#{pane_id}");
    if window_name {
        c.push_option("-n", pane.name.clone());
    }
    push_start(c, pane);
}

/// Where and how a pane's program starts: folder, environment, command.
fn push_start(c: &mut TmuxCommand<'static>, pane: &PaneSpec) {
    c.push_option("-c", pane.dir.clone());
    for (k, v) in &pane.env {
        c.push_option("-e", format!("{k}={v}"));
    }
    if let Some(command) = &pane.command {
        c.push_param(command.clone());
    }
}

/// `make` (new-session, new-window or split-window), with a hook around it
/// that keeps the new pane when its program exits. The hook runs before the program
/// can exit (tmux handles child exits only between commands), which setting
/// the option by the pane's id afterwards could not promise. It is global,
/// at an index of our own, and gone again before the sequence ends: a
/// session-level hook, even once unset, would hide the user's global ones.
fn with_keep_dead_hook(
    make: TmuxCommand<'static>,
    hook: &str,
    note: &str,
) -> Vec<TmuxCommand<'static>> {
    let name = format!("{hook}[{KEEP_DEAD_HOOK}]");
    // The hook is a tmux command line: the note goes in single quotes.
    let note = note.replace('\'', "");
    let mut set = cmd("set-hook");
    set.push_flag("-g")
        .push_param(name.clone())
        .push_param(format!(
            "set-option -p remain-on-exit on ; set-option -p remain-on-exit-format '{note}'"
        ));
    let mut unset = cmd("set-hook");
    unset.push_flag("-g").push_flag("-u").push_param(name);
    vec![set, make, unset]
}

const KEEP_DEAD_HOOK: u32 = 417;

fn op_commands(op: &Op) -> Vec<TmuxCommand<'static>> {
    let one = match op {
        Op::NewSession { session, pane } => {
            let mut c = cmd("new-session");
            // A roomy default size so splits fit before anyone attaches.
            c.push_flag("-d")
                .push_option("-s", session.clone())
                .push_option("-x", "200")
                .push_option("-y", "50");
            push_pane(&mut c, pane, true);
            return match &pane.dead_note {
                Some(note) => with_keep_dead_hook(c, "after-new-session", note),
                None => vec![c],
            };
        }
        Op::NewWindow {
            session,
            place,
            pane,
        } => {
            let mut c = cmd("new-window");
            c.push_flag("-d");
            match place {
                Place::After(target) => {
                    c.push_flag("-a").push_option("-t", target.clone());
                }
                Place::Before(target) => {
                    c.push_flag("-b").push_option("-t", target.clone());
                }
                // `=session:` is the next free index at the end of the session.
                Place::End => {
                    c.push_option("-t", format!("{}:", exact_session(session)));
                }
            }
            push_pane(&mut c, pane, true);
            return match &pane.dead_note {
                Some(note) => with_keep_dead_hook(c, "after-new-window", note),
                None => vec![c],
            };
        }
        Op::SplitWindow { target, pane } => {
            let mut c = cmd("split-window");
            c.push_flag("-d").push_option("-t", target.clone());
            push_pane(&mut c, pane, false);
            return match &pane.dead_note {
                Some(note) => with_keep_dead_hook(c, "after-split-window", note),
                None => vec![c],
            };
        }
        Op::Respawn { pane, spec } => {
            let mut c = cmd("respawn-pane");
            c.push_flag("-k").push_option("-t", pane.clone());
            push_start(&mut c, spec);
            c
        }
        Op::TypeText { pane, text } => {
            let mut c = cmd("send-keys");
            c.push_option("-t", pane.clone())
                .push_flag("-l")
                .push_flag("--")
                .push_param(text.clone());
            c
        }
        Op::Paste { pane, buffer, text } => {
            let mut set = cmd("set-buffer");
            set.push_option("-b", buffer.clone())
                .push_flag("--")
                .push_param(text.clone());
            let mut paste = cmd("paste-buffer");
            paste
                .push_flag("-p")
                .push_flag("-d")
                .push_option("-b", buffer.clone())
                .push_option("-t", pane.clone());
            return vec![set, paste];
        }
        Op::PressKey { pane, key } => {
            let mut c = cmd("send-keys");
            c.push_option("-t", pane.clone()).push_param(key.clone());
            c
        }
        Op::Print { pane, text } => {
            let mut c = cmd("display-message");
            c.push_flag("-p")
                .push_option("-t", pane.clone())
                .push_param(text.replace('#', "##"));
            c
        }
        Op::DisplayMessage { pane, text } => {
            let mut c = cmd("display-message");
            // The text is a format: `#` must be doubled to stay literal.
            c.push_option("-t", pane.clone())
                .push_param(text.replace('#', "##"));
            c
        }
        Op::SelectLayout { target, layout } => {
            let mut c = cmd("select-layout");
            c.push_option("-t", target.clone())
                .push_param(layout.clone());
            c
        }
        Op::SetSessionOption {
            session,
            key,
            value,
        } => {
            let mut c = cmd("set-option");
            // set-option's target is a pane: `=name:` names the session exactly.
            c.push_option("-t", format!("{}:", exact_session(session)))
                .push_param(key.clone())
                .push_param(value.clone());
            c
        }
    };
    vec![one]
}

/// Waits a moment for each process group to end, then signals what is left
/// of it: SIGTERM, and SIGKILL if that is not enough.
pub fn end_process_groups(pids: &[u32]) {
    let alive = |pgid: u32| {
        // SAFETY: signal 0 only checks that the group exists.
        pgid > 1
            && unsafe { libc::kill(-(pgid as libc::pid_t), 0) } == 0
            && group_has_live_member(pgid)
    };
    let wait = |limit: std::time::Duration| {
        let deadline = std::time::Instant::now() + limit;
        while pids.iter().any(|&p| alive(p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let signal = |sig: libc::c_int| {
        for &p in pids.iter().filter(|&&p| alive(p)) {
            // SAFETY: sends a signal to a process group this session ran.
            unsafe { libc::kill(-(p as libc::pid_t), sig) };
        }
    };
    wait(std::time::Duration::from_millis(1500));
    signal(libc::SIGTERM);
    wait(std::time::Duration::from_millis(1500));
    signal(libc::SIGKILL);
}

/// Whether a process group has a member that is not a zombie (an exited
/// process nobody has reaped still counts for `kill`). Where there is no
/// `/proc` to tell, every member counts.
fn group_has_live_member(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces or parens.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|g| g.parse::<u32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

fn parse_pane_line(line: &str) -> Option<PaneInfo> {
    let f: Vec<&str> = line.split(FIELD_SEP).collect();
    if f.len() < 10 {
        return None;
    }
    Some(PaneInfo {
        session: f[0].to_string(),
        window_index: f[1].parse().ok()?,
        window_name: f[2].to_string(),
        window_id: f[3].to_string(),
        pane_id: f[4].to_string(),
        dead: f[5] == "1",
        in_mode: f[6] != "0",
        current_command: f[7].to_string(),
        agency_home: f[8].to_string(),
        pid: f[9].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_semicolon_is_escaped() {
        assert_eq!(escape_trailing_semicolon("echo hi;"), "echo hi\\;");
        assert_eq!(escape_trailing_semicolon("a;b"), "a;b");
    }

    #[test]
    fn pane_lines_parse() {
        let p = parse_pane_line("S\t0\tcoordinator\t@2\t%3\t0\t0\tbash\t/w\t42").unwrap();
        assert_eq!(p.pane_id, "%3");
        assert_eq!(p.window_index, 0);
        assert!(!p.dead);
        assert!(parse_pane_line("garbage").is_none());
    }
}
