//! A small stand-in for the model APIs on 127.0.0.1 — Anthropic's Messages
//! API (Claude Code), Google's Gemini API (Gemini CLI), OpenAI's Responses
//! API (Codex) and chat completions (Aider) — so the agent CLIs run for
//! real with no network. It records every request, so a test
//! can see exactly what text reached the model, and answers by what the
//! latest user turn says:
//! - `SLOW`: the reply takes a few seconds (the agent is busy meanwhile);
//! - `RUN: COMMAND` (to the end of its line): the model asks to run COMMAND
//!   with its shell tool, or (chat completions) proposes it in a `bash`
//!   block — as a briefed agent runs `agency send ... "COMPLETE ..."`; once
//!   the tool's result is back it answers in text;
//! - `TOOL`: the same with `touch made-by-agent.txt`, which the CLI asks
//!   permission for;
//! - anything else: a short text reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

pub struct Standin {
    pub port: u16,
    /// Each request's path and JSON body.
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Arc<AtomicBool>,
}

impl Standin {
    pub fn start() -> Standin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let r = r.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &r);
                });
            }
        });
        Standin {
            port,
            requests,
            stop,
        }
    }

    /// The bodies of the model turns the agent asked for (streamed, with
    /// its tools), oldest first; side requests (titles, routing, checks)
    /// and a turn's continuations after a tool call left out.
    pub fn turns(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, r)| {
                let tools = r["tools"].as_array().is_some_and(|t| !t.is_empty());
                let streamed = r["stream"] == true || path.contains(":streamGenerateContent");
                // Codex sends a tool's result after the user's message, which
                // is then still the last one: the same turn, continued.
                let continued = r["input"]
                    .as_array()
                    .and_then(|i| i.last())
                    .is_some_and(|i| i["type"] == "function_call_output");
                // Aider's turns carry no tools: it proposes commands in text.
                streamed && !continued && (tools || path.ends_with("/chat/completions"))
            })
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// All the text of a message: Anthropic's `content` (a string or blocks)
/// or Gemini's `parts`.
pub fn text_of(message: &Value) -> String {
    let blocks = match &message["content"] {
        Value::String(s) => return s.clone(),
        Value::Array(blocks) => blocks,
        _ => match &message["parts"] {
            Value::Array(parts) => parts,
            _ => return String::new(),
        },
    };
    blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The newest user message of a request (`messages`, `contents` or
/// `input`).
pub fn last_user(request: &Value) -> Value {
    request["messages"]
        .as_array()
        .or(request["contents"].as_array())
        .or(request["input"].as_array())
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The shell command the model runs for this turn, if any: after `RUN: `
/// to the end of its line, or `touch made-by-agent.txt` for `TOOL`.
fn tool_command(said: &str) -> Option<String> {
    if let Some((_, rest)) = said.split_once("RUN: ") {
        return Some(rest.lines().next().unwrap_or("").trim().to_string());
    }
    said.contains("TOOL")
        .then(|| "touch made-by-agent.txt".to_string())
}

/// Whether a user message answers a tool call: it ends with the tool's
/// result (Claude Code puts the next prompt after it in the same message).
fn answers_tool(message: &Value) -> bool {
    let last_is = |key: &str, want: &str| {
        message[key]
            .as_array()
            .and_then(|b| b.last())
            .is_some_and(|b| b["type"] == want || b.get(want).is_some())
    };
    last_is("content", "tool_result") || last_is("parts", "functionResponse")
}

fn serve(conn: TcpStream, requests: &Mutex<Vec<(String, Value)>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    requests
        .lock()
        .unwrap()
        .push((path.clone(), request.clone()));
    let mut out = conn;
    let last = last_user(&request);
    let said = text_of(&last);
    let after_tool = answers_tool(&last);
    if path.contains(":streamGenerateContent") {
        return gemini_stream(&mut out, &said, after_tool);
    }
    if path.ends_with("/chat/completions") {
        return chat_completion(&mut out, &request, &said);
    }
    if path.ends_with("/responses") {
        // The tool's result comes as the last input item, after the user's.
        let after_tool = request["input"]
            .as_array()
            .and_then(|i| i.last())
            .is_some_and(|i| i["type"] == "function_call_output");
        let retry = escalation_retry(&request);
        return response_stream(&mut out, &said, after_tool, retry);
    }
    if path.contains(":generateContent") {
        // Gemini CLI's side calls (choosing a model, and the like) want JSON.
        return respond_json(
            &mut out,
            &gemini_reply(
                json!({"text": "{\"reasoning\": \"simple\", \"model_choice\": \"flash\"}"}),
            ),
        );
    }
    if !path.starts_with("/v1/messages") || path.contains("count_tokens") {
        return respond_json(&mut out, &json!({"input_tokens": 10, "totalTokens": 10}));
    }
    let has_bash = request["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let model = request["model"].as_str().unwrap_or("stand-in").to_string();
    if request["stream"] != true {
        return respond_json(
            &mut out,
            &json!({"id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "Stand-in reply."}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 3}}),
        );
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
    )?;
    let mut event = |name: &str, data: Value| -> std::io::Result<()> {
        write!(out, "event: {name}\ndata: {data}\n\n")?;
        out.flush()
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_standin", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
    )?;
    if said.contains("SLOW") && !after_tool {
        std::thread::sleep(Duration::from_secs(4));
    }
    let command = tool_command(&said).filter(|_| !after_tool && has_bash);
    let stop_reason = if let Some(command) = command {
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block":
                {"type": "tool_use", "id": "toolu_standin", "name": "Bash", "input": {}}}),
        )?;
        let input = json!({"command": command, "description": "Run a command"});
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta":
                {"type": "input_json_delta", "partial_json": input.to_string()}}),
        )?;
        "tool_use"
    } else {
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )?;
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta":
                {"type": "text_delta", "text": "Stand-in reply."}}),
        )?;
        "end_turn"
    };
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    )?;
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": 5}}),
    )?;
    event("message_stop", json!({"type": "message_stop"}))
}

fn gemini_reply(part: Value) -> Value {
    json!({"candidates": [{"content": {"parts": [part], "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}})
}

/// One streamed Gemini answer: a shell call for `TOOL`, else text.
fn gemini_stream(out: &mut TcpStream, said: &str, after_tool: bool) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    )?;
    out.flush()?;
    if said.contains("SLOW") && !after_tool {
        std::thread::sleep(Duration::from_secs(4));
    }
    let part = if let Some(command) = tool_command(said).filter(|_| !after_tool) {
        json!({"functionCall": {"name": "run_shell_command",
            "args": {"command": command, "description": "Run a command"}}})
    } else {
        json!({"text": "Stand-in reply."})
    };
    write!(out, "data: {}\r\n\r\n", gemini_reply(part))?;
    out.flush()
}

/// A command Codex ran in its sandbox that failed: as a model does, the
/// stand-in asks to run it again outside the sandbox.
fn escalation_retry(request: &Value) -> Option<String> {
    let input = request["input"].as_array()?;
    let [.., call, output] = input.as_slice() else {
        return None;
    };
    let failed = output["type"] == "function_call_output"
        && output["output"]
            .as_str()
            .is_some_and(|o| o.contains("Process exited with code ") && !o.contains("code 0\n"));
    let args: Value = serde_json::from_str(call["arguments"].as_str()?).ok()?;
    (failed && args.get("sandbox_permissions").is_none())
        .then(|| args["cmd"].as_str().map(str::to_string))?
}

/// One streamed Responses API answer: for a command, a call of Codex's
/// `exec_command`. As a model told its sandbox's writable folders would,
/// it runs agency's own commands in the sandbox and asks to run any other
/// outside it, which needs approval; one that failed in the sandbox
/// (`retry`) it asks to run again outside.
fn response_stream(
    out: &mut TcpStream,
    said: &str,
    after_tool: bool,
    retry: Option<String>,
) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    )?;
    let mut event = |data: Value| -> std::io::Result<()> {
        write!(
            out,
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap()
        )?;
        out.flush()
    };
    event(json!({"type": "response.created", "response": {"id": "resp_standin"}}))?;
    if said.contains("SLOW") && !after_tool {
        std::thread::sleep(Duration::from_secs(4));
    }
    let command = retry
        .clone()
        .or_else(|| tool_command(said).filter(|_| !after_tool));
    let item = if let Some(command) = command {
        let args = if command.starts_with("agency ") && retry.is_none() {
            json!({"cmd": command})
        } else {
            json!({"cmd": command, "sandbox_permissions": "require_escalated",
                "justification": "Run a command"})
        };
        json!({"type": "function_call", "id": "fc_standin", "call_id": "call_standin",
            "name": "exec_command", "arguments": args.to_string()})
    } else {
        json!({"type": "message", "id": "msg_standin", "role": "assistant",
            "content": [{"type": "output_text", "text": "Stand-in reply."}]})
    };
    event(json!({"type": "response.output_item.done", "item": item}))?;
    event(
        json!({"type": "response.completed", "response": {"id": "resp_standin",
        "usage": {"input_tokens": 10, "input_tokens_details": null, "output_tokens": 5,
            "output_tokens_details": null, "total_tokens": 15}}}),
    )
}

/// One chat completion (streamed when asked): for `TOOL`, the reply
/// proposes the shell command in a `bash` block, which Aider offers to run.
fn chat_completion(out: &mut TcpStream, request: &Value, said: &str) -> std::io::Result<()> {
    let model = request["model"].as_str().unwrap_or("stand-in").to_string();
    if said.contains("SLOW") {
        std::thread::sleep(Duration::from_secs(4));
    }
    let text = match tool_command(said) {
        Some(command) => format!("Run this:\n\n```bash\n{command}\n```\n"),
        None => "Stand-in reply.".to_string(),
    };
    if request["stream"] != true {
        return respond_json(
            out,
            &json!({"id": "chat-standin", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}),
        );
    }
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    )?;
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chat-standin", "object": "chat.completion.chunk", "created": 0,
            "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    write!(
        out,
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk(json!({"role": "assistant", "content": text}), Value::Null),
        chunk(json!({}), json!("stop"))
    )?;
    out.flush()
}

fn respond_json(out: &mut TcpStream, v: &Value) -> std::io::Result<()> {
    let body = v.to_string();
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
