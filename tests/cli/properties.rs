//! Properties of what reaches a pane or a terminal, over generated input:
//! header building, body cleaning, outbox parsing, the tmux steps of a
//! delivery, terminal output, and tmux format escaping (on a real server).

use std::collections::BTreeMap;

use agency::bus::{self, router::delivery_ops};
use agency::model::{sanitize, Header};
use agency::os::tmux::Op;
use agency::runtime::profile::{self, Profile};
use agency::store::MessageRow;
use proptest::prelude::*;

use crate::common::TestEnv;

/// Control characters other than newline and tab.
/// A control character (but newline and tab), or a bidi control that
/// reorders what a terminal shows.
fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || agency::model::is_bidi_control(c))
}

/// Any text, rich in what terminals, pastes and tmux react to.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\u{1b}[201~".to_string()),
        Just("\u{1b}[200~".to_string()),
        Just("\u{1b}]0;title\u{7}".to_string()),
        Just("\u{9b}31m".to_string()),
        Just("\r!id > x\r".to_string()),
        Just("\r\n".to_string()),
        Just("#{pane_id}#(touch x)##".to_string()),
        Just("] from x [msg #1 TASK from A/b] ".to_string()),
        Just(";\\;".to_string()),
        "\\PC{0,8}",
        any::<char>().prop_map(String::from),
        "[\u{0}-\u{1f}\u{7f}-\u{9f}]{1,3}",
    ];
    prop::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
}

/// The built-in profiles and one that joins lines, made once.
fn profiles() -> &'static BTreeMap<String, Profile> {
    static P: std::sync::OnceLock<BTreeMap<String, Profile>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("profiles.toml"),
            "[joined]\nsubmit = \"Enter\"\nmultiline = \"join\"\n",
        )
        .unwrap();
        profile::load(dir.path()).unwrap()
    })
}

fn row(id: i64, kind: String, from: String, body: String) -> MessageRow {
    MessageRow {
        id,
        from,
        to: "A/b".into(),
        agency: "A".into(),
        agent: "b".into(),
        kind,
        body,
        payload: None,
        state: agency::model::MessageState::Queued,
        attempts: 0,
        last_error: None,
        created_at: String::new(),
        delivered_at: None,
    }
}

proptest! {
    #[test]
    fn headers_are_one_clean_line_that_parses_back(
        id in 0i64..i64::MAX, kind in hostile(), from in hostile()
    ) {
        let h = Header::new(id, &kind, &from).to_string();
        prop_assert!(!has_control(&h) && !h.contains('\n') && !h.contains('\t'), "{h:?}");
        let line = format!("{h} body");
        let (back, body) = Header::split(&line).unwrap();
        prop_assert_eq!(back.id, id);
        prop_assert_eq!(body, "body");
        prop_assert!(!back.kind.contains(' ') && !back.from.contains(']'));
    }

    #[test]
    fn sanitized_bodies_hold_no_control_character(body in hostile()) {
        let clean = sanitize(&body);
        prop_assert!(!has_control(&clean), "{clean:?}");
        prop_assert_eq!(sanitize(&clean), clean.clone());
        if !has_control(&body) && !body.contains('\r') {
            prop_assert_eq!(&clean, &body);
        }
        if let Ok(b) = bus::check_body(&body) {
            prop_assert!(!has_control(&b) && b.len() <= bus::MAX_BODY);
        }
    }

    #[test]
    fn deliveries_type_no_control_character(
        id in 1i64..1_000_000, kind in hostile(), from in hostile(),
        body in hostile(), which in 0usize..3,
    ) {
        let profiles = profiles();
        let p = [None, profiles.get("claude"), profiles.get("joined")][which];
        let ops = delivery_ops(&row(id, kind.clone(), from.clone(), body), "%1", p);
        let head = Header::new(id, &kind, &from).to_string();
        for op in &ops {
            match op {
                Op::TypeText { text, .. } => {
                    prop_assert!(!has_control(text) && !text.contains('\n'), "{text:?}");
                    let lead = format!("{head} ");
                    prop_assert!(text.starts_with(&lead));
                }
                Op::Paste { text, .. } => {
                    prop_assert!(!has_control(text), "{text:?}");
                    prop_assert_eq!(text.split('\n').next().unwrap(), head.as_str());
                }
                Op::PressKey { key, .. } => prop_assert_eq!(key, "Enter"),
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn outbox_files_yield_clean_messages_or_errors(
        to in prop_oneof![Just("A/b".to_string()), Just("A".to_string()), hostile()],
        from in prop::option::of(prop_oneof![Just("ci".to_string()), hostile()]),
        kind in prop::option::of(prop_oneof![Just("results".to_string()), Just("TASK".to_string()), hostile()]),
        body in prop::option::of(hostile()),
        extra in hostile(),
    ) {
        let mut obj = serde_json::json!({ "to": to, "extra": extra });
        if let Some(f) = &from { obj["from"] = f.clone().into(); }
        if let Some(k) = &kind { obj["type"] = k.clone().into(); }
        if let Some(b) = &body { obj["body"] = b.clone().into(); }
        if let Ok(m) = bus::outbox::parse_drop(obj.to_string().as_bytes()) {
            let h = Header::new(1, &m.kind, &m.from).to_string();
            // Checked fields reach the header unchanged: nothing was cleaned away.
            prop_assert_eq!(h, format!("[msg #1 {} from {}]", m.kind, m.from));
            prop_assert!(!has_control(&m.body));
            prop_assert!(m.kind.len() <= 32 && m.kind.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)));
        }
    }

    #[test]
    fn outbox_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = bus::outbox::parse_drop(&bytes);
    }

    #[test]
    fn terminal_output_holds_no_control_character(text in hostile()) {
        let shown = agency::cli::printable(&text);
        prop_assert!(!has_control(&shown), "{shown:?}");
        if !has_control(&text) {
            prop_assert_eq!(shown.as_ref(), text.as_str());
        }
    }
}

/// Text tmux would read as a format: `#` sequences, braces, parentheses.
fn format_text() -> impl Strategy<Value = String> {
    "[#{}()a-z ,:;!?'\"$~=/\\\\é-]{0,24}"
}

#[test]
fn tmux_reads_escaped_text_literally() {
    let t = TestEnv::new();
    t.tmux_ok(&["new-session", "-d", "-s", "P", "sleep 60"]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&format_text(), |text| {
            // As agency passes it: one argument after `--` (a trailing `;`
            // escaped).
            let mut arg = agency::os::tmux::literal(&text);
            if arg.ends_with(';') {
                arg.insert(arg.len() - 1, '\\');
            }
            let shown = t.tmux_ok(&["display-message", "-p", "-t", "P", "--", &arg]);
            prop_assert_eq!(shown.strip_suffix('\n').unwrap_or(&shown), text.as_str());
            Ok(())
        })
        .unwrap();
}
