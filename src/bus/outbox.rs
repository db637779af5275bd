//! `registry/outbox/`: a drop-box any program can use. Write a `*.json` file
//! elsewhere, rename it in; the router queues it and removes it. A file that
//! is not a valid message moves to `outbox/rejected/` with a `.reason` file
//! beside it — never silently deleted. So does what is no regular file (a
//! FIFO, a symbolic link), cannot be read, or is over `MAX_FILE` (refused
//! unread).
//!
//! Each drop is queued exactly once: the router first takes the file into
//! `outbox/.taken/` under a name of its own, and that name keys the
//! message, so a crash before the file is removed queues nothing twice,
//! and the same file dropped again later is a new message.
//!
//! ```json
//! {"to": "CodeAgency/python-agent", "from": "ci", "body": "TASK fix the build"}
//! {"to": "CodeAgency", "from": "QAAgency", "type": "results", "status": "passed"}
//! ```
//! With `body`, it is an intra-agency message (agent defaults to the
//! coordinator). Without, the object itself (less `to` and `from`) or its
//! `payload` is an inter-agency message to the coordinator and needs a
//! string `type`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use notify::{EventKind, RecursiveMode, Watcher};
use rustix::fs::OFlags;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bus;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::validate_name;
use crate::model::IntraType;
use crate::store::NewMessage;

pub fn dir(registry: &Path) -> PathBuf {
    registry.join("outbox")
}

/// Watches the outbox and wakes the router on any change. The watcher
/// lives as long as the returned value.
pub fn watch(registry: &Path, wake: PathBuf) -> Option<notify::RecommendedWatcher> {
    let outbox = dir(registry);
    fs::create_dir_all(&outbox).ok()?;
    let sock = UnixDatagram::unbound().ok()?;
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Only arrivals: the router's own reads of the folder raise access
        // events, and waking on those would make it spin.
        if res.is_ok_and(|e| matches!(e.kind, EventKind::Create(_) | EventKind::Modify(_))) {
            let _ = sock.send_to(b"o", &wake);
        }
    })
    .ok()?;
    watcher.watch(&outbox, RecursiveMode::NonRecursive).ok()?;
    Some(watcher)
}

/// An outbox file larger than this is refused unread: a message body is
/// at most 64 KiB, and even written out as JSON escapes it stays below.
pub const MAX_FILE: u64 = 1024 * 1024;

/// Queues every `*.json` in the outbox; returns how many were queued.
pub fn ingest(ctx: &mut Ctx) -> Result<usize> {
    let outbox = dir(&ctx.ws.registry_dir());
    let Ok(entries) = fs::read_dir(&outbox) else {
        return Ok(0);
    };
    let mut dropped: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !hidden(p))
        .collect();
    dropped.sort();
    let taken_dir = own_dir(&outbox, TAKEN)?;
    for path in dropped {
        if let Err(e) = take(&path, &taken_dir) {
            tracing::warn!("outbox: {e}");
        }
    }
    // What a crashed router took and did not finish is taken already.
    let mut taken: Vec<PathBuf> = fs::read_dir(&taken_dir)
        .map_err(|e| Error::io(taken_dir.display(), e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    taken.sort();
    let mut queued = 0;
    for path in taken {
        // One file that cannot be moved or queued holds up no other.
        match ingest_one(ctx, &outbox, &path) {
            Ok(n) => queued += n,
            Err(e) => tracing::warn!("outbox: {}: {e}", path.display()),
        }
    }
    Ok(queued)
}

/// Where the router keeps the files it took (a name starting with a dot,
/// so no drop is ever mistaken for it).
const TAKEN: &str = ".taken";

fn hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

/// `outbox/NAME`, made if missing; refused if something else (a symbolic
/// link to elsewhere) is there.
fn own_dir(outbox: &Path, name: &str) -> Result<PathBuf> {
    let d = outbox.join(name);
    match fs::symlink_metadata(&d) {
        Ok(m) if m.is_dir() => Ok(d),
        Ok(_) => Err(Error::user(
            format!("{} is not a folder", d.display()),
            format!("remove it; the router makes its own {name} folder"),
        )),
        Err(_) => {
            fs::create_dir(&d).map_err(|e| Error::io(d.display(), e))?;
            Ok(d)
        }
    }
}

/// Moves a dropped file into `.taken/` under a name never used before:
/// the time in nanoseconds, then its own name.
fn take(path: &Path, taken: &Path) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut n = 0;
    let target = loop {
        let t = taken.join(format!("{nanos:020}-{n}-{name}"));
        if fs::symlink_metadata(&t).is_err() {
            break t;
        }
        n += 1;
    };
    match fs::rename(path, &target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path.display(), e)),
    }
}

/// Queues (or rejects) one taken file and removes it; returns how many
/// messages were queued.
fn ingest_one(ctx: &mut Ctx, outbox: &Path, path: &Path) -> Result<usize> {
    let key = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // The name it was dropped under, after our `<nanos>-<n>-`.
    let name = key.splitn(3, '-').nth(2).unwrap_or(&key).to_string();
    let bytes = match read_drop(path) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(0),
        Err(reason) => {
            reject(outbox, path, &name, &reason)?;
            return Ok(0);
        }
    };
    let mut msg = match parse(ctx, &bytes) {
        Ok(m) => m,
        Err(e) => {
            reject(outbox, path, &name, &e.to_string())?;
            return Ok(0);
        }
    };
    // Queued at most once even if we crash before removing the file.
    let digest = Sha256::digest(&bytes);
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    msg.origin = Some(format!("outbox:{key}:{hash}"));
    let ids = ctx.store.queue_messages(std::slice::from_ref(&msg))?;
    let _ = fs::remove_file(path);
    Ok(ids.len())
}

/// The contents of a dropped file, or why it cannot be a message; `None`
/// if it went away. Nothing here blocks (a FIFO is not opened for
/// reading) or reads more than `MAX_FILE`.
fn read_drop(path: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    check_kind(&meta)?;
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::NOFOLLOW).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    // What was opened, which may have been swapped in since the look.
    check_kind(
        &file
            .metadata()
            .map_err(|e| format!("cannot be read: {e}"))?,
    )?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    Ok(Some(bytes))
}

fn check_kind(meta: &fs::Metadata) -> std::result::Result<(), String> {
    let t = meta.file_type();
    let what = if t.is_file() {
        if meta.len() > MAX_FILE {
            return Err(format!(
                "{} bytes: an outbox file holds at most {MAX_FILE}",
                meta.len()
            ));
        }
        return Ok(());
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(format!(
        "{what}, not a regular file: write the message to a file elsewhere and rename it in"
    ))
}

/// Moves `path` to `rejected/NAME` (or `NAME.1`, ...) with `NAME.reason`
/// beside it. Nothing there is overwritten or followed.
fn reject(outbox: &Path, path: &Path, name: &str, reason: &str) -> Result<()> {
    let rejected = own_dir(outbox, "rejected")?;
    let free = |p: &Path| fs::symlink_metadata(p).is_err();
    let mut n = 0;
    let (target, reason_path) = loop {
        let base = if n == 0 {
            name.to_string()
        } else {
            format!("{name}.{n}")
        };
        let t = rejected.join(&base);
        let r = rejected.join(format!("{base}.reason"));
        if free(&t) && free(&r) {
            break (t, r);
        }
        n += 1;
    };
    fs::rename(path, &target).map_err(|e| Error::io(path.display(), e))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&reason_path)
        .map_err(|e| Error::io(reason_path.display(), e))?;
    std::io::Write::write_all(&mut f, format!("{reason}\n").as_bytes())
        .map_err(|e| Error::io(reason_path.display(), e))
}

fn parse(ctx: &Ctx, bytes: &[u8]) -> Result<NewMessage> {
    let mut msg = parse_drop(bytes)?;
    // The coordinator answers to its own name too.
    msg.agent = ctx.resolve(&msg.agency, &msg.agent)?.agent;
    Ok(msg)
}

/// The message an outbox file holds, before its recipient is looked up.
pub fn parse_drop(bytes: &[u8]) -> Result<NewMessage> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::user(format!("not valid JSON: {e}"), ""))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::user("not a JSON object", ""))?;
    let to = obj
        .get("to")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::user("missing \"to\" (\"Agency\" or \"Agency/agent\")", ""))?;
    let (agency_name, agent) = to.split_once('/').unwrap_or((to, "coordinator"));
    validate_name("agency", agency_name)?;
    validate_name("agent", agent)?;
    let from = match obj.get("from") {
        None => "outbox".to_string(),
        Some(Value::String(f)) => bus::sender(Some(f))?,
        Some(_) => return Err(Error::user("\"from\" must be a string", "")),
    };
    if let Some(body) = obj.get("body") {
        let body = body
            .as_str()
            .ok_or_else(|| Error::user("\"body\" must be a string", ""))?;
        let body = bus::check_body(body)?;
        let kind = IntraType::of(&body, obj.get("type").and_then(Value::as_str))?
            .as_str()
            .to_string();
        return Ok(bus::intra_message(&from, agency_name, agent, kind, body));
    }
    let payload = match obj.get("payload") {
        Some(p) => p.clone(),
        None => {
            let mut p = obj.clone();
            p.remove("to");
            p.remove("from");
            Value::Object(p)
        }
    };
    let payload = bus::parse_payload(&payload.to_string())?;
    let mut msg = bus::inter_message(&from, agency_name, payload)?;
    msg.agent = agent.into();
    Ok(msg)
}
