//! The only door to git: git2 (libgit2, built vendored) on the project
//! repository. Branches, diff stats, sandbox worktrees, and the one merge
//! into the base branch that `approve` makes.

mod checkout;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use git2::{BranchType, Oid, Repository, RepositoryState, Signature, Status, StatusOptions};
use serde::{Deserialize, Serialize};

pub use checkout::Applied;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not a git repository")]
    NotARepo { path: String },
    #[error("branch {branch:?} does not exist in the project repository")]
    NoBranch { branch: String },
    #[error("the checkout of {branch:?} at {dir} has uncommitted changes: {files}")]
    DirtyCheckout {
        branch: String,
        dir: String,
        files: String,
    },
    #[error("{branch:?} moved while it was being approved ({expected} then, {now} now); nothing was changed")]
    BaseMoved {
        branch: String,
        expected: String,
        now: String,
    },
    #[error(
        "{branch:?} is being written by another git command ({lock} is held); nothing was changed"
    )]
    RefLocked { branch: String, lock: String },
    #[error(
        "{branch:?} moved while it was being removed ({expected} then, {now} now); it was kept"
    )]
    BranchMoved {
        branch: String,
        expected: String,
        now: String,
    },
    #[error("the checkout of {branch:?} at {dir} has files the merge would overwrite: {files}; nothing was changed")]
    InTheWay {
        branch: String,
        dir: String,
        files: String,
    },
    #[error("the project repository is in the middle of a {state}")]
    Busy { state: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

impl GitError {
    pub fn hint(&self) -> Option<String> {
        match self {
            GitError::NotARepo { .. } => Some(
                "set `project` in agency.toml to a git repository (`agency init DIR --project PATH`)"
                    .into(),
            ),
            GitError::NoBranch { .. } => Some("create and commit the branch first; list them with `git branch`".into()),
            GitError::DirtyCheckout { .. } => Some(
                "commit or stash those changes in the project (`git stash`), then decide again".into(),
            ),
            GitError::Busy { .. } => Some("finish or abort it in the project, then decide again".into()),
            GitError::BaseMoved { .. } => Some(
                "somebody committed to it meanwhile; approve again to merge onto the new commit".into(),
            ),
            GitError::RefLocked { .. } => Some(
                "let it finish, then approve again (if no git is running, remove that lock file)"
                    .into(),
            ),
            GitError::BranchMoved { .. } => Some(
                "look at its new commits (`git log BRANCH`), then purge again".into(),
            ),
            GitError::InTheWay { .. } => Some(
                "move those untracked or ignored files (or a symlinked folder above them) away, or commit them, then decide again".into(),
            ),
            GitError::Git(_) => None,
        }
    }
}

pub type GitResult<T> = Result<T, GitError>;

/// `git diff --shortstat base...branch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffStats {
    pub files_changed: usize,
    pub insertions: usize,
    pub deletions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The base branch moved forward to the branch's commit.
    FastForward { commit: String },
    /// A merge commit was made on the base branch.
    MergeCommit { commit: String },
    /// The base branch already contains the branch.
    UpToDate { commit: String },
    /// Nothing changed: these files conflict.
    Conflict { files: Vec<String> },
    /// Nothing changed: the branch is no longer at the tested commit.
    Moved { tested: String, now: String },
}

/// A merge computed but not yet landed: the base branch is to move from
/// `old` to `new`, and the checkouts of it (the project's, or any linked
/// worktree's) are to follow. Plain data, so it can be written down first
/// and a crashed approve finished from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landing {
    pub base: String,
    pub old: String,
    pub new: String,
    pub checkouts: Vec<PathBuf>,
}

/// A checkout of the base branch with the merge's files staged.
pub struct StagedCheckout {
    pub dir: PathBuf,
    repo: Repository,
    prepared: checkout::Prepared,
}

impl StagedCheckout {
    /// Untracked or ignored files where the merge puts its own.
    pub fn in_the_way(&self) -> Vec<String> {
        self.prepared.in_the_way()
    }

    /// Moves the checkout's files and index to the new commit; files that
    /// are not the old version are kept and listed.
    pub fn apply(self) -> GitResult<Applied> {
        self.prepared.apply(&self.repo)
    }
}

/// An agent's worktree as `agency status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorktreeState {
    pub branch: Option<String>,
    /// Commits on the branch that the base branch lacks, and the reverse.
    pub ahead: usize,
    pub behind: usize,
    /// Files changed, staged or untracked (ignored ones not counted).
    pub uncommitted: usize,
}

/// What would be lost by removing an agent's worktree and branch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtRisk {
    pub uncommitted: Vec<String>,
    pub unmerged_commits: usize,
    /// Where the branch was when this was looked at.
    pub tip: Option<String>,
}

/// A sandbox worktree of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub name: String,
    pub dir: PathBuf,
    pub kept: bool,
}

/// Prefix of our sandbox worktrees and their temporary branches.
const SANDBOX_PREFIX: &str = "agency-sandbox-";

pub struct Project {
    repo: Repository,
}

/// Makes a repository at `dir` on branch `base` with `files` in its first
/// commit (the demo's small project).
pub fn init_repo(dir: &Path, base: &str, files: &[(&str, &str)], message: &str) -> GitResult<()> {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head(base);
    let repo = Repository::init_opts(dir, &opts)?;
    let io = |e: std::io::Error| GitError::Git(git2::Error::from_str(&e.to_string()));
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = Signature::now("agency demo", "demo@agency.local")?;
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[])?;
    Ok(())
}

impl Project {
    pub fn open(path: &Path) -> GitResult<Project> {
        let repo = Repository::open(path).map_err(|_| GitError::NotARepo {
            path: path.display().to_string(),
        })?;
        Ok(Project { repo })
    }

    /// The commit a local branch points at.
    pub fn branch_commit(&self, branch: &str) -> GitResult<String> {
        Ok(self.branch_oid(branch)?.to_string())
    }

    fn branch_oid(&self, branch: &str) -> GitResult<Oid> {
        let b = self
            .repo
            .find_branch(branch, BranchType::Local)
            .map_err(|_| GitError::NoBranch {
                branch: branch.to_string(),
            })?;
        let commit = b.get().peel_to_commit()?;
        Ok(commit.id())
    }

    /// Whether `commit` is already in `base` (merging it would change nothing).
    pub fn is_merged(&self, base: &str, commit: &str) -> GitResult<bool> {
        let base = self.branch_oid(base)?;
        let commit = Oid::from_str(commit)?;
        Ok(base == commit || self.repo.graph_descendant_of(base, commit)?)
    }

    /// Files changed, insertions and deletions of `commit` against its merge
    /// base with `base` — what `git diff --shortstat base...commit` says.
    pub fn diff_stats(&self, base: &str, commit: &str) -> GitResult<DiffStats> {
        let diff = self.three_dot_diff(base, commit)?;
        let stats = diff.stats()?;
        Ok(DiffStats {
            files_changed: stats.files_changed(),
            insertions: stats.insertions(),
            deletions: stats.deletions(),
        })
    }

    /// The unified diff of `commit` against its merge base with `base`.
    pub fn diff_text(&self, base: &str, commit: &str) -> GitResult<String> {
        let diff = self.three_dot_diff(base, commit)?;
        let mut out = String::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            let origin = line.origin();
            if matches!(origin, '+' | '-' | ' ') {
                out.push(origin);
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
            true
        })?;
        Ok(out)
    }

    fn three_dot_diff(&self, base: &str, commit: &str) -> GitResult<git2::Diff<'_>> {
        let base_oid = self.branch_oid(base)?;
        let head = Oid::from_str(commit)?;
        let merge_base = self.repo.merge_base(base_oid, head)?;
        let old = self.repo.find_commit(merge_base)?.tree()?;
        let new = self.repo.find_commit(head)?.tree()?;
        Ok(self.repo.diff_tree_to_tree(Some(&old), Some(&new), None)?)
    }

    /// Checks `commit` out into a new worktree at `dir` (which must not
    /// exist), on a temporary branch so the real branch stays free for the
    /// worktree an agent may have it checked out in.
    pub fn add_sandbox(&self, name: &str, dir: &Path, commit: &str) -> GitResult<()> {
        let full = format!("{SANDBOX_PREFIX}{name}");
        let target = self.repo.find_commit(Oid::from_str(commit)?)?;
        let branch = self.repo.branch(&full, &target, false)?;
        let mut opts = git2::WorktreeAddOptions::new();
        opts.reference(Some(branch.get()));
        if let Err(e) = self.repo.worktree(&full, dir, Some(&opts)) {
            let _ = self
                .repo
                .find_branch(&full, BranchType::Local)
                .map(|mut b| b.delete());
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes a sandbox worktree (files and git's record) and its branch.
    pub fn remove_sandbox(&self, name: &str) -> GitResult<()> {
        let full = format!("{SANDBOX_PREFIX}{name}");
        if let Ok(wt) = self.repo.find_worktree(&full) {
            let path: PathBuf = wt.path().to_path_buf();
            let mut opts = git2::WorktreePruneOptions::new();
            opts.valid(true).working_tree(true).locked(true);
            wt.prune(Some(&mut opts))?;
            // libgit2 leaves the folder when it holds files it did not
            // check out (build output of the tests).
            if path.exists() {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        if let Ok(mut b) = self.repo.find_branch(&full, BranchType::Local) {
            b.delete()?;
        }
        Ok(())
    }

    /// Our sandbox worktrees that git knows about: name (without the
    /// prefix), folder, and whether kept (`--keep` locks it).
    pub fn sandboxes(&self) -> GitResult<Vec<Sandbox>> {
        let mut found = Vec::new();
        for full in self.repo.worktrees()?.iter().flatten().flatten() {
            let Some(name) = full.strip_prefix(SANDBOX_PREFIX) else {
                continue;
            };
            let Ok(wt) = self.repo.find_worktree(full) else {
                continue;
            };
            let kept = matches!(wt.is_locked(), Ok(git2::WorktreeLockStatus::Locked(_)));
            found.push(Sandbox {
                name: name.to_string(),
                dir: wt.path().to_path_buf(),
                kept,
            });
        }
        Ok(found)
    }

    /// Marks a sandbox as kept on purpose (git's worktree lock), so sweeps
    /// of abandoned runs leave it.
    pub fn keep_sandbox(&self, name: &str) -> GitResult<()> {
        let wt = self
            .repo
            .find_worktree(&format!("{SANDBOX_PREFIX}{name}"))?;
        wt.lock(Some("kept by agency sandbox deploy --keep"))?;
        Ok(())
    }

    /// Makes sure `dir` is a worktree on `branch` (made from `base` when it
    /// does not exist). An existing worktree is kept as it is, uncommitted
    /// work included. Returns whether the worktree was made now.
    pub fn ensure_worktree(
        &self,
        name: &str,
        dir: &Path,
        branch: &str,
        base: &str,
    ) -> GitResult<bool> {
        if dir.join(".git").exists() {
            return Ok(false);
        }
        // A worktree whose folder vanished is still registered: forget it.
        if let Ok(wt) = self.repo.find_worktree(name) {
            if wt.validate().is_err() {
                let mut opts = git2::WorktreePruneOptions::new();
                opts.valid(true).locked(true);
                wt.prune(Some(&mut opts))?;
            }
        }
        let reference = match self.repo.find_branch(branch, BranchType::Local) {
            Ok(b) => b.into_reference(),
            Err(_) => {
                let base_commit = self.repo.find_commit(self.branch_oid(base)?)?;
                self.repo
                    .branch(branch, &base_commit, false)?
                    .into_reference()
            }
        };
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
        let mut opts = git2::WorktreeAddOptions::new();
        opts.reference(Some(&reference));
        self.repo.worktree(name, dir, Some(&opts))?;
        Ok(true)
    }

    /// Branch, ahead/behind the base, and uncommitted files of a worktree.
    pub fn worktree_state(&self, dir: &Path, base: &str) -> GitResult<WorktreeState> {
        let wt = Repository::open(dir).map_err(|_| GitError::NotARepo {
            path: dir.display().to_string(),
        })?;
        let head = wt.head()?;
        let branch = head.shorthand().ok().map(str::to_string);
        let (ahead, behind) = match (head.target(), self.branch_oid(base)) {
            (Some(h), Ok(b)) => wt.graph_ahead_behind(h, b)?,
            _ => (0, 0),
        };
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false);
        let uncommitted = wt.statuses(Some(&mut opts))?.len();
        Ok(WorktreeState {
            branch,
            ahead,
            behind,
            uncommitted,
        })
    }

    /// What removing the worktree at `dir` and deleting `branch` would lose:
    /// its uncommitted files, and the commits on the branch or the
    /// worktree's HEAD (detached, or on any branch) that no other ref
    /// reaches. `removed` are the branches deleted with it (and our
    /// sandbox branches never count: they are temporary).
    pub fn at_risk(&self, dir: &Path, branch: &str, removed: &[String]) -> GitResult<AtRisk> {
        let mut risk = AtRisk::default();
        let mut walk = self.repo.revwalk()?;
        let mut tips = 0;
        if dir.join(".git").exists() {
            let wt = Repository::open(dir)?;
            let mut opts = StatusOptions::new();
            opts.include_untracked(true)
                .recurse_untracked_dirs(true)
                .include_ignored(false);
            risk.uncommitted = wt
                .statuses(Some(&mut opts))?
                .iter()
                .filter_map(|s| s.path().ok().map(str::to_string))
                .collect();
            if let Some(head) = wt.head().ok().and_then(|h| h.target()) {
                walk.push(head)?;
                tips += 1;
            }
        }
        if let Ok(oid) = self.branch_oid(branch) {
            walk.push(oid)?;
            tips += 1;
            risk.tip = Some(oid.to_string());
        }
        if tips == 0 {
            return Ok(risk);
        }
        let doomed: Vec<String> = removed
            .iter()
            .chain(std::iter::once(&branch.to_string()))
            .map(|b| format!("refs/heads/{b}"))
            .collect();
        for r in self.repo.references()?.flatten() {
            let Ok(name) = r.name() else { continue };
            let ours = name.starts_with(&format!("refs/heads/{SANDBOX_PREFIX}"));
            if doomed.iter().any(|d| d == name) || ours {
                continue;
            }
            if let Ok(c) = r.peel_to_commit() {
                walk.hide(c.id())?;
            }
        }
        risk.unmerged_commits = walk.count();
        Ok(risk)
    }

    /// Removes an agent's worktree and deletes its branch. Callers check
    /// `at_risk` first: this removes whatever is there.
    /// With `expected`, nothing is removed if the branch is no longer there.
    pub fn remove_worktree(
        &self,
        name: &str,
        dir: &Path,
        branch: &str,
        expected: Option<&str>,
    ) -> GitResult<()> {
        if let (Some(expected), Ok(now)) = (expected, self.branch_commit(branch)) {
            if now != expected {
                return Err(GitError::BranchMoved {
                    branch: branch.to_string(),
                    expected: short(expected),
                    now: short(&now),
                });
            }
        }
        if let Ok(wt) = self.repo.find_worktree(name) {
            let mut opts = git2::WorktreePruneOptions::new();
            opts.valid(true).working_tree(true).locked(true);
            wt.prune(Some(&mut opts))?;
        }
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Ok(mut b) = self.repo.find_branch(branch, BranchType::Local) {
            b.delete()?;
        }
        Ok(())
    }

    /// Adds `pattern` to the repository's `info/exclude` once, so our
    /// folders inside the project are never committed.
    pub fn exclude(&self, pattern: &str) -> GitResult<()> {
        let path = self.repo.commondir().join("info").join("exclude");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().any(|l| l.trim() == pattern) {
            return Ok(());
        }
        let io = |e: std::io::Error| GitError::Git(git2::Error::from_str(&e.to_string()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut new = text;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(pattern);
        new.push('\n');
        std::fs::write(&path, new).map_err(io)
    }

    /// The folder the repository's files are checked out in.
    pub fn workdir(&self) -> Option<PathBuf> {
        self.repo.workdir().map(Path::to_path_buf)
    }

    /// Computes the merge of `branch` into `base` if it is still at
    /// `tested`: a fast-forward when possible, else a merge commit with
    /// `message` (written, but on no branch yet). Nothing moves here: the
    /// caller lands the result with [`Project::land`]. Every checkout of the
    /// base branch must be clean.
    pub fn prepare_merge(
        &self,
        base: &str,
        branch: &str,
        tested: &str,
        message: &str,
    ) -> GitResult<(MergeOutcome, Option<Landing>)> {
        let head = self.branch_oid(branch)?;
        if head.to_string() != tested {
            let outcome = MergeOutcome::Moved {
                tested: tested.to_string(),
                now: head.to_string(),
            };
            return Ok((outcome, None));
        }
        let base_oid = self.branch_oid(base)?;
        let checkouts = self.checkouts_of(base)?;
        for dir in &checkouts {
            require_clean(&Repository::open(dir)?, base, dir)?;
        }
        let (outcome, new) = if base_oid == head || self.repo.graph_descendant_of(base_oid, head)? {
            let c = base_oid.to_string();
            return Ok((MergeOutcome::UpToDate { commit: c }, None));
        } else if self.repo.graph_descendant_of(head, base_oid)? {
            let commit = head.to_string();
            (MergeOutcome::FastForward { commit }, head)
        } else {
            let ours = self.repo.find_commit(base_oid)?;
            let theirs = self.repo.find_commit(head)?;
            let mut index = self.repo.merge_commits(&ours, &theirs, None)?;
            if index.has_conflicts() {
                let mut files: Vec<String> = index
                    .conflicts()?
                    .flatten()
                    .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect();
                files.sort();
                files.dedup();
                return Ok((MergeOutcome::Conflict { files }, None));
            }
            let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
            let sig = self.signature()?;
            let oid = self
                .repo
                .commit(None, &sig, &sig, message, &tree, &[&ours, &theirs])?;
            let commit = oid.to_string();
            (MergeOutcome::MergeCommit { commit }, oid)
        };
        let landing = Landing {
            base: base.to_string(),
            old: base_oid.to_string(),
            new: new.to_string(),
            checkouts,
        };
        Ok((outcome, Some(landing)))
    }

    /// Stages the merge's files for each checkout of the landing that is
    /// still on the base branch.
    pub fn stage_checkouts(&self, l: &Landing) -> GitResult<Vec<StagedCheckout>> {
        let (old, new) = (Oid::from_str(&l.old)?, Oid::from_str(&l.new)?);
        let mut staged = Vec::new();
        for dir in &l.checkouts {
            let Ok(repo) = Repository::open(dir) else {
                continue;
            };
            if !is_on(&repo, &l.base) {
                continue;
            }
            let prepared = checkout::prepare(&repo, old, new)?;
            staged.push(StagedCheckout {
                dir: dir.clone(),
                repo,
                prepared,
            });
        }
        Ok(staged)
    }

    /// Moves the base branch from `old` to `new`, only if it is still at
    /// `old` (compare-and-swap under git's ref lock).
    pub fn land(&self, l: &Landing, log_message: &str) -> GitResult<()> {
        let name = format!("refs/heads/{}", l.base);
        let (old, new) = (Oid::from_str(&l.old)?, Oid::from_str(&l.new)?);
        // Another git writing the branch holds its lock for a moment: wait
        // for it (a second at most), then compare.
        let deadline = Instant::now() + Duration::from_secs(1);
        let result = loop {
            match self
                .repo
                .reference_matching(&name, new, true, old, log_message)
            {
                Err(e) if e.code() == git2::ErrorCode::Locked && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == git2::ErrorCode::Locked => Err(GitError::RefLocked {
                branch: l.base.clone(),
                lock: self
                    .repo
                    .commondir()
                    .join(format!("{name}.lock"))
                    .display()
                    .to_string(),
            }),
            Err(e) if e.code() == git2::ErrorCode::Modified => Err(GitError::BaseMoved {
                branch: l.base.clone(),
                expected: short(&l.old),
                now: short(&self.branch_commit(&l.base).unwrap_or_default()),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `commit` contains `ancestor` (or is it).
    pub fn contains(&self, commit: &str, ancestor: &str) -> bool {
        match (Oid::from_str(commit), Oid::from_str(ancestor)) {
            (Ok(c), Ok(a)) => c == a || self.repo.graph_descendant_of(c, a).unwrap_or(false),
            _ => false,
        }
    }

    /// Lock files a killed approve can leave (the base branch's, and each
    /// checkout's index lock) that no process holds any more: removed, and
    /// returned. A lock somebody holds is waited for a moment, then left.
    pub fn clear_stale_locks(&self, l: &Landing) -> Vec<PathBuf> {
        let mut locks = vec![self
            .repo
            .commondir()
            .join("refs/heads")
            .join(format!("{}.lock", l.base))];
        for dir in &l.checkouts {
            if let Ok(r) = Repository::open(dir) {
                locks.push(r.path().join("index.lock"));
            }
        }
        locks.into_iter().filter(|p| remove_stale_lock(p)).collect()
    }

    /// Folders where the branch is checked out: the project's own checkout
    /// and every linked worktree (whose folder still exists).
    pub fn checkouts_of(&self, branch: &str) -> GitResult<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        if let Some(wd) = self.repo.workdir() {
            if is_on(&self.repo, branch) {
                dirs.push(wd.to_path_buf());
            }
        }
        for name in self.repo.worktrees()?.iter().flatten().flatten() {
            let Ok(wt) = self.repo.find_worktree(name) else {
                continue;
            };
            if wt.validate().is_err() {
                continue;
            }
            if let Ok(r) = Repository::open_from_worktree(&wt) {
                if is_on(&r, branch) {
                    dirs.push(wt.path().to_path_buf());
                }
            }
        }
        Ok(dirs)
    }

    fn signature(&self) -> GitResult<Signature<'static>> {
        Ok(self
            .repo
            .signature()
            .or_else(|_| Signature::now("agency", "agency@localhost"))?)
    }
}

fn short(commit: &str) -> String {
    commit[..commit.len().min(10)].to_string()
}

/// Whether `repo`'s HEAD is the local branch `branch`.
fn is_on(repo: &Repository, branch: &str) -> bool {
    if repo.is_bare() {
        return false;
    }
    repo.find_reference("HEAD").is_ok_and(|h| {
        h.symbolic_target().ok().flatten() == Some(format!("refs/heads/{branch}").as_str())
    })
}

/// Removes the lock file `path` if it is stale: nobody has it open and it
/// was last written over a second ago (git writes and renames a lock it
/// holds in one go). A held lock is waited for up to two seconds.
fn remove_stale_lock(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        if age > Duration::from_secs(1) && !held_open(path) {
            return std::fs::remove_file(path).is_ok();
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether any process we can see has `path` open (Linux `/proc`; where
/// there is none, every lock counts as held).
fn held_open(path: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    procs.flatten().any(|p| {
        std::fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
        })
    })
}

/// A checkout must have no changes to tracked files and no operation in
/// progress before its branch moves under it.
fn require_clean(repo: &Repository, branch: &str, dir: &Path) -> GitResult<()> {
    let state = repo.state();
    if state != RepositoryState::Clean {
        return Err(GitError::Busy {
            state: format!("{state:?}").to_lowercase(),
        });
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    let dirty: Vec<String> = statuses
        .iter()
        .filter(|s| !s.status().is_empty() && s.status() != Status::IGNORED)
        .filter_map(|s| s.path().ok().map(str::to_string))
        .collect();
    if dirty.is_empty() {
        Ok(())
    } else {
        Err(GitError::DirtyCheckout {
            branch: branch.to_string(),
            dir: dir.display().to_string(),
            files: dirty.join(", "),
        })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn rev(dir: &Path, what: &str) -> String {
        let out = std::process::Command::new("git")
            .args(["rev-parse", what])
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A repository on main with a.txt, and `feature` adding b.txt.
    fn repo() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        std::fs::create_dir(&dir).unwrap();
        sh(
            &dir,
            "git init -q -b main && echo a > a.txt && git add -A && git commit -qm one \
             && git checkout -qb feature && echo b > b.txt && git add -A && git commit -qm two \
             && git checkout -q main",
        );
        (tmp, dir)
    }

    #[test]
    fn land_moves_the_base_only_from_the_commit_the_merge_was_computed_on() {
        let (_tmp, dir) = repo();
        let p = Project::open(&dir).unwrap();
        let tested = rev(&dir, "feature");
        let (_, landing) = p.prepare_merge("main", "feature", &tested, "m").unwrap();
        let landing = landing.unwrap();
        // Somebody commits to main between the merge and the move.
        sh(
            &dir,
            "echo c > c.txt && git add -A && git commit -qm theirs",
        );
        let theirs = rev(&dir, "main");
        let err = p.land(&landing, "approve").unwrap_err();
        assert!(matches!(err, GitError::BaseMoved { .. }), "{err}");
        assert_eq!(rev(&dir, "main"), theirs, "their commit was overwritten");
    }

    #[test]
    fn land_waits_for_another_git_holding_the_branch_lock() {
        let (_tmp, dir) = repo();
        let p = Project::open(&dir).unwrap();
        let (_, landing) = p
            .prepare_merge("main", "feature", &rev(&dir, "feature"), "m")
            .unwrap();
        let landing = landing.unwrap();
        let lock = dir.join(".git/refs/heads/main.lock");
        // Held on: refused, nothing moved.
        std::fs::write(&lock, "").unwrap();
        let err = p.land(&landing, "approve").unwrap_err();
        assert!(matches!(err, GitError::RefLocked { .. }), "{err}");
        assert_eq!(rev(&dir, "main"), landing.old);
        // Let go of meanwhile (the lock is still there): it lands.
        let releaser = std::thread::spawn({
            let lock = lock.clone();
            move || {
                std::thread::sleep(Duration::from_millis(200));
                std::fs::remove_file(lock).unwrap();
            }
        });
        p.land(&landing, "approve").unwrap();
        releaser.join().unwrap();
        assert_eq!(rev(&dir, "main"), landing.new);
    }

    #[test]
    fn a_worktree_is_removed_only_with_its_branch_where_it_was_looked_at() {
        let (tmp, dir) = repo();
        let p = Project::open(&dir).unwrap();
        let wt = tmp.path().join("wt");
        p.ensure_worktree("a-x", &wt, "agency/a/x", "main").unwrap();
        let risk = p.at_risk(&wt, "agency/a/x", &[]).unwrap();
        // The agent commits after the look.
        sh(
            &wt,
            "echo late > late.txt && git add -A && git commit -qm late",
        );
        let err = p
            .remove_worktree("a-x", &wt, "agency/a/x", risk.tip.as_deref())
            .unwrap_err();
        assert!(matches!(err, GitError::BranchMoved { .. }), "{err}");
        assert!(wt.join("late.txt").is_file());
        assert_eq!(rev(&dir, "agency/a/x"), rev(&wt, "HEAD"));
    }

    #[test]
    fn the_checkout_follows_with_every_kind_of_change() {
        let (_tmp, dir) = repo();
        sh(
            &dir,
            "mkdir -p d && echo x > d/x && echo t > t && echo s > s.sh && git add -A && git commit -qm more \
             && git checkout -qb wide && git rm -q d/x && rm t && mkdir t && echo in > t/in \
             && chmod +x s.sh && echo a2 > a.txt && ln -s a.txt link && git add -A && git commit -qm wide \
             && git checkout -q main",
        );
        let p = Project::open(&dir).unwrap();
        let (_, landing) = p
            .prepare_merge("main", "wide", &rev(&dir, "wide"), "m")
            .unwrap();
        let landing = landing.unwrap();
        let staged = p.stage_checkouts(&landing).unwrap();
        assert_eq!(staged.len(), 1);
        assert!(staged[0].in_the_way().is_empty());
        p.land(&landing, "approve").unwrap();
        for s in staged {
            let applied = s.apply().unwrap();
            assert!(applied.kept.is_empty(), "{:?}", applied.kept);
        }
        let status = std::process::Command::new("git")
            .args(["status", "--porcelain"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&status.stdout), "");
        assert!(!dir.join("d").exists(), "an emptied folder stays");
    }

    /// The branch adds `data/pwn.txt` and `data/deep/x`; `data` is set up
    /// by `link` before the merge is staged.
    fn staged_through(link: &str) -> (tempfile::TempDir, PathBuf, PathBuf, Project, Landing) {
        let (tmp, dir) = repo();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        sh(
            &dir,
            "git checkout -qb evil && mkdir -p data/deep && echo pwn > data/pwn.txt \
             && echo x > data/deep/x && git add -A && git commit -qm evil && git checkout -q main",
        );
        sh(&dir, link);
        let p = Project::open(&dir).unwrap();
        let (_, landing) = p
            .prepare_merge("main", "evil", &rev(&dir, "evil"), "m")
            .unwrap();
        (tmp, dir, outside, p, landing.unwrap())
    }

    #[test]
    fn the_checkout_never_writes_through_a_symlinked_folder() {
        // An untracked link to a folder outside (git refuses the same merge).
        let (_tmp, _dir, outside, p, landing) = staged_through("ln -s ../outside data");
        let staged = p.stage_checkouts(&landing).unwrap();
        assert_eq!(
            staged[0].in_the_way(),
            vec!["data/deep/x".to_string(), "data/pwn.txt".to_string()]
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // The link appears after the files were looked at (a resumed or
        // raced approve): apply keeps the paths and writes nothing there.
        let (_tmp, dir, outside, p, landing) = staged_through("true");
        let staged = p.stage_checkouts(&landing).unwrap();
        assert!(staged[0].in_the_way().is_empty());
        std::os::unix::fs::symlink("../outside", dir.join("data")).unwrap();
        p.land(&landing, "approve").unwrap();
        let applied = staged.into_iter().next().unwrap().apply().unwrap();
        assert_eq!(applied.kept.len(), 2, "{applied:?}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_tracked_link_can_become_a_folder() {
        let (_tmp, dir) = repo();
        sh(
            &dir,
            "mkdir real && ln -s real data && git add -A && git commit -qm link \
             && git checkout -qb unlink && rm data && mkdir data && echo in > data/in \
             && git add -A && git commit -qm folder && git checkout -q main",
        );
        let p = Project::open(&dir).unwrap();
        let (_, landing) = p
            .prepare_merge("main", "unlink", &rev(&dir, "unlink"), "m")
            .unwrap();
        let landing = landing.unwrap();
        let staged = p.stage_checkouts(&landing).unwrap();
        assert!(staged[0].in_the_way().is_empty());
        p.land(&landing, "approve").unwrap();
        let applied = staged.into_iter().next().unwrap().apply().unwrap();
        assert!(applied.kept.is_empty(), "{:?}", applied.kept);
        assert!(dir.join("data").is_dir() && !dir.join("data").is_symlink());
        assert!(!dir.join("real/in").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("data/in")).unwrap(),
            "in\n"
        );
    }
}
