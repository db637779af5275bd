//! The approval screen end to end: the real binary in a tmux pane on the
//! test's private server, driven by `send-keys`, read with `capture-pane`,
//! and checked against the registry.

use std::fs;

use crate::common::{commit, git, wait_until, TestEnv};

struct Screen {
    t: TestEnv,
    repo: std::path::PathBuf,
    exit_file: std::path::PathBuf,
}

impl Screen {
    /// A workspace with `n` submitted branches, and the screen open in an
    /// 80×24 pane.
    fn open(n: usize) -> Screen {
        let (t, repo) = TestEnv::with_project();
        t.receivers("CodeAgency", "a");
        let s = Screen {
            exit_file: t.root().join("exit"),
            t,
            repo,
        };
        for i in 1..=n {
            s.submit(i);
        }
        let cmd = format!(
            "AGENCY_TMUX_SOCKET={} {} --home {} approvals; echo $? > {}",
            s.t.socket,
            env!("CARGO_BIN_EXE_agency"),
            s.t.home.display(),
            s.exit_file.display()
        );
        s.t.tmux_ok(&[
            "new-session",
            "-d",
            "-s",
            "ui",
            "-x",
            "80",
            "-y",
            "24",
            &cmd,
        ]);
        s.wait_for("PENDING APPROVALS");
        s
    }

    fn submit(&self, i: usize) {
        self.submit_with(i, "echo '3 passed, 0 failed'");
    }

    fn submit_with(&self, i: usize, test_command: &str) {
        let branch = format!("feature/f{i}");
        git(&self.repo, &["checkout", "-qb", &branch, "main"]);
        commit(
            &self.repo,
            &[(&format!("f{i}.txt"), "x\n")],
            &format!("feature {i}"),
        );
        git(&self.repo, &["checkout", "-q", "main"]);
        self.t.ok(&[
            "submit",
            "CodeAgency",
            "--task",
            &format!("task {i}"),
            "--title",
            &format!("Feature number {i}"),
            "--branch",
            &branch,
            "--test-command",
            test_command,
        ]);
    }

    fn screen(&self) -> String {
        self.t.tmux_ok(&["capture-pane", "-p", "-t", "ui"])
    }

    fn wait_for(&self, text: &str) {
        wait_until(&format!("{text:?} on the screen"), || {
            self.screen().contains(text)
        });
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.t.tmux_ok(&["send-keys", "-t", "ui", k]);
        }
    }

    fn status_of(&self, id: i64) -> String {
        self.t
            .db()
            .query_row("SELECT status FROM approvals WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
    }
}

#[test]
fn approve_with_a_then_y() {
    let s = Screen::open(1);
    s.wait_for("Feature number 1");
    s.keys(&["a"]);
    s.wait_for("Approve #1");
    s.keys(&["y"]);
    s.wait_for("approved #1");
    assert_eq!(s.status_of(1), "approved");
    assert!(
        s.repo.join("f1.txt").is_file(),
        "merged into the checkout of main"
    );
}

#[test]
fn anything_but_y_cancels() {
    let s = Screen::open(1);
    s.keys(&["a", "n"]);
    s.wait_for("cancelled");
    assert_eq!(s.status_of(1), "pending");
}

#[test]
fn reject_with_r_feedback_and_enter() {
    let s = Screen::open(2);
    s.keys(&["j", "r"]);
    s.wait_for("Feedback for #2");
    s.t.tmux_ok(&["send-keys", "-t", "ui", "-l", "please add tests; thanks"]);
    s.keys(&["Enter"]);
    s.wait_for("rejected #2");
    assert_eq!(s.status_of(2), "rejected");
    assert_eq!(s.status_of(1), "pending");
    let feedback: String =
        s.t.db()
            .query_row("SELECT feedback FROM approvals WHERE id = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
    assert_eq!(feedback, "please add tests; thanks");
}

#[test]
fn a_new_submission_appears_by_itself() {
    let s = Screen::open(1);
    s.wait_for("PENDING APPROVALS (1)");
    s.submit(2);
    s.wait_for("PENDING APPROVALS (2)");
    s.wait_for("Feature number 2");
}

#[test]
fn a_conflict_is_shown_and_the_item_stays() {
    let s = Screen::open(1);
    // main changes the same file the branch adds, differently.
    commit(&s.repo, &[("f1.txt", "main's own\n")], "main adds f1 too");
    s.keys(&["a", "y"]);
    s.wait_for("conflicts");
    assert_eq!(s.status_of(1), "pending");
    assert!(s.screen().contains("PENDING APPROVALS (1)"));
}

#[test]
fn q_quits_with_status_zero() {
    let s = Screen::open(0);
    s.wait_for("Nothing waits for you");
    s.keys(&["q"]);
    wait_until("the screen to exit", || {
        fs::read_to_string(&s.exit_file).is_ok_and(|t| t.ends_with('\n'))
    });
    assert_eq!(fs::read_to_string(&s.exit_file).unwrap().trim(), "0");
}

#[test]
fn an_item_whose_tests_failed_is_approved_from_the_screen_with_shift_f() {
    let s = Screen::open(0);
    s.submit_with(1, "echo '2 passed, 1 failed'; exit 1");
    s.wait_for("#1");
    // `a` asks for F, not y: y is the habit, and cancels here.
    s.keys(&["a"]);
    s.wait_for("F (shift-f) merges it into main anyway");
    assert!(!s.screen().contains("--force"), "{}", s.screen());
    s.keys(&["y"]);
    s.wait_for("cancelled");
    assert_eq!(s.status_of(1), "pending");
    s.keys(&["a", "F"]);
    s.wait_for("approved #1");
    assert_eq!(s.status_of(1), "approved");
    assert!(
        s.repo.join("f1.txt").is_file()
            || git(&s.repo, &["log", "--oneline", "main"]).contains("feature 1")
    );
    s.keys(&["q"]);
    wait_until("the screen to quit", || s.exit_file.is_file());
}
