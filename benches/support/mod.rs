//! What the benchmarks share: git on a generated repository, run apart
//! from the config of whoever runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Nothing of the person running the benchmark reaches `c`: HOME is
/// `home` (made here), no global or system git config, a fixed author and
/// committer for the git command. git2 (in agency) then finds no identity
/// and signs as agency's own.
pub fn isolate<'c>(c: &'c mut Command, home: &Path) -> &'c mut Command {
    std::fs::create_dir_all(home).unwrap();
    c.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
}

/// Where `isolate` puts HOME for a repository at `dir`: beside it.
fn home_beside(dir: &Path) -> std::path::PathBuf {
    dir.parent().unwrap_or(dir).join("user-home")
}

/// Runs git in `dir`, expecting success; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = isolate(&mut Command::new("git"), &home_beside(dir))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Makes a repository at `dir` from a `git fast-import` stream and checks
/// `main` out: the fast way to thousands of commits or files.
pub fn fast_import(dir: &Path, stream: &str) {
    git(dir, &["init", "-q", "-b", "main"]);
    let mut child = isolate(&mut Command::new("git"), &home_beside(dir))
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git(dir, &["reset", "-q", "--hard", "main"]);
}
