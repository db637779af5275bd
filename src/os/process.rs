//! The door to child processes: every process the tool starts is started
//! here (in a process group of its own where it may leave children
//! behind, with its output closed or sent to a file), and every signal is
//! sent from here, through `rustix` (no `unsafe`). `clippy.toml` keeps
//! `std::process::Command::new` out of the rest of the tool. (tmux is run
//! by `tmux_interface`, inside the tmux door.)

#![allow(clippy::disallowed_methods)]

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Pid;
pub use rustix::process::Signal;

use super::interrupt;

/// Sends `sig` to process `pid`; `false` when there is no such process
/// (or it is not ours to signal).
pub fn signal(pid: u32, sig: Signal) -> bool {
    to_pid(pid).is_some_and(|p| rustix::process::kill_process(p, sig).is_ok())
}

/// Sends `sig` to every process of the group `pgid` leads.
pub fn signal_group(pgid: u32, sig: Signal) -> bool {
    to_pid(pgid).is_some_and(|p| rustix::process::kill_process_group(p, sig).is_ok())
}

/// Whether process `pid` exists (a zombie counts).
pub fn exists(pid: u32) -> bool {
    to_pid(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

fn to_pid(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// When process `pid` started (ms since the epoch): `Some(None)` if there
/// is no such live process, `None` if `/proc` cannot tell.
pub fn start_millis(pid: u32) -> Option<Option<u128>> {
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u128 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Some(None);
    };
    // "pid (comm) state ppid ... starttime(22nd)": comm may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return Some(None);
    }
    let ticks: u128 = fields.get(19)?.parse().ok()?;
    let hz = u128::from(rustix::param::clock_ticks_per_second()).max(1);
    Some(Some(btime * 1000 + ticks * 1000 / hz))
}

/// Waits a moment for each process group to end, then signals what is left
/// of it: SIGTERM, and SIGKILL if that is not enough.
pub fn end_groups(pids: &[u32]) {
    let alive = |pgid: u32| {
        pgid > 1
            && to_pid(pgid).is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok())
            && group_has_live_member(pgid)
    };
    let wait = |limit: Duration| {
        let deadline = Instant::now() + limit;
        while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let send = |sig: Signal| {
        for &p in pids.iter().filter(|&&p| alive(p)) {
            signal_group(p, sig);
        }
    };
    wait(Duration::from_millis(1500));
    send(Signal::TERM);
    wait(Duration::from_millis(1500));
    send(Signal::KILL);
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

/// Kills every process whose environment has `var` set to a path whose
/// last part is `name` (Linux `/proc`). Returns how many were signalled.
pub fn kill_tagged(var: &str, name: &str) -> usize {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let prefix = format!("{var}=");
    let ours = |v: &[u8]| {
        let v = String::from_utf8_lossy(v);
        v.strip_prefix(&prefix)
            .is_some_and(|dir| Path::new(dir).file_name().and_then(|n| n.to_str()) == Some(name))
    };
    let mut n = 0;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(p.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(ours) {
            signal(pid, Signal::KILL);
            n += 1;
        }
    }
    n
}

/// A `sh -c` command line to run to its end: in `dir`, both output
/// streams to `log`, in a process group of its own.
pub struct Shell<'a> {
    pub command: &'a str,
    pub dir: &'a Path,
    pub env: &'a [(&'a str, &'a OsStr)],
    pub log: &'a Path,
    pub timeout: Duration,
}

/// How a `Shell` run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ended {
    /// It exited (`None`: by a signal), or was killed at its timeout.
    Finished {
        exit_code: Option<i32>,
        timed_out: bool,
        seconds: f64,
    },
    /// A signal noted by `interrupt` stopped it (its number).
    Interrupted(i32),
}

/// Runs `run`, telling `watch` as it goes how long it has run and what it
/// printed since the last call (read back from the log). At its timeout
/// the whole group is killed; when `interrupt` notes a signal, the group
/// gets SIGTERM, then SIGKILL for what is left after a moment.
pub fn run_shell(run: &Shell<'_>, watch: &mut dyn FnMut(Duration, &[u8])) -> io::Result<Ended> {
    if let Some(parent) = run.log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = File::create(run.log)?;
    let err = out.try_clone()?;
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(run.command)
        .current_dir(run.dir)
        .envs(run.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()?;
    let pgid = child.id();
    let mut timed_out = false;
    let mut tail = File::open(run.log)?;
    let mut buf = Vec::new();
    let mut follow = |tail: &mut File| {
        buf.clear();
        let _ = io::Read::read_to_end(tail, &mut buf);
        watch(start.elapsed(), &buf);
    };
    let status = loop {
        follow(&mut tail);
        match child.try_wait()? {
            Some(status) => break Some(status),
            None if start.elapsed() >= run.timeout => {
                timed_out = true;
                // The group we started: the command and anything it spawned.
                signal_group(pgid, Signal::KILL);
                break child.wait().ok();
            }
            None if interrupt::pending().is_some() => {
                stop_group(&mut child, pgid);
                let sig = interrupt::pending().unwrap_or(Signal::TERM.as_raw());
                return Ok(Ended::Interrupted(sig));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    follow(&mut tail);
    Ok(Ended::Finished {
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Ends a run's process group: SIGTERM, and SIGKILL for what is left
/// after a moment.
fn stop_group(child: &mut Child, pgid: u32) {
    signal_group(pgid, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, Signal::KILL);
    let _ = child.wait();
}

/// What a child's environment differs in from ours: variables set, then
/// variables removed.
#[derive(Debug, Default)]
pub struct Env<'a> {
    pub set: Vec<(&'a str, &'a OsStr)>,
    pub remove: &'a [&'a str],
}

impl Env<'_> {
    fn apply(&self, c: &mut Command) {
        c.envs(self.set.iter().copied());
        for k in self.remove {
            c.env_remove(k);
        }
    }
}

/// Starts `program args` detached: its own process group, no terminal,
/// stdout closed, stderr to `stderr` (an inherited pipe would keep
/// whoever reads ours waiting for it).
pub fn spawn_detached(
    program: &Path,
    args: &[&OsStr],
    dir: &Path,
    env: &Env<'_>,
    stderr: Option<File>,
) -> io::Result<Child> {
    let mut c = Command::new(program);
    env.apply(&mut c);
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr.map_or_else(Stdio::null, Stdio::from))
        .process_group(0)
        .spawn()
}

/// Starts `sh -c command` in `dir` in a group of its own, its stdin a pipe
/// for the caller to write, its output to `log`. End it in time with
/// `signal_group(child.id(), Signal::KILL)`.
pub fn spawn_shell_piped(command: &str, dir: &Path, env: &Env<'_>, log: File) -> io::Result<Child> {
    let mut c = Command::new("sh");
    env.apply(&mut c);
    c.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
}

/// Runs `sh -c command` to its end, output to this process's own, stdin
/// closed.
pub fn shell_status(command: &str, env: &[(String, String)]) -> io::Result<ExitStatus> {
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .status()
}

/// Whether `program args` runs in `dir` and exits 0 within `limit`, its
/// output dropped (a check that a tool is installed). Past the limit it is
/// killed, with what it started.
pub fn runs_ok(program: &str, args: &[&str], dir: &Path, limit: Duration) -> bool {
    let Ok(mut child) = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                signal_group(child.id(), Signal::KILL);
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Runs `program args` to its end, output to this process's own, stdin
/// closed.
pub fn status(program: &Path, args: &[&str]) -> io::Result<ExitStatus> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_timeout_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let pid_file = dir.path().join("child.pid");
        let command = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let run = Shell {
            command: &command,
            dir: dir.path(),
            env: &[],
            log: &log,
            timeout: Duration::from_millis(300),
        };
        let ended = run_shell(&run, &mut |_, _| {}).unwrap();
        assert!(
            matches!(
                ended,
                Ended::Finished {
                    timed_out: true,
                    ..
                }
            ),
            "{ended:?}"
        );
        let child: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with its group: gone, or a zombie about to be reaped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while start_millis(child).is_some_and(|s| s.is_some()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(start_millis(child), Some(None));
    }

    #[test]
    fn output_and_exit_code_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let v = std::ffi::OsString::from("hello");
        let run = Shell {
            command: "echo \"$GREETING\"; echo err >&2; exit 3",
            dir: dir.path(),
            env: &[("GREETING", &v)],
            log: &log,
            timeout: Duration::from_secs(30),
        };
        let mut seen = Vec::new();
        let ended = run_shell(&run, &mut |_, out| seen.extend_from_slice(out)).unwrap();
        assert!(matches!(
            ended,
            Ended::Finished {
                exit_code: Some(3),
                timed_out: false,
                ..
            }
        ));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\nerr\n");
        assert_eq!(String::from_utf8(seen).unwrap(), "hello\nerr\n");
    }

    #[test]
    fn signals_reach_only_what_exists() {
        assert!(exists(std::process::id()));
        assert!(!signal(0, Signal::TERM), "pid 0 is no process of ours");
    }
}
