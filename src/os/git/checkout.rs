//! Moving a checkout's files from one commit to another so that a crash at
//! any instant leaves every file whole (as it was, or as it is to be) and a
//! second run finishes the job.
//!
//! libgit2's checkout writes files in place (a crash leaves one truncated)
//! and compares against HEAD, which `approve` has already moved. Here the
//! changed files of both commits are first written (with the repository's
//! filters) to a staging folder in the git dir; each working file is then
//! compared with both versions and replaced by a rename, only when it is
//! still the old version. Anything else is somebody's work and stays.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use git2::{build::CheckoutBuilder, build::TreeUpdateBuilder, FileMode, Oid, Repository};

use super::{GitError, GitResult};

/// One side of a changed path: its blob (or submodule commit) and mode.
#[derive(Debug, Clone, Copy)]
struct Side {
    id: Oid,
    mode: FileMode,
}

/// A changed path: both sides, where the working file stood when it was
/// prepared, and its stamp then.
#[derive(Debug)]
struct Change {
    old: Option<Side>,
    new: Option<Side>,
    standing: Standing,
    stamp: Option<Stamp>,
}

/// The changes between two commits, staged and ready to apply.
pub struct Prepared {
    workdir: PathBuf,
    stage: PathBuf,
    changes: BTreeMap<String, Change>,
    filemode: bool,
}

/// What applying did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Paths whose file now is the new version.
    pub updated: usize,
    /// Paths left alone because they were neither version: somebody's work.
    pub kept: Vec<String>,
}

/// Where a working file stands against the two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Old,
    New,
    Other,
}

/// What the file system says of a file; any write changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    fs::symlink_metadata(path).ok().map(|m| Stamp {
        ino: m.ino(),
        size: m.size(),
        mode: m.mode(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

fn io_err(what: &Path, e: io::Error) -> GitError {
    GitError::Git(git2::Error::from_str(&format!("{}: {e}", what.display())))
}

/// Stages the files that differ between `old` and `new` for the checkout
/// of `repo` (opened at that checkout), and finds where each working file
/// stands: a file the index says is unchanged is the old version; others
/// are compared byte for byte with the staged versions.
pub fn prepare(repo: &Repository, old: Oid, new: Oid) -> GitResult<Prepared> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| GitError::Git(git2::Error::from_str("no working folder")))?
        .to_path_buf();
    let changes = changes(repo, old, new)?;
    let stage = repo.path().join("agency-checkout");
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(|e| io_err(&stage, e))?;
    }
    let filemode = repo
        .config()
        .and_then(|c| c.get_bool("core.filemode"))
        .unwrap_or(true);
    let mut p = Prepared {
        workdir,
        stage,
        changes,
        filemode,
    };
    p.stage_side(repo, "new", |_| true)?;
    p.find_standing(repo)?;
    p.stand_behind_links();
    Ok(p)
}

/// Each file that differs between commits `old` and `new`, with its two
/// sides (none where it is absent).
fn changes(repo: &Repository, old: Oid, new: Oid) -> GitResult<BTreeMap<String, Change>> {
    let old_tree = repo.find_commit(old)?.tree()?;
    let new_tree = repo.find_commit(new)?.tree()?;
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)?;
    let mut changes: BTreeMap<String, Change> = BTreeMap::new();
    for d in diff.deltas() {
        for (file, is_new) in [(d.old_file(), false), (d.new_file(), true)] {
            let Some(path) = file.path().and_then(Path::to_str) else {
                continue;
            };
            if file.id().is_zero() {
                continue;
            }
            let side = Some(Side {
                id: file.id(),
                mode: file.mode(),
            });
            let c = changes.entry(path.to_string()).or_insert(Change {
                old: None,
                new: None,
                standing: Standing::Other,
                stamp: None,
            });
            if is_new {
                c.new = side;
            } else {
                c.old = side;
            }
        }
    }
    Ok(changes)
}

impl Prepared {
    /// Sets where each working file stands, with the new side staged; the
    /// old side is staged only for the files still unsure after that.
    fn find_standing(&mut self, repo: &Repository) -> GitResult<()> {
        let index = repo.index()?;
        let index_time = fs::metadata(repo.path().join("index"))
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec()));
        let mut unsure = std::collections::HashSet::new();
        for (path, c) in self.changes.iter_mut() {
            let wd = self.workdir.join(path);
            c.stamp = stamp(&wd);
            // Cheapest first: the index's word, then the file's bytes.
            c.standing = if is_gitlink(c.new) || is_gitlink(c.old) {
                // Submodules are not checked out here: only the index follows.
                Standing::New
            } else if unchanged_per_index(&index, path, c, index_time) {
                Standing::Old
            } else if same(
                &wd,
                c.new.map(|_| self.stage.join("new").join(path)),
                self.filemode,
            ) {
                Standing::New
            } else if (c.old.is_none() && c.stamp.is_none()) || hashes_to(&wd, c.old) {
                Standing::Old
            } else {
                unsure.insert(path.clone());
                Standing::Other
            };
        }
        self.stage_side(repo, "old", |path| unsure.contains(path))?;
        for path in unsure {
            let c = &self.changes[&path];
            let staged = c.old.map(|_| self.stage.join("old").join(&path));
            if same(&self.workdir.join(&path), staged, self.filemode) {
                self.changes.get_mut(&path).expect("listed").standing = Standing::Old;
            }
        }
        Ok(())
    }
}

/// The first folder between `workdir` and its file `path` that is a
/// symbolic link (relative to `workdir`): writing there would write where
/// the link points, outside the checkout (git's `has_symlink_leading_path`).
fn leading_link(workdir: &Path, path: &str) -> Option<String> {
    let rel = Path::new(path);
    let mut dir = workdir.to_path_buf();
    let mut at = PathBuf::new();
    for part in rel.parent()?.components() {
        dir.push(part);
        at.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => return Some(at.to_string_lossy().into_owned()),
            Ok(m) if m.is_dir() => {}
            _ => return None,
        }
    }
    None
}

impl Prepared {
    /// A path behind a symlinked folder is in the way, unless that link is
    /// the old version of a path this change removes (a link becoming a
    /// folder): removals go first, and `apply` looks again.
    fn stand_behind_links(&mut self) {
        let behind: Vec<(String, String)> = self
            .changes
            .keys()
            .filter_map(|p| leading_link(&self.workdir, p).map(|l| (p.clone(), l)))
            .collect();
        for (path, link) in behind {
            let goes = self
                .changes
                .get(&link)
                .is_some_and(|l| l.new.is_none() && l.standing == Standing::Old);
            let c = self.changes.get_mut(&path).expect("listed");
            if goes && c.old.is_none() {
                (c.standing, c.stamp) = (Standing::Old, None);
            } else {
                c.standing = Standing::Other;
            }
        }
    }
}

/// Whether the index vouches that the working file is the old version: its
/// entry is that blob and the file's stamp is the one recorded, written
/// before the index was (a file written in the same instant could have
/// changed unseen: git's "racy clean").
fn unchanged_per_index(
    index: &git2::Index,
    path: &str,
    c: &Change,
    index_time: Option<(i64, i64)>,
) -> bool {
    let (Some(old), Some(st), Some(it)) = (c.old, c.stamp, index_time) else {
        return false;
    };
    let Some(e) = index.get_path(Path::new(path), 0) else {
        return false;
    };
    let nanos = |n: u32, m: i64| n == 0 || i64::from(n) == m;
    e.id == old.id
        && e.mode == u32::try_from(i32::from(old.mode)).unwrap_or(0)
        && (e.mode & 0o170100) == (st.mode & 0o170100)
        && e.file_size == st.size as u32
        && e.ino == st.ino as u32
        && i64::from(e.mtime.seconds()) == st.mtime.0
        && nanos(e.mtime.nanoseconds(), st.mtime.1)
        && st.mtime < it
}

/// Whether the working file, as it is (no filters), is the blob of `side`
/// with its kind and mode: the cheap check for a file the index cannot
/// vouch for (written in the same second as the index).
fn hashes_to(wd: &Path, side: Option<Side>) -> bool {
    let (Some(side), Ok(meta)) = (side, fs::symlink_metadata(wd)) else {
        return false;
    };
    let id = if meta.file_type().is_symlink() && side.mode == FileMode::Link {
        fs::read_link(wd).ok().and_then(|t| {
            Oid::hash_object(git2::ObjectType::Blob, t.as_os_str().as_encoded_bytes()).ok()
        })
    } else if meta.is_file() && matches!(side.mode, FileMode::Blob | FileMode::BlobExecutable) {
        let exec = meta.permissions().mode() & 0o100 != 0;
        (exec == (side.mode == FileMode::BlobExecutable))
            .then(|| Oid::hash_file(git2::ObjectType::Blob, wd).ok())
            .flatten()
    } else {
        None
    };
    id == Some(side.id)
}

impl Prepared {
    /// Stages one side (`old` or `new`) of the changed paths `pick` takes.
    fn stage_side(
        &self,
        repo: &Repository,
        side: &str,
        pick: impl Fn(&str) -> bool,
    ) -> GitResult<()> {
        let files = self.changes.iter().filter_map(|(p, c)| {
            let s = if side == "old" { c.old } else { c.new };
            s.filter(|s| s.mode != FileMode::Commit && pick(p))
                .map(|s| (p.as_str(), s))
        });
        stage_files(repo, files, &self.stage.join(side))
    }
}

/// Writes `files` under `dir` as a checkout would (filters, modes, links).
fn stage_files<'a>(
    repo: &Repository,
    files: impl Iterator<Item = (&'a str, Side)>,
    dir: &Path,
) -> GitResult<()> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let empty = repo.find_tree(repo.treebuilder(None)?.write()?)?;
    let mut update = TreeUpdateBuilder::new();
    let mut any = false;
    for (path, side) in files {
        update.upsert(path, side.id, side.mode);
        any = true;
    }
    if !any {
        return Ok(());
    }
    let tree = repo.find_tree(update.create_updated(repo, &empty)?)?;
    checkout_into(repo, &tree, &empty, dir)
}

/// Checks `tree` out into `dir` (not the working folder), compared with
/// `baseline` rather than HEAD: against HEAD, a path that is a file there
/// and a folder here makes libgit2 fail.
#[allow(unsafe_code)]
fn checkout_into(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    baseline: &git2::Tree<'_>,
    dir: &Path,
) -> GitResult<()> {
    use git2::Binding;
    use libgit2_sys as raw;
    let mut co = CheckoutBuilder::new();
    co.force().target_dir(dir).update_index(false);
    // SAFETY: the options are initialised by libgit2, filled in by git2's
    // own builder (which owns the strings they point to and outlives the
    // call), and every pointer passed is a live object of this repository.
    let rc = unsafe {
        let mut opts = std::mem::MaybeUninit::<raw::git_checkout_options>::zeroed();
        raw::git_checkout_init_options(opts.as_mut_ptr(), raw::GIT_CHECKOUT_OPTIONS_VERSION);
        let mut opts = opts.assume_init();
        co.configure(&mut opts);
        opts.baseline = baseline.raw();
        raw::git_checkout_tree(repo.raw(), tree.as_object().raw(), &opts)
    };
    if rc < 0 {
        return Err(git2::Error::last_error(rc).into());
    }
    Ok(())
}

impl Prepared {
    /// Paths whose working file is neither version (an untracked or changed
    /// file in the way): applying would keep them.
    pub fn in_the_way(&self) -> Vec<String> {
        self.changes
            .iter()
            .filter(|(_, c)| c.standing == Standing::Other)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Where the working file stands now: as prepared if it was not written
    /// since; else only the new version is taken for what it is.
    fn standing_now(&self, path: &str, c: &Change) -> Standing {
        let wd = self.workdir.join(path);
        if stamp(&wd) == c.stamp {
            c.standing
        } else if same(
            &wd,
            c.new.map(|_| self.stage.join("new").join(path)),
            self.filemode,
        ) {
            Standing::New
        } else {
            Standing::Other
        }
    }

    /// Moves every file that is still the old version to the new one
    /// (removals first, so a file can become a folder and back), then the
    /// index. Safe to run again after a crash at any point.
    pub fn apply(self, repo: &Repository) -> GitResult<Applied> {
        let mut applied = Applied::default();
        let mut done = Vec::new();
        let removals = self.changes.iter().filter(|(_, c)| c.new.is_none());
        let rest = self.changes.iter().filter(|(_, c)| c.new.is_some());
        for (path, c) in removals.chain(rest) {
            let wd = self.workdir.join(path);
            // Looked at again: a folder may have become a link since.
            let standing = match leading_link(&self.workdir, path) {
                Some(_) => Standing::Other,
                None => self.standing_now(path, c),
            };
            match standing {
                Standing::New => {}
                Standing::Old if is_gitlink(c.new) || is_gitlink(c.old) => {}
                Standing::Old => match c.new {
                    Some(_) => place(&self.stage.join("new").join(path), &wd)?,
                    None => remove(&wd)?,
                },
                Standing::Other => {
                    applied.kept.push(path.clone());
                    continue;
                }
            }
            if c.new.is_none() {
                prune_empty_parents(&wd, &self.workdir);
            }
            done.push(path);
            applied.updated += 1;
        }
        let mut index = repo.index()?;
        for path in done {
            match self.changes[path].new {
                None => index.remove_path(Path::new(path))?,
                Some(side) => index.add(&entry(
                    path,
                    side,
                    fs::symlink_metadata(self.workdir.join(path)).ok(),
                ))?,
            }
        }
        // What was kept is somebody's change on top of the new version.
        for path in &applied.kept {
            match self.changes[path].new {
                None => index.remove_path(Path::new(path))?,
                Some(side) => index.add(&entry(path, side, None))?,
            }
        }
        index.write()?;
        Ok(applied)
    }
}

impl Drop for Prepared {
    /// The staged files go, applied or not (a crash leaves them to the next
    /// `prepare`, which starts afresh).
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.stage);
    }
}

/// Whether the working file `wd` is the staged file (or both are absent).
fn same(wd: &Path, staged: Option<PathBuf>, filemode: bool) -> bool {
    let a = fs::symlink_metadata(wd).ok();
    let b = staged.as_ref().and_then(|s| fs::symlink_metadata(s).ok());
    match (a, b, staged) {
        (None, None, _) => true,
        (Some(a), Some(b), Some(s)) if a.file_type().is_symlink() && b.file_type().is_symlink() => {
            fs::read_link(wd).ok() == fs::read_link(s).ok()
        }
        (Some(a), Some(b), Some(s)) if a.is_file() && b.is_file() => {
            let exec = |m: &fs::Metadata| m.permissions().mode() & 0o111 != 0;
            a.len() == b.len()
                && (!filemode || exec(&a) == exec(&b))
                && fs::read(wd).ok() == fs::read(s).ok()
        }
        _ => false,
    }
}

fn is_gitlink(side: Option<Side>) -> bool {
    side.is_some_and(|s| s.mode == FileMode::Commit)
}

/// An index entry for `side`, with the stat data of the file now in place
/// (none: git will look at the file's content next time).
fn entry(path: &str, side: Side, meta: Option<fs::Metadata>) -> git2::IndexEntry {
    let t = |s: i64, ns: i64| git2::IndexTime::new(s as i32, ns as u32);
    let m = meta.filter(|_| side.mode != FileMode::Commit);
    git2::IndexEntry {
        ctime: m.as_ref().map_or(t(0, 0), |m| t(m.ctime(), m.ctime_nsec())),
        mtime: m.as_ref().map_or(t(0, 0), |m| t(m.mtime(), m.mtime_nsec())),
        dev: m.as_ref().map_or(0, |m| m.dev() as u32),
        ino: m.as_ref().map_or(0, |m| m.ino() as u32),
        mode: u32::try_from(i32::from(side.mode)).unwrap_or(0o100644),
        uid: m.as_ref().map_or(0, |m| m.uid()),
        gid: m.as_ref().map_or(0, |m| m.gid()),
        file_size: m.as_ref().map_or(0, |m| m.size() as u32),
        id: side.id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// Puts `staged` at `dest` in one step: a rename, or where the staging
/// folder is on another file system, a copy beside `dest` renamed over it.
fn place(staged: &Path, dest: &Path) -> GitResult<()> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    match fs::rename(staged, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
            let tmp = dest.with_file_name(format!(
                ".{}.agency-tmp",
                dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")
            ));
            let _ = fs::remove_file(&tmp);
            if fs::symlink_metadata(staged).is_ok_and(|m| m.file_type().is_symlink()) {
                let target = fs::read_link(staged).map_err(|e| io_err(staged, e))?;
                std::os::unix::fs::symlink(target, &tmp).map_err(|e| io_err(&tmp, e))?;
            } else {
                fs::copy(staged, &tmp).map_err(|e| io_err(&tmp, e))?;
            }
            fs::rename(&tmp, dest).map_err(|e| io_err(dest, e))
        }
        Err(e) => Err(io_err(dest, e)),
    }
}

fn remove(path: &Path) -> GitResult<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, e)),
        _ => Ok(()),
    }
}

/// Removes the folders above a removed file that are now empty, as git does.
fn prune_empty_parents(file: &Path, workdir: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == workdir || !d.starts_with(workdir) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
