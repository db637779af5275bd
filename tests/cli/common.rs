//! The test environment: a temp workspace, a private tmux server killed on
//! drop, and helpers to run the binary and wait for conditions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct TestEnv {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub socket: String,
    /// HOME for everything the test runs (see `isolate`), beside the
    /// workspace's folder.
    user_home: PathBuf,
}

impl TestEnv {
    /// A fresh workspace (after `agency init`) with its own tmux socket.
    pub fn new() -> TestEnv {
        let env = TestEnv::bare();
        env.ok(&["init", env.home.to_str().unwrap()]);
        env.use_sh();
        env
    }

    /// Agents and utility windows run plain `sh`: the tests are about
    /// panes, and a user's interactive bash start-up (rc files) killed
    /// half-way can leave its own lock files behind.
    fn use_sh(&self) {
        self.set_config("command = \"bash\"", "command = \"sh\"");
    }

    /// Replaces `from` with `to` in the workspace's agency.toml.
    pub fn set_config(&self, from: &str, to: &str) {
        let config = self.home.join("agency.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(from), "{from} not in agency.toml");
        std::fs::write(&config, text.replacen(from, to, 1)).unwrap();
    }

    /// A workspace whose project is a fresh git repository on `main` (with
    /// `README.md` and `src/lib.txt`), beside it in the temp folder.
    pub fn with_project() -> (TestEnv, PathBuf) {
        let t = TestEnv::bare();
        let repo = t.root().join("project");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit(
            &repo,
            &[
                ("README.md", "hello\n"),
                ("src/lib.txt", "one\ntwo\nthree\n"),
            ],
            "init",
        );
        t.ok(&[
            "init",
            t.home.to_str().unwrap(),
            "--project",
            repo.to_str().unwrap(),
        ]);
        t.use_sh();
        (t, repo)
    }

    /// A temp folder with no workspace in it.
    pub fn bare() -> TestEnv {
        TestEnv::bare_under("")
    }

    /// `bare`, the workspace to be made in a folder called `name`.
    pub fn bare_named(name: &str) -> TestEnv {
        TestEnv::bare_at(name)
    }

    /// Like `bare`, with the workspace `ws` in the folder `under` (which
    /// may hold any characters) of the temp folder.
    pub fn bare_under(under: &str) -> TestEnv {
        TestEnv::bare_at(&format!("{under}/ws"))
    }

    /// A temp folder, the workspace to be made at `rel` in it.
    fn bare_at(rel: &str) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let home = dir
            .path()
            .canonicalize()
            .unwrap()
            .join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        let user_home = dir.path().canonicalize().unwrap().join(".user-home");
        std::fs::create_dir_all(&user_home).unwrap();
        std::fs::write(user_home.join(".gitconfig"), "").unwrap();
        let socket = format!(
            "agency-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        TestEnv {
            _dir: dir,
            home,
            socket,
            user_home,
        }
    }

    /// Nothing of the person running the tests reaches what they run: a
    /// HOME of the test's own (where git2 looks for the global config) and,
    /// for the git command, an empty global config and no system one. So
    /// no git identity either: git2 signs as agency's own, and an agent
    /// that commits names itself (as the demo's do). No GIT_AUTHOR_* here:
    /// through tmux it would reach every pane and beat those names.
    pub fn isolate<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        c.env("HOME", &self.user_home)
            .env_remove("XDG_CONFIG_HOME")
            .env("GIT_CONFIG_GLOBAL", self.user_home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
    }

    pub fn root(&self) -> &Path {
        self.home.parent().unwrap()
    }

    /// The binary with this test's socket and workspace, and no tmux client
    /// environment leaking in from whoever runs the tests.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_of(Path::new(env!("CARGO_BIN_EXE_agency")), args)
    }

    /// `cmd`, running the binary at `program` (a link to it, say).
    pub fn cmd_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        self.isolate(&mut c);
        c.args(args)
            .env("AGENCY_TMUX_SOCKET", &self.socket)
            .env_remove("AGENCY_HOME")
            .env_remove("AGENCY_NAME")
            .env_remove("AGENCY_AGENT")
            .env_remove("TMUX")
            // tmux's default shell (tools and sandbox windows) comes from SHELL.
            .env("SHELL", "/bin/sh")
            // As on a CI machine, wherever the tests run: the tmux server, and
            // so every pane, inherits it, and agent CLIs change behaviour
            // under it (Gemini CLI goes headless and exits).
            .env("CI", "true")
            .current_dir(if self.home.is_dir() {
                &self.home
            } else {
                self.root()
            })
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run agency")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "agency {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects exit 1 with `error:` and `hint:`; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        expect_user_error(&self.run(args), args)
    }

    /// Runs and expects a usage error: exit 2, clap's message, and the
    /// valid values listed; returns stderr.
    pub fn usage_error(&self, args: &[&str], valid: &str) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid value"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("[possible values: {valid}]")),
            "{args:?}: {stderr}"
        );
        stderr
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Runs one of the workspace's `scripts/` the way a user would (no
    /// AGENCY_HOME: the script finds its workspace), expecting success;
    /// returns stdout.
    pub fn script(&self, name: &str, args: &[&str]) -> String {
        let out = self
            .isolate(&mut Command::new(self.home.join("scripts").join(name)))
            .args(args)
            .env("AGENCY_BIN", env!("CARGO_BIN_EXE_agency"))
            .env("AGENCY_TMUX_SOCKET", &self.socket)
            .env("SHELL", "/bin/sh")
            .env_remove("AGENCY_HOME")
            .env_remove("AGENCY_NAME")
            .env_remove("AGENCY_AGENT")
            .env_remove("TMUX")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs tmux on this test's server.
    pub fn tmux(&self, args: &[&str]) -> Output {
        // The server it may start passes its environment to every pane.
        self.isolate(&mut Command::new("tmux"))
            .env("SHELL", "/bin/sh")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run tmux")
    }

    pub fn tmux_ok(&self, args: &[&str]) -> String {
        let out = self.tmux(args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Window names of a session, in index order.
    pub fn windows(&self, session: &str) -> Vec<String> {
        self.tmux_ok(&["list-windows", "-t", session, "-F", "#{window_name}"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn has_server(&self) -> bool {
        self.tmux(&["list-sessions"]).status.success()
    }

    /// The router's process id, if one of ours is running.
    pub fn router_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.home.join("registry/router.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Only a live `agency router` of this workspace, never a reused pid.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (cmdline.contains("router") && cmdline.contains(self.home.to_str().unwrap())).then_some(pid)
    }

    /// Sends `signal` to the router we started, by its process id.
    pub fn signal_router(&self, signal: &str) -> Option<u32> {
        let pid = self.router_pid()?;
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        Some(pid)
    }

    /// An agency whose agents append what they receive to `<agent>.out`
    /// in the test's folder; returns that folder.
    pub fn receivers(&self, agency: &str, agents: &str) -> PathBuf {
        let out = self.root().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let cmd = format!("cat >> {}/$AGENCY_AGENT.out", out.display());
        self.ok(&[
            "create",
            agency,
            "--agents",
            agents,
            "--agent-command",
            &cmd,
        ]);
        out
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.home.join("registry/agency.db")).unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Never panic here (a panic while unwinding aborts and leaks the
        // server): end the server first, then what ran in its panes (some
        // agent CLIs outlive the SIGHUP tmux sends), then the router.
        let pids: Vec<u32> = self
            .tmux(&["list-panes", "-a", "-F", "#{pane_pid}"])
            .stdout
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok()?.trim().parse().ok())
            .collect();
        let _ = self.tmux(&["kill-server"]);
        agency::os::process::end_groups(&pids);
        if let Some(pid) = self.signal_router("-TERM") {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && process_alive(pid) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // tmux leaves its socket file behind; remove it only once the server
        // is surely gone, or a live server would become unreachable.
        if !self.has_server() {
            let _ = std::fs::remove_file(socket_path(&self.socket));
        }
    }
}

/// Alive and not a zombie.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Where tmux puts a `-L` socket: `$TMUX_TMPDIR` (else /tmp), `tmux-UID/NAME`.
fn socket_path(name: &str) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let base = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
    Path::new(&base).join(format!("tmux-{uid}")).join(name)
}

pub fn expect_user_error(out: &Output, what: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what:?} should exit 1; stderr: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{what:?}: {stderr}");
    assert!(
        stderr.contains("\nhint: "),
        "{what:?} gives no hint: {stderr}"
    );
    stderr
}

/// How long `wait_until` waits. It only costs time when a test fails, so it
/// is sized for a loaded 2-core CI machine (five builds at once), not for
/// a quiet one, where every wait is well under a second.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `pred` until it holds or the deadline passes.
pub fn wait_until(what: &str, pred: impl FnMut() -> bool) {
    wait_for(what, PATIENCE, pred)
}

/// Lines of a file, empty if it does not exist yet.
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub fn wait_for(what: &str, limit: Duration, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pred() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Polls `count` until it reaches `target`; fails only when it has not
/// grown for `step` (a long chain of steps, each slow on a loaded machine,
/// is not held to one deadline for all).
pub fn wait_for_progress(
    what: &str,
    step: Duration,
    target: usize,
    mut count: impl FnMut() -> usize,
) {
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let n = count();
        if n >= target {
            return;
        }
        if n > last {
            (last, since) = (n, Instant::now());
        }
        assert!(
            since.elapsed() < step,
            "timed out waiting for {what}: {n} of {target}, no progress for {}s",
            step.as_secs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The git command in `dir`, reading no config but the repository's own.
pub fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    fixed_author(&mut c)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(dir);
    c
}

/// Runs git in `dir`, expecting success; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The author and committer of every commit the tests' own git makes.
fn fixed_author(c: &mut Command) -> &mut Command {
    c.env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
}

/// Writes files and commits them on the current branch.
pub fn commit(dir: &Path, files: &[(&str, &str)], msg: &str) -> String {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", msg]);
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}
