//! `approve` killed (SIGKILL) at many instants on a large repository: the
//! base branch and its checkout are consistent every time, or made so by
//! running the same `approve` again, which then succeeds.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{git, git_cmd, TestEnv};

type Tree = BTreeMap<String, String>;

/// `files` files on main, and a branch that changes most of them: edits,
/// removals, additions, a file that becomes a folder, one made executable.
fn trees(files: usize) -> (Tree, Tree) {
    let mut old = Tree::new();
    let mut new = Tree::new();
    for i in 0..files {
        let path = format!("src/d{}/f{i}.txt", i % 40);
        old.insert(path.clone(), format!("file {i}\nversion 1\n"));
        match i % 10 {
            0 => {}
            1..=7 => {
                new.insert(
                    path,
                    format!("file {i}\nversion 2\n{}\n", "x".repeat(i % 300)),
                );
            }
            _ => {
                new.insert(path, format!("file {i}\nversion 1\n"));
            }
        }
    }
    for j in 0..files / 5 {
        new.insert(format!("new/n{}/a{j}.txt", j % 10), format!("added {j}\n"));
    }
    old.insert("tc/a".into(), "a file\n".into());
    new.insert("tc/a/b".into(), "now a folder\n".into());
    old.insert("run.sh".into(), "echo hi\n".into());
    new.insert("run.sh".into(), "echo hi\n".into());
    (old, new)
}

fn write_tree(repo: &Path, tree: &Tree) {
    for (path, text) in tree {
        let p = repo.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

struct Big {
    t: TestEnv,
    repo: std::path::PathBuf,
    old: Tree,
    new: Tree,
    old_head: String,
    /// The branch's head, and the tree main has once it is merged.
    new_head: String,
    new_tree: String,
    id: String,
}

fn big_repo(files: usize) -> Big {
    let (t, repo) = TestEnv::with_project();
    t.receivers("CodeAgency", "dev");
    let (old, new) = trees(files);
    fs::remove_file(repo.join("src/lib.txt")).unwrap();
    write_tree(&repo, &old);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "a big project"]);
    git(&repo, &["checkout", "-qb", "feature/big"]);
    git(&repo, &["rm", "-rqf", "src", "tc"]);
    write_tree(&repo, &new);
    fs::set_permissions(repo.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "change most of it"]);
    let new_head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    git(&repo, &["checkout", "-q", "main"]);
    let old_head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    let new_tree = git(&repo, &["rev-parse", "feature/big^{tree}"])
        .trim()
        .to_string();
    // The user's own files, which nothing may touch.
    fs::write(repo.join("notes.txt"), "mine\n").unwrap();
    fs::write(repo.join(".git/info/exclude"), "build/\n").unwrap();
    fs::create_dir_all(repo.join("build")).unwrap();
    fs::write(repo.join("build/out.bin"), "ignored, mine\n").unwrap();
    let item = t.json(&[
        "submit",
        "CodeAgency",
        "--task",
        "big",
        "--branch",
        "feature/big",
        "--test-command",
        "echo '1 passed, 0 failed'",
        "--json",
    ]);
    Big {
        t,
        repo,
        old,
        new,
        old_head,
        new_head,
        new_tree,
        id: item["id"].to_string(),
    }
}

impl Big {
    /// main gets a commit of its own: approve makes a merge commit now.
    fn diverge(&mut self) {
        let text = "main moves on\n";
        fs::write(self.repo.join("main-only.txt"), text).unwrap();
        git(&self.repo, &["add", "main-only.txt"]);
        git(&self.repo, &["commit", "-qm", "main moves on"]);
        self.old_head = self.main();
        self.old.insert("main-only.txt".into(), text.into());
        self.new.insert("main-only.txt".into(), text.into());
        // Known once a whole approve has made the merge (see `sweep`).
        self.new_tree.clear();
    }

    /// main is the merge: its tree, with the branch's head in it.
    fn merged(&self) -> bool {
        let main = self.main();
        let tree = git(&self.repo, &["rev-parse", &format!("{main}^{{tree}}")]);
        let contains = git_cmd(&self.repo)
            .args(["merge-base", "--is-ancestor", &self.new_head, &main])
            .status()
            .unwrap()
            .success();
        tree.trim() == self.new_tree && contains
    }

    fn main(&self) -> String {
        git(&self.repo, &["rev-parse", "main"]).trim().to_string()
    }

    fn status(&self) -> String {
        self.t
            .db()
            .query_row(
                "SELECT status FROM approvals WHERE id = ?1",
                [self.id.parse::<i64>().unwrap()],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Every file of either version is whole: as it was, or as it is to be.
    fn files_whole(&self) {
        let paths: std::collections::BTreeSet<&String> =
            self.old.keys().chain(self.new.keys()).collect();
        for p in paths {
            let now = fs::read_to_string(self.repo.join(p)).ok();
            let ok = now.as_ref() == self.old.get(p)
                || now.as_ref() == self.new.get(p)
                || (now.is_none() && p.starts_with("tc/"));
            assert!(ok, "{p} is neither version: {now:?}");
        }
    }

    /// The user's files are as they were.
    fn users_files_intact(&self) {
        assert_eq!(
            fs::read_to_string(self.repo.join("notes.txt")).unwrap(),
            "mine\n"
        );
        assert_eq!(
            fs::read_to_string(self.repo.join("build/out.bin")).unwrap(),
            "ignored, mine\n"
        );
    }

    /// main has the merge, the checkout is exactly it, the item approved.
    fn approved_and_consistent(&self) {
        assert!(self.merged(), "main does not have the merge");
        for (path, text) in &self.new {
            let now = fs::read_to_string(self.repo.join(path)).ok();
            assert_eq!(now.as_deref(), Some(text.as_str()), "{path}");
        }
        for path in self.old.keys().filter(|p| !self.new.contains_key(*p)) {
            assert!(!self.repo.join(path).is_file(), "{path} was not removed");
        }
        assert_eq!(
            git(&self.repo, &["status", "--porcelain"]),
            "?? notes.txt\n",
            "the checkout does not match main"
        );
        assert_eq!(self.status(), "approved");
        assert!(!self.t.home.join("registry/approving.json").exists());
        self.users_files_intact();
    }

    /// Back to before the approve, for the next instant.
    fn reset(&self) {
        git(
            &self.repo,
            &["update-ref", "refs/heads/main", &self.old_head],
        );
        git(&self.repo, &["reset", "-q", "--hard"]);
        self.t
            .db()
            .execute(
                "UPDATE approvals SET status = 'pending', decided_at = NULL, decided_by = NULL,
                   merge_commit = NULL WHERE id = ?1",
                [self.id.parse::<i64>().unwrap()],
            )
            .unwrap();
        assert_eq!(
            git(&self.repo, &["status", "--porcelain"]),
            "?? notes.txt\n"
        );
    }

    fn main_ref_moved(&self) -> bool {
        fs::read_to_string(self.repo.join(".git/refs/heads/main"))
            .is_ok_and(|r| r.trim() != self.old_head)
    }

    /// Runs approve; once `when` is seen, waits `delay` and kills it
    /// (SIGKILL). Returns when `when` was seen and when it ended, from its
    /// start, and whether it had finished by itself.
    fn approve_killed(&self, when: When, delay: Option<Duration>) -> (Duration, Duration, bool) {
        let start = Instant::now();
        let mut child = self
            .t
            .cmd(&["approve", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = None;
        let finished = loop {
            if child.try_wait().unwrap().is_some() {
                break true;
            }
            if seen.is_none() {
                let now = match when {
                    When::Started => true,
                    When::Landed => self.main_ref_moved(),
                };
                if now {
                    seen = Some(start.elapsed());
                    if let Some(d) = delay {
                        std::thread::sleep(d);
                        break child.try_wait().unwrap().is_some();
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let _ = child.kill();
        child.wait().unwrap();
        (seen.unwrap_or_default(), start.elapsed(), finished)
    }
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// The process started.
    Started,
    /// main has moved: the checkout is being updated.
    Landed,
}

/// Kills approve at `points` instants: half spread over a whole run, half
/// over the time after main moved (the checkout's update), as long as each
/// took in a whole run; checks every outcome. Returns how many a second
/// approve finished.
fn sweep(b: &mut Big, points: u32) -> usize {
    let (landed, end, _) = b.approve_killed(When::Landed, None);
    if b.new_tree.is_empty() {
        let main = b.main();
        b.new_tree = git(&b.repo, &["rev-parse", &format!("{main}^{{tree}}")])
            .trim()
            .to_string();
    }
    b.approved_and_consistent();
    b.reset();
    let phases = [
        (When::Started, end),
        (When::Landed, end.saturating_sub(landed)),
    ];
    let mut resumed = 0;
    for k in 0..points {
        let (when, length) = phases[k as usize % 2];
        // Midpoints: k-th of n equal slices of the phase.
        let delay = length.mul_f64((f64::from(k / 2) + 0.5) / f64::from(points.div_ceil(2)));
        b.approve_killed(when, Some(delay));
        b.files_whole();
        b.users_files_intact();
        let main = b.main();
        let merged = b.merged();
        assert!(main == b.old_head || merged, "main is at neither commit");
        // Decided, plan still there: a crash between the two last steps.
        let unfinished =
            b.status() == "pending" || b.t.home.join("registry/approving.json").exists();
        if unfinished {
            let out = b.t.ok(&["approve", &b.id]);
            if merged {
                assert!(out.contains("interrupted approve was finished"), "{out}");
                resumed += 1;
            }
        }
        b.approved_and_consistent();
        b.reset();
    }
    resumed
}

#[test]
fn approve_killed_at_any_instant_is_consistent_or_finished_by_a_rerun() {
    // A fast-forward, then a merge commit (main moved on meanwhile).
    let mut b = big_repo(250);
    let mut resumed = sweep(&mut b, 4);
    b.diverge();
    resumed += sweep(&mut b, 4);
    // The sweep is only worth something if some kills landed mid-way.
    assert!(resumed > 0, "no kill landed after the branch moved");
}

/// The bigger sweep: `AGENCY_CRASH_FILES` files, `AGENCY_CRASH_POINTS`
/// instants, fast-forward and merge commit
/// (`cargo test --release --test cli crash_sweep -- --ignored --nocapture`).
#[test]
#[ignore]
fn approve_crash_sweep_large() {
    let num = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (files, points) = (
        num("AGENCY_CRASH_FILES", 5_000),
        num("AGENCY_CRASH_POINTS", 40),
    );
    let mut b = big_repo(files as usize);
    for kind in ["fast-forward", "merge commit"] {
        if kind == "merge commit" {
            b.diverge();
        }
        let start = Instant::now();
        let resumed = sweep(&mut b, points);
        println!(
            "{files} files, {points} kills, {kind}: {resumed} finished by a second approve ({:.0?})",
            start.elapsed()
        );
    }
}

/// Commits put on main (by compare-and-swap, as git does) while approve
/// runs are never lost: approve lands on top of them or refuses.
#[test]
fn a_commit_racing_approve_is_never_lost() {
    let b = big_repo(400);
    for _ in 0..3 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let racer = {
            let (repo, stop) = (b.repo.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut landed = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let old = git(&repo, &["rev-parse", "main"]).trim().to_string();
                    let tree = format!("{old}^{{tree}}");
                    let new = git(&repo, &["commit-tree", &tree, "-p", &old, "-m", "racing"]);
                    let new = new.trim();
                    let ok = git_cmd(&repo)
                        .args(["update-ref", "refs/heads/main", new, &old])
                        .output()
                        .unwrap()
                        .status
                        .success();
                    if ok {
                        landed.push(new.to_string());
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }
                landed
            })
        };
        let out = b.t.run(&["approve", &b.id]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let landed = racer.join().unwrap();
        let main = b.main();
        for c in &landed {
            let kept = git_cmd(&b.repo)
                .args(["merge-base", "--is-ancestor", c, &main])
                .status()
                .unwrap()
                .success();
            assert!(kept, "racing commit {c} was lost from main");
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            assert_eq!(b.status(), "approved");
        } else {
            assert!(err.contains("moved while it was being approved"), "{err}");
            assert_eq!(b.status(), "pending");
        }
        // Back to before, without the racing commits.
        git(&b.repo, &["update-ref", "refs/heads/main", &b.old_head]);
        git(&b.repo, &["reset", "-q", "--hard"]);
        b.t.db()
            .execute(
                "UPDATE approvals SET status = 'pending' WHERE id = ?1",
                [b.id.parse::<i64>().unwrap()],
            )
            .unwrap();
    }
}
