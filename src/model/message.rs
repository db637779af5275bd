//! Messages as agents see them: the header line typed before each body,
//! and the cleaning every body gets.

use std::fmt;
use std::str::FromStr;

use super::Invalid;

super::closed_set! {
    /// The types of messages within an agency.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
    #[value(rename_all = "UPPERCASE")]
    pub enum IntraType ("message type") {
        /// A progress report
        Status = "STATUS",
        /// An assignment
        Task = "TASK",
        /// A request for information
        Question = "QUESTION",
        /// Work finished
        Complete = "COMPLETE",
        /// Stuck, needs help
        Blocked = "BLOCKED",
        /// Anything else
        Note = "NOTE",
    }
}

impl IntraType {
    /// The type of an intra-agency message: `--type` (any case), else the
    /// body's leading word when it is a type (`TASK-042: ...` is a TASK),
    /// else NOTE.
    pub fn of(body: &str, explicit: Option<&str>) -> Result<IntraType, Invalid> {
        if let Some(t) = explicit {
            return t.to_ascii_uppercase().parse().map_err(|_| {
                let words: Vec<&str> = IntraType::ALL.iter().map(|k| k.as_str()).collect();
                Invalid::new(
                    format!("unknown message type {t:?}"),
                    format!("use one of {}", words.join(", ")),
                )
            });
        }
        let lead: String = body
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_uppercase())
            .collect();
        Ok(lead.parse().unwrap_or(IntraType::Note))
    }
}

/// Checks an inter-agency message type: `^[A-Za-z][A-Za-z0-9_.-]{0,31}$`.
/// It is typed into panes in the header, so nothing else is let in.
pub fn validate_type(kind: &str) -> Result<(), Invalid> {
    let mut chars = kind.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && kind.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            format!("invalid message type {kind:?}"),
            "a type starts with a letter and holds only letters, digits, `_`, `-` and `.` (at most 32 characters), e.g. \"results\"",
        ))
    }
}

/// Removes every control character except newline and tab, so no escape
/// sequence reaches the receiving program, and the invisible bidi
/// controls (see `is_bidi_control`). `\r\n` and lone `\r` become `\n`.
pub fn sanitize(body: &str) -> String {
    body.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|&c| (c == '\n' || c == '\t' || !c.is_control()) && !is_bidi_control(c))
        .collect()
}

/// The invisible characters that reorder text as it is shown: the bidi
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and
/// marks (U+200E, U+200F, U+061C). A title can read backwards with them
/// (`Fix login <U+202E>gnp.exe` shows as `exe.png`), so they are removed where text is cleaned and
/// escaped where it is printed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// The line the receiving agent sees before the body:
/// `[msg #12 TASK from CodeAgency/coordinator]`. The router writes it
/// (`Display`); the scripted agent reads it back (`FromStr`, `split`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub id: i64,
    pub kind: String,
    pub from: String,
}

impl Header {
    pub fn new(id: i64, kind: &str, from: &str) -> Header {
        Header {
            id,
            kind: kind.to_string(),
            from: from.to_string(),
        }
    }

    /// A line that starts with a header: the header, and what follows it
    /// on the line (the body when it was typed on one line; empty when the
    /// body follows on the next lines).
    pub fn split(line: &str) -> Option<(Header, &str)> {
        let line = line.trim_start();
        let end = line.find(']')?;
        let header = line[..=end].parse().ok()?;
        let rest = &line[end + 1..];
        Some((header, rest.strip_prefix(' ').unwrap_or(rest)))
    }
}

/// Types and senders are checked when queued; a row written before that
/// check (or by hand) still cannot put a control character, a space or a
/// bracket into the header: anything outside names' characters becomes `?`.
impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[msg #{} {} from {}]",
            self.id,
            field(&self.kind),
            field(&self.from)
        )
    }
}

fn field(s: &str) -> String {
    let clean: String = s
        .chars()
        .take(130)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.is_empty() {
        "?".into()
    } else {
        clean
    }
}

/// Not a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAHeader;

impl FromStr for Header {
    type Err = NotAHeader;

    /// Exactly a header, `[msg #ID TYPE from SENDER]`.
    fn from_str(s: &str) -> Result<Header, NotAHeader> {
        let inner = s
            .strip_prefix("[msg #")
            .and_then(|r| r.strip_suffix(']'))
            .filter(|r| !r.contains(']'))
            .ok_or(NotAHeader)?;
        let (id, rest) = inner.split_once(' ').ok_or(NotAHeader)?;
        let (kind, from) = rest.split_once(" from ").ok_or(NotAHeader)?;
        Ok(Header {
            id: id.parse().map_err(|_| NotAHeader)?,
            kind: kind.to_string(),
            from: from.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(
            sanitize("a\x1b[31mred\x07\tb\r\nc\u{9b}d\x7f"),
            "a[31mred\tb\ncd"
        );
        assert_eq!(sanitize("ünï ✓"), "ünï ✓");
    }

    #[test]
    fn types_come_from_the_flag_or_the_leading_word() {
        let of = |body, flag| IntraType::of(body, flag).map(IntraType::as_str);
        assert_eq!(of("TASK-042: do it", None).unwrap(), "TASK");
        assert_eq!(of("STATUS python-agent: 60%", None).unwrap(), "STATUS");
        assert_eq!(of("TASKS are many", None).unwrap(), "NOTE");
        assert_eq!(of("hello", None).unwrap(), "NOTE");
        assert_eq!(of("x", Some("blocked")).unwrap(), "BLOCKED");
        let e = of("x", Some("shout")).unwrap_err();
        assert_eq!(e.message, "unknown message type \"shout\"");
        assert!(validate_type("results").is_ok());
        for bad in ["", "1x", "a b", "a]", &"a".repeat(33)] {
            assert!(validate_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_print_and_parse_back() {
        let h = Header::new(12, "TASK", "CodeAgency/coordinator");
        assert_eq!(h.to_string(), "[msg #12 TASK from CodeAgency/coordinator]");
        assert_eq!(h.to_string().parse::<Header>(), Ok(h.clone()));
        let (back, body) =
            Header::split("  [msg #12 TASK from CodeAgency/coordinator] do it; now").unwrap();
        assert_eq!((back, body), (h, "do it; now"));
        let (h, body) = Header::split("[msg #3 handoff from CodeAgency]").unwrap();
        assert_eq!((h.kind.as_str(), body), ("handoff", ""));
        for bad in [
            "hello",
            "[msg #x T from a]",
            "[msg #1 T]",
            "[msg #1 T from a] b",
            "[msg #1 T from a",
        ] {
            assert!(bad.parse::<Header>().is_err(), "{bad}");
        }
        assert!(Header::split("hello").is_none());
        // What a hostile row holds never leaves its field.
        let odd = Header::new(1, "a b]\x1b", "");
        assert_eq!(odd.to_string(), "[msg #1 a?b?? from ?]");
    }
}
