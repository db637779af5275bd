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
    #[error("tmux {command} is too long for tmux ({bytes} bytes; at most {MAX_LINE})")]
    TooLong { command: String, bytes: usize },
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
            TmuxError::TooLong { .. } => Some(
                "shorten the agent command (or its environment), e.g. put a long command in a script and run that"
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
    /// Its pseudo-terminal (`/dev/pts/N`): what is written there is shown
    /// in the pane as output, never read as input.
    pub tty: String,
    /// The folder its program was started in.
    pub start_path: String,
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

    fn sets_hook(&self) -> bool {
        match self {
            Op::NewSession { pane, .. }
            | Op::NewWindow { pane, .. }
            | Op::SplitWindow { pane, .. } => pane.dead_note.is_some(),
            _ => false,
        }
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
        let label = label(&cmds);
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
            // tmux prints these two raw, and any program can name itself
            // with a tab or newline: control characters become `?`.
            "#{s/[\x01-\x1f\x7f]/?/:pane_current_command}",
            "#{s/[\x01-\x1f\x7f]/?/:@agency-home}",
            "#{pane_pid}",
            "#{pane_tty}",
            // Last: a folder name may hold anything, the separator too.
            "#{pane_start_path}",
        ]
        .join(&FIELD_SEP.to_string());
        let mut c = cmd("list-panes");
        c.push_flag("-a").push_option("-F", format);
        let out = match self.run(vec![c]) {
            Ok(out) => out,
            Err(TmuxError::NoServer { .. }) => return Ok(Vec::new()),
            // A socket file left behind by a dead (or dying) server reads as
            // "no server".
            Err(TmuxError::Unreachable { stderr, .. })
                if stderr.contains("No such file")
                    || stderr.contains("Connection refused")
                    || stderr.contains("server exited unexpectedly") =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        Ok(out.lines().filter_map(parse_pane_line).collect())
    }

    /// Per pane id, when its window last showed new output (Unix seconds,
    /// tmux's `window_activity`): a pane whose window has not changed since
    /// a look still shows what that look saw. An absent server has none.
    pub fn window_activity(&self) -> Result<std::collections::HashMap<String, u64>, TmuxError> {
        let mut c = cmd("list-panes");
        c.push_flag("-a")
            .push_option("-F", format!("#{{pane_id}}{FIELD_SEP}#{{window_activity}}"));
        let out = match self.run(vec![c]) {
            Ok(out) => out,
            Err(TmuxError::NoServer { .. } | TmuxError::Unreachable { .. }) => String::new(),
            Err(e) => return Err(e),
        };
        Ok(out
            .lines()
            .filter_map(|l| {
                let (id, at) = l.split_once(FIELD_SEP)?;
                Some((id.to_string(), at.trim().parse().ok()?))
            })
            .collect())
    }

    /// Sets a user option (`@name`) of the server, for status lines to
    /// show; an empty value unsets it.
    pub fn set_global_option(&self, name: &str, value: &str) -> Result<(), TmuxError> {
        let mut c = cmd("set-option");
        c.push_flag("-g");
        if value.is_empty() {
            c.push_flag("-u").push_param(name.to_string());
        } else {
            c.push_param(name.to_string()).push_param(value.to_string());
        }
        match self.run(vec![c]) {
            Ok(_) | Err(TmuxError::NoServer { .. }) => Ok(()),
            // A server gone with its socket file: no option to set either
            // (not worth the router's warning on every look).
            Err(TmuxError::Unreachable { stderr, .. })
                if stderr.contains("No such file") || stderr.contains("Connection refused") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub fn has_session(&self, session: &str) -> Result<bool, TmuxError> {
        Ok(self.list_panes()?.iter().any(|p| p.session == session))
    }

    /// Runs `ops` in as few tmux invocations as possible and returns the ids
    /// of the panes they made, in order.
    pub fn batch(&self, ops: &[Op]) -> Result<Vec<String>, TmuxError> {
        let (ids, result) = self.batch_partial(ops);
        result.map(|()| ids)
    }

    /// Like `batch`, and on failure still the ids of the panes made before
    /// it (whoever cleans up must know what is theirs).
    pub fn batch_partial(&self, ops: &[Op]) -> (Vec<String>, Result<(), TmuxError>) {
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
            match self.run_sequence(now) {
                Ok(made) => ids.extend(made),
                Err(e) => return (ids, Err(e)),
            }
            rest = later;
        }
        (ids, Ok(()))
    }

    fn run_sequence(&self, ops: &[Op]) -> Result<Vec<String>, TmuxError> {
        let expected = ops.iter().filter(|o| o.makes_pane()).count();
        let out = self.run_units(sequence_units(ops)).inspect_err(|_| {
            // A failed command ends its sequence before the hook it
            // follows is unset: unset ours here, or the user's own next
            // session would keep a dead pane with our note.
            if ops.iter().any(Op::sets_hook) {
                let _ = self.clear_keep_dead_hooks();
            }
        })?;
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

    /// Runs `units` (command lists that must run in one invocation, such
    /// as a hook with the command it wraps) in as few invocations as fit
    /// tmux's limit, in order; returns their output. Nothing runs if a
    /// unit cannot fit.
    fn run_units(&self, units: Vec<Vec<TmuxCommand<'static>>>) -> Result<String, TmuxError> {
        let (out, result) = self.run_units_output(units);
        result.map(|()| out)
    }

    /// `run_units`, returning what was printed even when an invocation
    /// failed (those after it do not run).
    fn run_units_output(
        &self,
        units: Vec<Vec<TmuxCommand<'static>>>,
    ) -> (String, Result<(), TmuxError>) {
        let sized: Vec<(usize, Vec<TmuxCommand<'static>>)> = units
            .into_iter()
            .map(|u| (u.iter().map(line_size).sum(), u))
            .collect();
        if let Some((bytes, unit)) = sized.iter().find(|(n, _)| *n > MAX_LINE) {
            let e = TmuxError::TooLong {
                command: label(unit),
                bytes: *bytes,
            };
            return (String::new(), Err(e));
        }
        let mut out = String::new();
        let mut now = Vec::new();
        let mut size = 0;
        for (n, unit) in sized {
            if size + n > MAX_LINE && !now.is_empty() {
                let (o, r) = self.run_output(std::mem::take(&mut now));
                out.push_str(&o);
                if r.is_err() {
                    return (out, r);
                }
                size = 0;
            }
            now.extend(unit);
            size += n;
        }
        if !now.is_empty() {
            let (o, r) = self.run_output(now);
            out.push_str(&o);
            return (out, r);
        }
        (out, Ok(()))
    }

    /// Unsets the hooks `with_keep_dead_hook` sets.
    fn clear_keep_dead_hooks(&self) -> Result<(), TmuxError> {
        let cmds = KEEP_DEAD_HOOKS
            .iter()
            .map(|h| {
                let mut c = cmd("set-hook");
                c.push_flag("-g")
                    .push_flag("-u")
                    .push_param(format!("{h}[{KEEP_DEAD_HOOK}]"));
                c
            })
            .collect();
        self.run(cmds).map(|_| ())
    }

    /// Runs `ops` (they make no session) and returns the `Op::Print` lines
    /// that were printed: on a failure, those of the ops before the failing
    /// one.
    pub fn batch_printing(&self, ops: &[Op]) -> (Vec<String>, Result<(), TmuxError>) {
        // In as many invocations as tmux's line limit needs (a long text
        // goes into its buffer in pieces first; see `sequence_units`).
        let (stdout, result) = self.run_units_output(sequence_units(ops));
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
        let mut units = Vec::new();
        for p in panes {
            let mut m = cmd("display-message");
            m.push_flag("-p")
                .push_option("-t", p.clone())
                .push_param(MARK);
            let mut c = cmd("capture-pane");
            c.push_flag("-p").push_option("-t", p.clone());
            units.push(vec![m, c]);
        }
        let out = self.run_units(units)?;
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
        super::process::end_groups(&pids);
        Ok(())
    }

    /// Attaches the user's terminal to `target`, or switches the current
    /// client when already inside tmux on this same server. This is the one
    /// call that needs the terminal, so stdin is inherited.
    /// Whether this process runs inside a client of this same server (so
    /// `attach` switches that client instead of nesting one).
    pub fn inside_same_server(&self) -> bool {
        // $TMUX is "<socket path>,<pid>,<session>"; the socket's file name is
        // the -L name ("default" without one).
        let ours = self.socket.as_deref().unwrap_or("default");
        std::env::var("TMUX").ok().is_some_and(|t| {
            let path = t.split(',').next().unwrap_or("");
            std::path::Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                == Some(ours)
        })
    }

    /// Switches the client this process runs in (see `inside_same_server`)
    /// to `target`.
    pub fn switch_client(&self, target: &str) -> Result<(), TmuxError> {
        let mut c = cmd("switch-client");
        c.push_option("-t", target.to_string());
        self.run(vec![c]).map(|_| ())
    }

    pub fn attach(&self, target: &str) -> Result<(), TmuxError> {
        let inside_same_server = self.inside_same_server();
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

/// `text` as a tmux format that expands to itself. tmux 3.3 expands
/// `#{...}`, `#(...)` (a shell command!) and `#X` in start folders (`-c`),
/// session and window names, `display-message` and format options, but not
/// in targets, commands, `-e` values, `send-keys -l` or buffers.
pub fn literal(text: &str) -> String {
    text.replace('#', "##")
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
        c.push_option("-n", literal(&pane.name));
    }
    push_start(c, pane);
}

/// Where and how a pane's program starts: folder, environment, command.
fn push_start(c: &mut TmuxCommand<'static>, pane: &PaneSpec) {
    c.push_option("-c", literal(&pane.dir));
    for (k, v) in &pane.env {
        c.push_option("-e", format!("{k}={v}"));
    }
    if let Some(command) = &pane.command {
        // `--`: a command starting with `-` is no flag.
        c.push_flag("--").push_param(command.clone());
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
const KEEP_DEAD_HOOKS: [&str; 3] = [
    "after-new-session",
    "after-new-window",
    "after-split-window",
];

/// tmux's client sends its command line to the server in one message of
/// at most 16384 bytes (`command too long` beyond): every argument with its
/// NUL, and a `;` between commands. One invocation stays under this.
const MAX_LINE: usize = 16 * 1024 - 512;
/// Text for a buffer goes over in pieces of at most this many bytes.
const CHUNK: usize = 8 * 1024;

/// The bytes `c` takes of tmux's command line, with its `;` separator.
fn line_size(c: &TmuxCommand<'_>) -> usize {
    c.to_vec()
        .iter()
        .map(|a| escape_trailing_semicolon(a).len() + 1)
        .sum::<usize>()
        + 2
}

fn label(unit: &[TmuxCommand<'_>]) -> String {
    unit.iter()
        .filter_map(|c| c.name.as_ref().map(|n| n.to_string()))
        .find(|n| n != "set-hook")
        .unwrap_or_default()
}

/// `text` in pieces of at most `CHUNK` bytes, cut between characters.
fn chunks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > CHUNK {
        let mut cut = CHUNK;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Commands that fill `buffer` with `text`: one `set-buffer`, or for a
/// long text one per piece, the later ones appending (each its own unit, so
/// every invocation fits).
fn fill_buffer(buffer: &str, text: &str) -> Vec<Vec<TmuxCommand<'static>>> {
    chunks(text)
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut set = cmd("set-buffer");
            if i > 0 {
                set.push_flag("-a");
            }
            set.push_option("-b", buffer.to_string())
                .push_flag("--")
                .push_param(piece.to_string());
            vec![set]
        })
        .collect()
}

/// An op as units for `run_units`: its commands together, except that a
/// text too long for one tmux command line goes through a buffer piece by
/// piece. Nothing reaches the pane before the whole text is in the buffer.
fn op_units(op: &Op) -> Vec<Vec<TmuxCommand<'static>>> {
    match op {
        Op::Paste { pane, buffer, text } if text.len() > CHUNK => {
            let mut units = fill_buffer(buffer, text);
            units.push(vec![paste(buffer, pane, true)]);
            units
        }
        // Literal keys are the same bytes as an unbracketed paste.
        Op::TypeText { pane, text } if text.len() > CHUNK => {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let buffer = format!("agency-keys-{}-{n}", std::process::id());
            let mut units = fill_buffer(&buffer, text);
            units.push(vec![paste(&buffer, pane, false)]);
            units
        }
        _ => vec![op_commands(op)],
    }
}

/// The units of a sequence of ops. A key pressed right after text typed
/// into the same pane goes in one invocation with it, so a message is never
/// left typed but not submitted by a split.
fn sequence_units(ops: &[Op]) -> Vec<Vec<TmuxCommand<'static>>> {
    let mut units: Vec<Vec<TmuxCommand<'static>>> = Vec::new();
    let mut last_text_pane: Option<&str> = None;
    for op in ops {
        // A submit key stays with its text, and a mark printed after them
        // (`Op::Print`) with both: the mark must mean they went in.
        match op {
            Op::PressKey { pane, .. } | Op::Print { pane, .. }
                if last_text_pane == Some(pane.as_str()) =>
            {
                units
                    .last_mut()
                    .expect("text came first")
                    .extend(op_commands(op));
            }
            _ => units.extend(op_units(op)),
        }
        last_text_pane = match op {
            Op::TypeText { pane, .. } | Op::Paste { pane, .. } | Op::PressKey { pane, .. } => {
                Some(pane)
            }
            _ => None,
        };
    }
    units
}

/// `paste-buffer` that deletes the buffer after; `bracketed`: as a paste
/// if the program asked for bracketed pastes.
fn paste(buffer: &str, pane: &str, bracketed: bool) -> TmuxCommand<'static> {
    let mut c = cmd("paste-buffer");
    if bracketed {
        c.push_flag("-p");
    }
    c.push_flag("-d")
        .push_option("-b", buffer.to_string())
        .push_option("-t", pane.to_string());
    c
}

fn op_commands(op: &Op) -> Vec<TmuxCommand<'static>> {
    let one = match op {
        Op::NewSession { session, pane } => {
            let mut c = cmd("new-session");
            // A roomy default size so splits fit before anyone attaches.
            c.push_flag("-d")
                .push_option("-s", literal(session))
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
            return vec![set, paste(buffer, pane, true)];
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
                .push_flag("--")
                .push_param(literal(text));
            c
        }
        Op::DisplayMessage { pane, text } => {
            let mut c = cmd("display-message");
            // The text is a format.
            c.push_option("-t", pane.clone())
                .push_flag("--")
                .push_param(literal(text));
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
                .push_flag("--")
                .push_param(key.clone())
                .push_param(value.clone());
            c
        }
    };
    vec![one]
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
        tty: f.get(10).unwrap_or(&"").to_string(),
        start_path: f.get(11..).map(|r| r.join("\t")).unwrap_or_default(),
    })
}

/// The most of a notice shown in a pane, in bytes: a courtesy, not the
/// message (that stays in the inbox).
pub const SHOWN_BYTES: usize = 4096;

/// `text` cut to about `SHOWN_BYTES`, saying how much is left out; its last
/// line (where to read all of it) stays when short.
fn capped(text: &str) -> String {
    if text.len() <= SHOWN_BYTES {
        return text.to_string();
    }
    let (head, last) = match text.rsplit_once('\n') {
        Some((h, l)) if l.len() <= SHOWN_BYTES / 4 => (h, l),
        _ => (text, ""),
    };
    let mut cut = SHOWN_BYTES - last.len() - 64;
    while !head.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = head.len() - cut;
    format!("{}\n… ({more} more bytes)\n{last}", &head[..cut])
}

/// Shows `text` in a pane by writing it to the pane's terminal as output
/// (like `write(1)`): the program in the pane never reads it, so a shell
/// never runs it. Control characters other than newline and tab are
/// dropped, and it is cut to `SHOWN_BYTES`. A pane whose output is stopped
/// is skipped, not waited for (an error: shown on a later pass); once some
/// of it is out, the rest follows (waiting a little) and it counts as
/// shown, so it never shows twice.
pub fn show_in_pane(tty: &str, text: &str) -> io::Result<()> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // Only a terminal device, never a file a hostile value could name.
    let meta = std::fs::metadata(tty)?;
    if !tty.starts_with("/dev/") || !meta.file_type().is_char_device() {
        return Err(io::Error::other(format!("{tty} is not a terminal")));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags((OFlags::NOCTTY | OFlags::NONBLOCK).bits() as i32)
        .open(tty)?;
    let clean: String = text
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let out = format!("\r\n{}\r\n", capped(&clean).replace('\n', "\r\n"));
    write_on(&mut f, out.as_bytes())
}

/// Writes all of `out` to a non-blocking terminal, continuing where a
/// partial write stopped; nothing written and blocked: an error.
fn write_on(f: &mut impl std::io::Write, mut out: &[u8]) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let mut wrote = false;
    while !out.is_empty() {
        match f.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                out = &out[n..];
                wrote = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && wrote => {
                if std::time::Instant::now() >= deadline {
                    // Partly shown: a courtesy, never shown again.
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_capped_and_keeps_its_last_line() {
        let long = format!("head\n{}\n-- it waits in the inbox --", "é".repeat(40_000));
        let shown = capped(&long);
        assert!(shown.len() <= SHOWN_BYTES, "{}", shown.len());
        assert!(shown.ends_with("more bytes)\n-- it waits in the inbox --"));
        assert_eq!(capped("short\nnote"), "short\nnote");
        assert!(capped(&"x".repeat(10_000)).len() <= SHOWN_BYTES);
    }

    /// A terminal that takes a few bytes, then would block, then more.
    struct Slow {
        got: Vec<u8>,
        calls: usize,
    }

    impl std::io::Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(2) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(7);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_partial_write_continues_where_it_stopped() {
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut tty = Slow {
            got: Vec::new(),
            calls: 0,
        };
        write_on(&mut tty, text).unwrap();
        assert_eq!(tty.got, text);
        // Blocked before anything went out: not shown, tried again later.
        let mut stopped = Slow {
            got: Vec::new(),
            calls: 1,
        };
        assert!(write_on(&mut stopped, text).is_err());
        assert!(stopped.got.is_empty());
    }

    #[test]
    fn no_server_has_no_option_to_set() {
        // A socket name no server ever had: its file does not exist.
        let name = format!("agency-unit-none-{}", std::process::id());
        let tmux = Tmux::new(Some(name));
        assert!(tmux.set_global_option("@agency-needs-you", "2").is_ok());
        assert!(tmux.set_global_option("@agency-needs-you", "").is_ok());
    }

    #[test]
    fn trailing_semicolon_is_escaped() {
        assert_eq!(escape_trailing_semicolon("echo hi;"), "echo hi\\;");
        assert_eq!(escape_trailing_semicolon("a;b"), "a;b");
    }

    #[test]
    fn long_texts_go_over_in_pieces_that_fit() {
        let text = "é;".repeat(40_000);
        let pieces = chunks(&text);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(pieces.concat(), text);
        for op in [
            Op::Paste {
                pane: "%1".into(),
                buffer: "b".into(),
                text: text.clone(),
            },
            Op::TypeText {
                pane: "%1".into(),
                text: text.clone(),
            },
        ] {
            let units = op_units(&op);
            assert!(units.len() > 2);
            for u in &units {
                assert!(u.iter().map(line_size).sum::<usize>() <= MAX_LINE);
            }
            // The pane gets the text only once all of it is in the buffer.
            let names: Vec<String> = units
                .iter()
                .flatten()
                .map(|c| c.name.as_ref().unwrap().to_string())
                .collect();
            assert_eq!(names.last().unwrap(), "paste-buffer");
            assert!(names[..names.len() - 1].iter().all(|n| n == "set-buffer"));
        }
    }

    #[test]
    fn a_submit_key_stays_with_its_text() {
        let long = "x".repeat(MAX_LINE / 3);
        let mut ops = Vec::new();
        for p in ["%1", "%2", "%3", "%4"] {
            ops.push(Op::TypeText {
                pane: p.into(),
                text: long.clone(),
            });
            ops.push(Op::PressKey {
                pane: p.into(),
                key: "Enter".into(),
            });
        }
        let units = sequence_units(&ops);
        assert_eq!(units.len(), 4);
        for u in &units {
            let names: Vec<String> = u
                .iter()
                .map(|c| c.name.as_ref().unwrap().to_string())
                .collect();
            assert_eq!(names, ["send-keys", "send-keys"]);
        }
    }

    #[test]
    fn formats_are_escaped() {
        assert_eq!(
            literal("C#Sharp/#(touch x)#{pane_id}"),
            "C##Sharp/##(touch x)##{pane_id}"
        );
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
