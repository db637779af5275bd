//! The only door to git: git2 (libgit2, built vendored) on the project
//! repository. Branches, diff stats, sandbox worktrees, and the one merge
//! into the base branch that `approve` makes.

use std::path::{Path, PathBuf};

use git2::{BranchType, Oid, Repository, RepositoryState, Signature, Status, StatusOptions};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not a git repository")]
    NotARepo { path: String },
    #[error("branch {branch:?} does not exist in the project repository")]
    NoBranch { branch: String },
    #[error("the project's checkout of {branch:?} has uncommitted changes: {files}")]
    DirtyCheckout { branch: String, files: String },
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

/// What happened to the project's own checkout when the base moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutUpdate {
    /// Not on the base branch (or bare): nothing to do.
    NotOnBase,
    /// Clean and on the base branch: its files now match the new commit.
    Updated,
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
        let branch = self.repo.branch(&full, &target, true)?;
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

    /// Names of our sandbox worktrees that git knows about.
    pub fn sandboxes(&self) -> GitResult<Vec<String>> {
        Ok(self
            .repo
            .worktrees()?
            .iter()
            .flatten()
            .flatten()
            .filter_map(|n| n.strip_prefix(SANDBOX_PREFIX).map(str::to_string))
            .collect())
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

    /// What removing the worktree at `dir` and deleting `branch` would lose.
    pub fn at_risk(&self, dir: &Path, branch: &str, base: &str) -> GitResult<AtRisk> {
        let mut risk = AtRisk::default();
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
        }
        if let Ok(oid) = self.branch_oid(branch) {
            risk.unmerged_commits = self.repo.graph_ahead_behind(oid, self.branch_oid(base)?)?.0;
        }
        Ok(risk)
    }

    /// Removes an agent's worktree and deletes its branch. Callers check
    /// `at_risk` first: this removes whatever is there.
    pub fn remove_worktree(&self, name: &str, dir: &Path, branch: &str) -> GitResult<()> {
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

    /// Merges `branch` into `base` if it is still at `tested`: fast-forward
    /// when possible, else a merge commit with `message`. On a conflict or a
    /// moved branch nothing changes. When the project's checkout is on the
    /// base branch it must be clean, and its files follow the new commit.
    pub fn merge(
        &self,
        base: &str,
        branch: &str,
        tested: &str,
        message: &str,
    ) -> GitResult<(MergeOutcome, CheckoutUpdate)> {
        let head = self.branch_oid(branch)?;
        if head.to_string() != tested {
            let outcome = MergeOutcome::Moved {
                tested: tested.to_string(),
                now: head.to_string(),
            };
            return Ok((outcome, CheckoutUpdate::NotOnBase));
        }
        let base_oid = self.branch_oid(base)?;
        let on_base = self.checkout_is_on(base)?;
        if on_base {
            self.require_clean(base)?;
        }
        let (outcome, new) = if base_oid == head || self.repo.graph_descendant_of(base_oid, head)? {
            let c = base_oid.to_string();
            return Ok((
                MergeOutcome::UpToDate { commit: c },
                CheckoutUpdate::NotOnBase,
            ));
        } else if self.repo.graph_descendant_of(head, base_oid)? {
            (
                MergeOutcome::FastForward {
                    commit: head.to_string(),
                },
                head,
            )
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
                return Ok((MergeOutcome::Conflict { files }, CheckoutUpdate::NotOnBase));
            }
            let tree = self.repo.find_tree(index.write_tree_to(&self.repo)?)?;
            let sig = self.signature()?;
            let oid = self
                .repo
                .commit(None, &sig, &sig, message, &tree, &[&ours, &theirs])?;
            (
                MergeOutcome::MergeCommit {
                    commit: oid.to_string(),
                },
                oid,
            )
        };
        let update = if on_base {
            // Files first, from the old commit to the new one (safe: only
            // files still as committed are touched), then the branch.
            let target = self.repo.find_commit(new)?;
            let mut co = git2::build::CheckoutBuilder::new();
            co.safe();
            self.repo.checkout_tree(target.as_object(), Some(&mut co))?;
            CheckoutUpdate::Updated
        } else {
            CheckoutUpdate::NotOnBase
        };
        self.repo.reference(
            &format!("refs/heads/{base}"),
            new,
            true,
            &format!("agency: approve {branch} into {base}"),
        )?;
        Ok((outcome, update))
    }

    fn checkout_is_on(&self, branch: &str) -> GitResult<bool> {
        if self.repo.is_bare() {
            return Ok(false);
        }
        let head = match self.repo.find_reference("HEAD") {
            Ok(h) => h,
            Err(_) => return Ok(false),
        };
        let target = head.symbolic_target().ok().flatten();
        Ok(target == Some(format!("refs/heads/{branch}").as_str()))
    }

    fn require_clean(&self, branch: &str) -> GitResult<()> {
        let state = self.repo.state();
        if state != RepositoryState::Clean {
            return Err(GitError::Busy {
                state: format!("{state:?}").to_lowercase(),
            });
        }
        let mut opts = StatusOptions::new();
        opts.include_untracked(false).include_ignored(false);
        let statuses = self.repo.statuses(Some(&mut opts))?;
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
                files: dirty.join(", "),
            })
        }
    }

    fn signature(&self) -> GitResult<Signature<'static>> {
        Ok(self
            .repo
            .signature()
            .or_else(|_| Signature::now("agency", "agency@localhost"))?)
    }
}
