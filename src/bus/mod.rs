//! The message bus: the message model, queueing (send, send-inter,
//! broadcast, the outbox drop-box), inbox and ack, and the router that types
//! messages into panes.
//!
//! A message is a row in the registry before any command returns; the router
//! is the only writer into panes.

pub mod outbox;
pub mod router;

use std::path::Path;

use serde_json::Value;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::validate_name;
use crate::model::{sanitize, validate_type, IntraType};
use crate::store::NewMessage;

/// Bodies larger than this go nowhere useful in a terminal; refuse them.
pub const MAX_BODY: usize = 64 * 1024;

/// The sender: `--from AGENCY/AGENT` (or a bare name), else
/// `AGENCY_NAME`/`AGENCY_AGENT` from the environment, else `human`.
pub fn sender(from: Option<&str>) -> Result<String> {
    if let Some(f) = from {
        for part in f.split('/') {
            validate_name("sender", part)?;
        }
        if f.split('/').count() > 2 {
            return Err(Error::user(
                format!("invalid sender {f:?}"),
                "use --from AGENCY/AGENT or --from NAME",
            ));
        }
        return Ok(f.to_string());
    }
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let from = match (env("AGENCY_NAME"), env("AGENCY_AGENT")) {
        (Some(a), Some(b)) => format!("{a}/{b}"),
        (Some(a), None) => a,
        _ => return Ok("human".to_string()),
    };
    // The environment is an agent's to change: it reaches the header only
    // if it holds names.
    if from
        .split('/')
        .any(|part| validate_name("sender", part).is_err())
    {
        return Err(Error::user(
            format!("AGENCY_NAME/AGENCY_AGENT in the environment make the invalid sender {from:?}"),
            "pass --from AGENCY/AGENT, or unset AGENCY_NAME and AGENCY_AGENT to send as the human",
        ));
    }
    Ok(from)
}

/// The agent whose pane this command runs in: `AGENCY_NAME`/`AGENCY_AGENT`
/// naming a coordinator or specialist of the workspace.
fn pane_agent(ctx: &Ctx) -> Option<(String, String)> {
    let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let (agency, agent) = (env("AGENCY_NAME")?, env("AGENCY_AGENT")?);
    let rows = ctx.store.agents(&agency).ok()?;
    rows.iter()
        .any(|a| a.name == agent && a.role.is_agent())
        .then_some((agency, agent))
}

/// Inside an agent's pane, a sender given by name must be that agent (or,
/// where the sender may be an agency, `agency_ok`, its agency): no agent
/// passes for the human, the tool (`agency`) or another agent by mistake.
/// A guard against mistakes, not a boundary: the environment is the
/// agent's own to change.
pub fn check_own_sender(ctx: &Ctx, from: &str, agency_ok: bool) -> Result<()> {
    let Some((agency, agent)) = pane_agent(ctx) else {
        return Ok(());
    };
    let own = format!("{agency}/{agent}");
    let same = match from.split_once('/') {
        Some((a, b)) => a == agency && ctx.resolve(a, b).is_ok_and(|r| r.agent == agent),
        None => agency_ok && from == agency,
    };
    if same {
        return Ok(());
    }
    let hint = if agency_ok {
        format!("send as {agency} or {own}, the agent whose pane this is")
    } else {
        format!("leave out --from: here messages go out as {own}, the agent whose pane this is")
    };
    Err(Error::user(
        format!("inside the pane of {own}, a message cannot be sent as {from:?}; nothing was sent"),
        hint,
    ))
}

/// A sanitized, non-empty body no larger than `MAX_BODY`.
pub fn check_body(body: &str) -> Result<String> {
    let clean = sanitize(body);
    if clean.trim().is_empty() {
        return Err(Error::user(
            "the message is empty",
            "give the message text as an argument, or `-` to read it from stdin",
        ));
    }
    if clean.len() > MAX_BODY {
        return Err(Error::user(
            format!(
                "the message is {} bytes; a message holds at most {MAX_BODY}; nothing was written",
                clean.len()
            ),
            "put long content in a file and send its path",
        ));
    }
    Ok(clean)
}

/// Queues messages, then makes sure a router will deliver them.
pub fn queue(ctx: &mut Ctx, msgs: &[NewMessage]) -> Result<Vec<i64>> {
    let ids = ctx.store.queue_messages(msgs)?;
    queued(ctx)?;
    Ok(ids)
}

/// What follows queueing (also for messages queued inside another
/// transaction, like a task's): a router to deliver them. (Their events
/// were recorded with them.)
pub fn queued(ctx: &mut Ctx) -> Result<()> {
    // With no agency running, nothing can be delivered: the messages wait
    // in the registry, and `create` or `restore` starts the router. One
    // started now would only wait for an agency, then stop.
    if router::any_running(ctx) {
        router::ensure_running(&ctx.ws)?;
    }
    router::wake(&ctx.ws.registry_dir());
    Ok(())
}

/// `agency send`.
pub fn send(
    ctx: &mut Ctx,
    agency_name: &str,
    agent: &str,
    body: &str,
    kind: Option<&str>,
    from: Option<&str>,
) -> Result<i64> {
    send_at(ctx, agency_name, agent, body, kind, from, None)
}

/// `agency schedule`: like `send`, delivered when `at` has come, never
/// before.
pub fn schedule(
    ctx: &mut Ctx,
    agency_name: &str,
    agent: &str,
    body: &str,
    kind: Option<&str>,
    at: std::time::SystemTime,
) -> Result<i64> {
    check_schedule_time(at)?;
    let at = humantime::format_rfc3339_millis(at).to_string();
    send_at(ctx, agency_name, agent, body, kind, None, Some(at))
}

/// The last second a check-in can be set for: stored times have four-digit
/// years (9999-12-31T23:59:59Z).
const LATEST_SCHEDULE_SECS: u64 = 253_402_300_799;

/// A check-in time must be writable as a stored time (four-digit year).
pub fn check_schedule_time(at: std::time::SystemTime) -> Result<()> {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if secs > LATEST_SCHEDULE_SECS {
        return Err(too_far());
    }
    Ok(())
}

pub fn too_far() -> Error {
    Error::user(
        "that is too far in the future: check-ins go up to 9999-12-31T23:59:59Z",
        "give a nearer time, e.g. --in 30d or --at 2030-01-01T09:00:00Z",
    )
}

fn send_at(
    ctx: &mut Ctx,
    agency_name: &str,
    agent: &str,
    body: &str,
    kind: Option<&str>,
    from: Option<&str>,
    deliver_at: Option<String>,
) -> Result<i64> {
    validate_name("agency", agency_name)?;
    validate_name("agent", agent)?;
    let body = check_body(body)?;
    let kind = IntraType::of(&body, kind)?.as_str().to_string();
    let named = from.is_some();
    let from = sender(from)?;
    if named {
        check_own_sender(ctx, &from, false)?;
    }
    let agent = ctx.resolve(agency_name, agent)?.agent;
    let msg = NewMessage {
        deliver_at,
        ..intra_message(&from, agency_name, &agent, kind, body)
    };
    let ids = queue(ctx, &[msg])?;
    Ok(ids[0])
}

/// An intra-agency message (`body` already checked).
pub fn intra_message(
    from: &str,
    agency: &str,
    agent: &str,
    kind: String,
    body: String,
) -> NewMessage {
    NewMessage {
        from: from.to_string(),
        agency: agency.to_string(),
        agent: agent.to_string(),
        kind,
        body,
        payload: None,
        origin: None,
        deliver_at: None,
    }
}

/// Parses and checks an inter-agency payload: a JSON object with a string
/// `type`.
pub fn parse_payload(json: &str) -> Result<Value> {
    let hint = r#"pass a JSON object with a string "type", e.g. '{"type": "results", "task": "T", "status": "passed"}'"#;
    let value: Value = serde_json::from_str(json)
        .map_err(|e| Error::user(format!("the message is not valid JSON: {e}"), hint))?;
    match value.get("type") {
        Some(Value::String(t)) if !t.trim().is_empty() => validate_type(t)?,
        Some(_) => return Err(Error::user("\"type\" must be a non-empty string", hint)),
        None if value.is_object() => return Err(Error::user("the message has no \"type\"", hint)),
        None => return Err(Error::user("the message must be a JSON object", hint)),
    }
    Ok(value)
}

/// A message for an agency's coordinator carrying `payload`.
pub fn inter_message(from: &str, to: &str, payload: Value) -> Result<NewMessage> {
    let kind = payload["type"].as_str().unwrap_or("note").to_string();
    validate_type(&kind)?;
    let body = check_body(&payload.to_string())?;
    Ok(NewMessage {
        from: from.to_string(),
        agency: to.to_string(),
        agent: "coordinator".into(),
        kind,
        body,
        payload: Some(payload),
        origin: None,
        deliver_at: None,
    })
}

/// `agency send-inter`.
pub fn send_inter(ctx: &mut Ctx, from: &str, to: &str, json: &str) -> Result<i64> {
    let from = sender(Some(from))?;
    check_own_sender(ctx, &from, true)?;
    validate_name("agency", to)?;
    let payload = parse_payload(json)?;
    ctx.resolve(to, "coordinator")?;
    let ids = queue(ctx, &[inter_message(&from, to, payload)?])?;
    Ok(ids[0])
}

/// `agency broadcast`: to every running agency's coordinator, or every agent.
/// A JSON object with a `type` travels as an inter-agency payload.
pub fn broadcast(ctx: &mut Ctx, from: &str, message: &str, all_agents: bool) -> Result<Vec<i64>> {
    let from = sender(Some(from))?;
    check_own_sender(ctx, &from, true)?;
    let payload = serde_json::from_str::<Value>(message)
        .ok()
        .filter(|v| v.get("type").is_some_and(Value::is_string));
    let body = check_body(message)?;
    let kind = match &payload {
        Some(p) => p["type"].as_str().unwrap_or("alert").to_string(),
        None => IntraType::of(&body, None)?.as_str().to_string(),
    };
    validate_type(&kind)?;
    let mut msgs = Vec::new();
    for agency in ctx.running_agencies()? {
        for agent in ctx.agent_names(&agency)? {
            if all_agents || agent == "coordinator" {
                msgs.push(NewMessage {
                    from: from.clone(),
                    agency: agency.clone(),
                    agent,
                    kind: kind.clone(),
                    body: body.clone(),
                    payload: payload.clone(),
                    origin: None,
                    deliver_at: None,
                });
            }
        }
    }
    if msgs.is_empty() {
        return Err(Error::user(
            "no agency is running: nobody to broadcast to",
            "start one with `agency create NAME`",
        ));
    }
    queue(ctx, &msgs)
}

/// Reads a message argument: `-` means stdin.
pub fn read_body(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    read_bounded(std::io::stdin())
}

/// At most `MAX_BODY` bytes (and a final newline, dropped) from `input`:
/// more is refused after reading one byte past it, whatever is still coming
/// (`cat /dev/zero | agency send ... -`).
fn read_bounded(input: impl std::io::Read) -> Result<String> {
    let limit = MAX_BODY + 1;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut input.take(limit as u64 + 1), &mut bytes)
        .map_err(|e| Error::io("stdin", e))?;
    if bytes.len() > limit {
        return Err(Error::user(
            format!("stdin holds more than {MAX_BODY} bytes; a message holds at most {MAX_BODY}; nothing was written"),
            "put long content in a file and send its path",
        ));
    }
    let s = String::from_utf8(bytes).map_err(|e| {
        Error::io(
            "stdin",
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

/// Where the router listens for wake-ups.
pub fn wake_socket(registry: &Path) -> std::path::PathBuf {
    registry.join("router.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_bodies_are_read_only_to_the_limit() {
        // Endless input: refused after MAX_BODY + 2 bytes, not read to the end.
        let endless = std::io::repeat(b'x');
        let e = read_bounded(endless).unwrap_err().to_string();
        assert!(e.contains("more than 65536 bytes"), "{e}");
        let full = "y".repeat(MAX_BODY);
        assert_eq!(read_bounded(format!("{full}\n").as_bytes()).unwrap(), full);
        assert!(read_bounded(format!("{full}yy").as_bytes()).is_err());
    }

    #[test]
    fn payloads_need_a_string_type() {
        assert!(parse_payload(r#"{"type": "handoff"}"#).is_ok());
        for bad in [
            "{",
            "[]",
            "3",
            r#"{"kind": "x"}"#,
            r#"{"type": 3}"#,
            r#"{"type": ""}"#,
        ] {
            assert!(parse_payload(bad).is_err(), "{bad}");
        }
    }
}
