//! `registry/outbox/`: a drop-box any program can use. Write a `*.json` file
//! elsewhere, rename it in; the router queues it and removes it. A file that
//! is not a valid message moves to `outbox/rejected/` with a `.reason` file
//! beside it — never silently deleted.
//!
//! ```json
//! {"to": "CodeAgency/python-agent", "from": "ci", "body": "TASK fix the build"}
//! {"to": "CodeAgency", "from": "QAAgency", "type": "results", "status": "passed"}
//! ```
//! With `body`, it is an intra-agency message (agent defaults to the
//! coordinator). Without, the object itself (less `to` and `from`) or its
//! `payload` is an inter-agency message to the coordinator and needs a
//! string `type`.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::Value;

use crate::agency::{self, spec::validate_name, Ctx};
use crate::bus;
use crate::error::{Error, Result};
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

/// Queues every `*.json` in the outbox; returns how many were queued.
pub fn ingest(ctx: &mut Ctx) -> Result<usize> {
    let outbox = dir(&ctx.ws.registry_dir());
    let Ok(entries) = fs::read_dir(&outbox) else {
        return Ok(0);
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    let mut queued = 0;
    for path in files {
        let Ok(bytes) = fs::read(&path) else { continue };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match parse(ctx, &bytes) {
            Ok(mut msg) => {
                // Queued at most once even if we crash before removing it.
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                msg.origin = Some(format!("outbox:{name}:{:016x}", h.finish()));
                let ids = ctx.store.queue_messages(std::slice::from_ref(&msg))?;
                for id in &ids {
                    ctx.activity_line(
                        &msg.agency,
                        "message.queued",
                        &serde_json::json!({"id": id, "from": msg.from, "to": format!("{}/{}", msg.agency, msg.agent), "type": msg.kind, "outbox": name}),
                    )?;
                }
                let _ = fs::remove_file(&path);
                queued += ids.len();
            }
            Err(e) => reject(&outbox, &path, &name, &e.to_string())?,
        }
    }
    Ok(queued)
}

fn reject(outbox: &Path, path: &Path, name: &str, reason: &str) -> Result<()> {
    let rejected = outbox.join("rejected");
    fs::create_dir_all(&rejected).map_err(|e| Error::io(rejected.display(), e))?;
    let mut target = rejected.join(name);
    let mut n = 1;
    while target.exists() {
        target = rejected.join(format!("{name}.{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(|e| Error::io(path.display(), e))?;
    let reason_path = PathBuf::from(format!("{}.reason", target.display()));
    fs::write(&reason_path, format!("{reason}\n")).map_err(|e| Error::io(reason_path.display(), e))
}

fn parse(ctx: &Ctx, bytes: &[u8]) -> Result<NewMessage> {
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
    // The coordinator answers to its own name too.
    let agent = &agency::resolve_agent(ctx, agency_name, agent)?;
    if let Some(body) = obj.get("body") {
        let body = body
            .as_str()
            .ok_or_else(|| Error::user("\"body\" must be a string", ""))?;
        let body = bus::check_body(body)?;
        let kind = bus::intra_type(&body, obj.get("type").and_then(Value::as_str))?;
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
