//! Agent profiles: how to tell an agent CLI is ready for a message, busy,
//! or waiting on a permission prompt. Built in (`profiles.toml`), extended
//! or overridden by the workspace's own `profiles.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::permissions::PermissionArgs;

use crate::error::{Error, Result};
use crate::model::spec::AgentSpec;

const BUILTIN: &str = include_str!("profiles.toml");

/// How many of the last non-empty lines a prompt's option list may start in.
const PROMPT_LINES: usize = 16;

/// The least of a message's body that counts as it, seen in an input box.
const MIN_PIECE: usize = 16;

/// The first option of a prompt's numbered list, after a selection marker
/// or a box border (`❯ 1. Yes`, `│ ● 1. Allow once`).
static FIRST_OPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\W*1\.\s").expect("a valid regex"));

/// Any option of a prompt's numbered list.
static OPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\W*\d+\.\s").expect("a valid regex"));

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    #[serde(default)]
    programs: Vec<String>,
    command: Option<String>,
    ready: Option<String>,
    #[serde(default = "one")]
    ready_lines: usize,
    input: Option<String>,
    #[serde(default)]
    input_lines: usize,
    placeholder: Option<String>,
    unsent: Option<String>,
    waiting: Option<String>,
    busy: Option<String>,
    #[serde(default = "enter")]
    submit: String,
    #[serde(default)]
    multiline: Multiline,
    #[serde(default)]
    brief: bool,
    #[serde(default)]
    unset_env: Vec<String>,
    #[serde(default)]
    question: Vec<String>,
    #[serde(default)]
    answer: AnswerSpec,
    #[serde(default)]
    permissions: PermissionArgs,
}

/// The keys that answer a permission prompt (`[NAME.answer]`): for each
/// choice a regex over the screen whose first group is the key to press
/// (`esc` and `enter` name those keys), then `then`, if set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSpec {
    yes: Option<String>,
    no: Option<String>,
    always: Option<String>,
    then: Option<String>,
}

fn enter() -> String {
    "Enter".into()
}

fn one() -> usize {
    1
}

/// How a message of several lines goes into the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Multiline {
    /// Bracketed paste: the program keeps the lines as one input.
    #[default]
    Paste,
    /// The lines joined with ` | ` and typed as one line.
    Join,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub programs: Vec<String>,
    pub command: Option<String>,
    pub ready: Option<Regex>,
    pub ready_lines: usize,
    pub input: Option<Regex>,
    /// How many of the last non-empty lines may hold the input box (0: the
    /// whole screen).
    pub input_lines: usize,
    pub placeholder: Option<Regex>,
    pub unsent: Option<Regex>,
    pub waiting: Option<Regex>,
    pub busy: Option<Regex>,
    pub submit: String,
    pub multiline: Multiline,
    pub brief: bool,
    /// Variables removed from the agent's environment before it starts.
    pub unset_env: Vec<String>,
    /// What a permission prompt asks about: the first of these to match
    /// the screen, its groups joined.
    pub question: Vec<Regex>,
    pub answer: Answers,
    /// How each `permissions` level is carried out.
    pub permissions: PermissionArgs,
}

/// A choice at a permission prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    Yes,
    No,
    Always,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Yes => "yes",
            Choice::No => "no",
            Choice::Always => "always",
        }
    }
}

/// How a profile answers its permission prompts.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub yes: Option<Regex>,
    pub no: Option<Regex>,
    pub always: Option<Regex>,
    /// Pressed after the choice's key (a program that reads a line).
    pub then: Option<String>,
}

/// What a pane's screen says about its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenState {
    /// Nothing drawn yet, or not yet the input box of a CLI that always
    /// shows one.
    Starting,
    Idle,
    Busy,
    Waiting,
}

impl ScreenState {
    /// The name `agency status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            ScreenState::Starting => "starting",
            ScreenState::Idle => "idle",
            ScreenState::Busy => "busy",
            ScreenState::Waiting => "waiting",
        }
    }
}

impl Profile {
    /// The last `n` non-empty lines of a screen (all for 0), oldest first.
    fn tail(screen: &str, n: usize) -> Vec<&str> {
        let mut tail: Vec<&str> = screen
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(if n == 0 { usize::MAX } else { n })
            .collect();
        tail.reverse();
        tail
    }

    /// Reads a screen (as `capture-pane -p` prints it).
    pub fn screen_state(&self, screen: &str) -> ScreenState {
        if screen.trim().is_empty() {
            return ScreenState::Starting;
        }
        let anywhere = |r: &Option<Regex>| r.as_ref().is_some_and(|r| r.is_match(screen));
        if self.waiting_up(screen) {
            return ScreenState::Waiting;
        }
        if anywhere(&self.busy) {
            return ScreenState::Busy;
        }
        let Some(ready) = &self.ready else {
            return ScreenState::Idle;
        };
        let prompt = Self::tail(screen, self.ready_lines.max(1))
            .iter()
            .any(|l| ready.is_match(l));
        let input = self.input_text(screen);
        // Text in the input box (a human typing) still means an idle agent.
        if prompt || input.as_ref().is_some_and(|t| !t.is_empty()) {
            ScreenState::Idle
        } else if input.is_none() && self.input.is_some() && self.input_lines == 0 {
            // A CLI whose input box is always on screen has not drawn it yet.
            ScreenState::Starting
        } else {
            ScreenState::Busy
        }
    }

    /// Whether a permission prompt is up: `waiting` matches below the
    /// input box (the last line matching `input` or `ready`, unless it is
    /// the prompt's own selected option, `❯ 1. Yes`). A prompt replaces
    /// the box; the same words above it are history or the model's prose.
    fn waiting_up(&self, screen: &str) -> bool {
        let Some(waiting) = &self.waiting else {
            return false;
        };
        let matches = |r: &Option<Regex>, l: &str| r.as_ref().is_some_and(|r| r.is_match(l));
        let lines: Vec<&str> = screen.lines().collect();
        let from = lines
            .iter()
            .rposition(|l| {
                (matches(&self.input, l) || matches(&self.ready, l)) && !OPTION.is_match(l)
            })
            .map_or(0, |i| i + 1);
        waiting.is_match(&lines[from..].join("\n"))
    }

    /// What the input box holds ("" when empty or showing its hint): the
    /// last line matching `input`, so lines the agent keeps in its history
    /// in the same shape sit above it. `None` when the profile knows no
    /// input box or none is on the screen (within `input_lines`).
    pub fn input_text(&self, screen: &str) -> Option<String> {
        let input = self.input.as_ref()?;
        // An empty prompt (`ready`) below the last such line: the box is
        // empty, and that line an older echo (the empty box may not match
        // `input`, as tmux drops its trailing space).
        let line = Self::tail(screen, self.input_lines)
            .into_iter()
            .rev()
            .find_map(|l| match input.captures(l) {
                Some(c) => Some(Some(c)),
                None if self.ready.as_ref().is_some_and(|r| r.is_match(l)) => Some(None),
                None => None,
            })?;
        let Some(line) = line else {
            return Some(String::new());
        };
        let text = line.get(1).map_or("", |m| m.as_str()).trim();
        if self.placeholder.as_ref().is_some_and(|p| p.is_match(text)) {
            return Some(String::new());
        }
        Some(text.to_string())
    }

    /// Whether a message may be typed now: idle with an empty input box.
    pub fn can_type(&self, screen: &str) -> bool {
        self.screen_state(screen) == ScreenState::Idle
            && self.input_text(screen).is_none_or(|t| t.is_empty())
    }

    /// What the permission prompt on `screen` asks about (the command or
    /// file), if one is up: the lowest match of the `question` regexes,
    /// its groups joined, else the line the `waiting` regex found.
    pub fn question(&self, screen: &str) -> Option<String> {
        if self.screen_state(screen) != ScreenState::Waiting {
            return None;
        }
        // The prompt is the lowest match (what is above is history); of
        // two ending there, the one listed first.
        let text = self
            .question
            .iter()
            .enumerate()
            .filter_map(|(i, q)| Some((i, q.captures_iter(screen).last()?)))
            .max_by(|(i, a), (j, b)| {
                let end = |c: &regex::Captures| c.get(0).map_or(0, |m| m.end());
                end(a).cmp(&end(b)).then(j.cmp(i))
            })
            .map(|(_, c)| {
                let groups: Vec<&str> = c.iter().skip(1).flatten().map(|m| m.as_str()).collect();
                if groups.is_empty() {
                    c[0].to_string()
                } else {
                    groups.join(": ")
                }
            })
            .or_else(|| {
                // The lowest: what is above is history.
                let m = self.waiting.as_ref()?.find_iter(screen).last()?;
                let start = screen[..m.start()].rfind('\n').map_or(0, |i| i + 1);
                let end = screen[m.end()..]
                    .find('\n')
                    .map_or(screen.len(), |i| m.end() + i);
                Some(screen[start..end].to_string())
            })?;
        Some(plain_question(&text))
    }

    /// The prompt's own lines at the bottom of `screen`: from its option
    /// list's first option (`1. Yes`, after any marker or border) to the
    /// end, when that is among the last `PROMPT_LINES` non-empty lines;
    /// else the last non-empty line (a lettered prompt: `(Y)es/(N)o`).
    pub fn prompt_block(screen: &str) -> String {
        let tail = Self::tail(screen, PROMPT_LINES);
        match tail.iter().rposition(|l| FIRST_OPTION.is_match(l)) {
            Some(i) => tail[i..].join("\n"),
            None => tail.last().copied().unwrap_or("").to_string(),
        }
    }

    /// The choices the prompt on `screen` offers (those `answer_keys`
    /// finds a key for).
    pub fn choices(&self, screen: &str) -> Vec<Choice> {
        [Choice::Yes, Choice::No, Choice::Always]
            .into_iter()
            .filter(|c| self.answer_keys(screen, *c).is_some())
            .collect()
    }

    /// The keys that give `choice` at the prompt on `screen`: the one its
    /// regex finds in the prompt's own lines (`prompt_block`), then `then`.
    /// `None` when the prompt offers no such choice.
    pub fn answer_keys(&self, screen: &str, choice: Choice) -> Option<Vec<String>> {
        let re = match choice {
            Choice::Yes => &self.answer.yes,
            Choice::No => &self.answer.no,
            Choice::Always => &self.answer.always,
        };
        // Only the prompt's own lines: text above them (a command, the
        // model's reason, history) may look like an option.
        let block = Self::prompt_block(screen);
        let caps = re.as_ref()?.captures(&block)?;
        let key = caps.iter().skip(1).flatten().next()?.as_str();
        let key = match key.to_ascii_lowercase().as_str() {
            "esc" | "escape" => "Escape".to_string(),
            "enter" => "Enter".to_string(),
            _ if key.chars().count() == 1 && key.chars().all(|c| c.is_ascii_alphanumeric()) => {
                key.to_string()
            }
            _ => return None,
        };
        let mut keys = vec![key];
        keys.extend(self.answer.then.clone());
        Some(keys)
    }

    /// Whether our message (`head` is its header, `body` its text) still
    /// sits in the input box, typed or pasted but not submitted, and the
    /// submit key may be pressed for it: the agent is idle (with a
    /// permission prompt up, the key would answer it) and the box `holds`
    /// it.
    pub fn unsent(&self, screen: &str, head: &str, body: &str) -> bool {
        self.screen_state(screen) == ScreenState::Idle && self.holds(screen, head, body)
    }

    /// Whether the input box shows our message, whatever the agent is
    /// doing: its header, the CLI's sign for a paste (also with more text
    /// after it), or a piece of it of at least `MIN_PIECE` characters (a
    /// long paste shown whole, scrolled to its end). A few characters a
    /// human typed there are no evidence: submit would send them.
    pub fn holds(&self, screen: &str, head: &str, body: &str) -> bool {
        let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match self.input_text(screen) {
            Some(t) if !t.is_empty() => {
                let piece = squash(&t);
                t.contains(head)
                    || self.unsent.as_ref().is_some_and(|u| u.is_match(&t))
                    || (piece.chars().count() >= MIN_PIECE && squash(body).contains(&piece))
            }
            _ => false,
        }
    }
}

/// The most of a question shown (characters): a whole command, but not a
/// screenful.
const MAX_QUESTION: usize = 600;

/// A question as the human reads it: every line of it, joined with a
/// visible mark, cut with "…" past `MAX_QUESTION` (then with a digest of
/// the whole, so `answer --if-asks` still sees a change past the cut).
/// Box-drawing borders and runs of blanks are layout, not words; it is
/// shown on the human's terminal, so no control or bidi character stays.
fn plain_question(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.split(|c: char| {
                c.is_whitespace()
                    || c.is_control()
                    || crate::model::is_bidi_control(c)
                    || ('\u{2500}'..='\u{257f}').contains(&c)
            })
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines.join(" \u{23ce} ");
    match joined.char_indices().nth(MAX_QUESTION) {
        Some((at, _)) => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(joined.as_bytes());
            let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{}… (whole question #{short})", &joined[..at])
        }
        None => joined,
    }
}

/// Built-in profiles plus the workspace's `profiles.toml`, by name.
pub fn load(workspace: &Path) -> Result<BTreeMap<String, Profile>> {
    let mut specs: BTreeMap<String, ProfileSpec> =
        toml::from_str(BUILTIN).expect("built-in profiles parse");
    let own = workspace.join("profiles.toml");
    if own.is_file() {
        let text = std::fs::read_to_string(&own).map_err(|e| Error::io(own.display(), e))?;
        let extra: BTreeMap<String, ProfileSpec> = toml::from_str(&text).map_err(|e| {
            Error::user(
                format!("{} is not valid: {}", own.display(), e.message()),
                "the fields are listed in the README (Agent profiles) and atop src/runtime/profiles.toml",
            )
        })?;
        specs.extend(extra);
    }
    compile(specs)
}

/// What looks wrong in the workspace's own `profiles.toml` though it loads:
/// a `ready` or `input` regex that needs blanks at the end of a line never
/// matches, since tmux drops them from the screen it prints. Empty when
/// there is no such file (or it does not load: `load` says why).
pub fn warnings(workspace: &Path) -> Vec<String> {
    let own = workspace.join("profiles.toml");
    let Some(specs) = std::fs::read_to_string(&own)
        .ok()
        .and_then(|t| toml::from_str::<BTreeMap<String, ProfileSpec>>(&t).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, s) in &specs {
        if let Some(r) = s.ready.as_deref().filter(|r| ends_in_blank(r)) {
            out.push(format!(
                "profile {name} in profiles.toml: ready = '{r}' wants a space at the end of the line, and tmux drops those: it never matches; end it with `\\s*$` (e.g. '^>\\s*$')"
            ));
        }
        if let Some(r) = s.input.as_deref().filter(|r| ends_in_blank(r)) {
            out.push(format!(
                "profile {name} in profiles.toml: input = '{r}' wants a space after the prompt, and tmux drops it when the box is empty: an empty box is never found; use `\\s?` (e.g. '^>\\s?(.*)$')"
            ));
        }
    }
    out
}

/// Whether a regex needs a blank right before its `$` (also before a last
/// group that may be empty, as in `^> (.*)$`).
fn ends_in_blank(re: &str) -> bool {
    let Some(body) = re.strip_suffix('$') else {
        return false;
    };
    let body = ["(.*)", "(.*?)"]
        .iter()
        .find_map(|g| body.strip_suffix(g))
        .unwrap_or(body);
    [" ", "\\s", " +", "\\s+"].iter().any(|b| body.ends_with(b))
}

/// The built-in profiles alone.
pub fn builtins() -> BTreeMap<String, Profile> {
    compile(toml::from_str(BUILTIN).expect("built-in profiles parse"))
        .expect("built-in profiles compile")
}

fn compile(specs: BTreeMap<String, ProfileSpec>) -> Result<BTreeMap<String, Profile>> {
    let re = |name: &str, s: &Option<String>| -> Result<Option<Regex>> {
        s.as_deref()
            .map(|p| {
                Regex::new(&format!("(?m){p}")).map_err(|e| {
                    Error::user(
                        format!("profile {name}: bad regex {p:?}: {e}"),
                        "fix profiles.toml",
                    )
                })
            })
            .transpose()
    };
    specs
        .into_iter()
        .map(|(name, s)| {
            // They are written into the pane's shell command line.
            if let Some(bad) = s.unset_env.iter().find(|v| !is_variable_name(v)) {
                return Err(Error::user(
                    format!("profile {name}: unset_env: {bad:?} is not a variable name"),
                    "use names such as CI or GITHUB_ACTIONS",
                ));
            }
            let many = |list: &[String]| -> Result<Vec<Regex>> {
                list.iter()
                    .map(|q| re(&name, &Some(q.clone())).map(Option::unwrap))
                    .collect()
            };
            let p = Profile {
                question: many(&s.question)?,
                answer: Answers {
                    yes: re(&name, &s.answer.yes)?,
                    no: re(&name, &s.answer.no)?,
                    always: re(&name, &s.answer.always)?,
                    then: s.answer.then,
                },
                permissions: s.permissions,
                ready: re(&name, &s.ready)?,
                ready_lines: s.ready_lines,
                input: re(&name, &s.input)?,
                input_lines: s.input_lines,
                placeholder: re(&name, &s.placeholder)?,
                unsent: re(&name, &s.unsent)?,
                waiting: re(&name, &s.waiting)?,
                busy: re(&name, &s.busy)?,
                programs: s.programs,
                command: s.command,
                submit: s.submit,
                multiline: s.multiline,
                brief: s.brief,
                unset_env: s.unset_env,
                name: name.clone(),
            };
            Ok((name, p))
        })
        .collect()
}

fn is_variable_name(v: &str) -> bool {
    let mut chars = v.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The profile for an agent: the one it names, else the one whose programs
/// include its command's program (`"$AGENCY_BIN" agent scripted` is the
/// scripted agent; `env VAR=x claude` and `exec claude` are `claude`).
pub fn for_agent<'a>(
    profiles: &'a BTreeMap<String, Profile>,
    named: Option<&str>,
    command: &str,
) -> Option<&'a Profile> {
    if let Some(n) = named {
        return profiles.get(n);
    }
    // `agent scripted` anywhere, even inside a quoted `sh -c '...'`.
    let raw: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches(['"', '\'']))
        .collect();
    if raw.windows(2).any(|w| w == ["agent", "scripted"]) {
        return profiles.get("scripted");
    }
    // The program: the first word as its shell reads it (quotes removed;
    // a line shlex cannot read, an open quote, is taken word by word).
    let words = shlex::split(command)
        .unwrap_or_else(|| command.split_whitespace().map(str::to_string).collect());
    let mut words = words.iter().map(String::as_str);
    let program = loop {
        let w = words.next()?;
        // `env -u NAME` and `env -C DIR`: the next word is not the program.
        if matches!(w, "-u" | "--unset" | "-C" | "--chdir") {
            words.next();
        } else if !matches!(w, "exec" | "env" | "nohup") && !w.contains('=') && !w.starts_with('-')
        {
            break w;
        }
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    profiles
        .values()
        .find(|p| p.programs.iter().any(|x| x == program))
}

/// What an agent runs and its profile: the command from `launch_command`,
/// the profile from `for_agent` on it.
pub fn resolve<'a>(
    profiles: &'a BTreeMap<String, Profile>,
    agent: &AgentSpec,
    default: &str,
) -> (String, Option<&'a Profile>) {
    let named = agent.profile.as_deref();
    let command = launch_command(profiles, named, agent.command.as_deref(), default);
    let profile = for_agent(profiles, named, &command);
    (command, profile)
}

/// The command an agent runs: its own, else its named profile's, else the
/// workspace default.
pub fn launch_command(
    profiles: &BTreeMap<String, Profile>,
    named: Option<&str>,
    own: Option<&str>,
    default: &str,
) -> String {
    own.map(str::to_string)
        .or_else(|| named.and_then(|n| profiles.get(n)?.command.clone()))
        .unwrap_or_else(|| default.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_choice() {
        let dir = tempfile::tempdir().unwrap();
        let p = load(dir.path()).unwrap();
        assert_eq!(
            for_agent(&p, None, "\"$AGENCY_BIN\" agent scripted --rules x")
                .unwrap()
                .name,
            "scripted"
        );
        assert_eq!(for_agent(&p, None, "exec /bin/bash").unwrap().name, "shell");
        assert!(for_agent(&p, None, "cat >> x").is_none());
        assert_eq!(
            for_agent(
                &p,
                None,
                "env HOME=/h ANTHROPIC_API_KEY=k /opt/bin/claude --verbose"
            )
            .unwrap()
            .name,
            "claude"
        );
        assert_eq!(
            for_agent(&p, None, "exec aider --yes").unwrap().name,
            "aider"
        );
        assert_eq!(
            for_agent(&p, None, "env -u CI --unset GITHUB_ACTIONS -C /w gemini")
                .unwrap()
                .name,
            "gemini"
        );
        assert_eq!(
            launch_command(&p, Some("codex"), None, "bash"),
            "codex --no-daemon"
        );
        assert_eq!(
            launch_command(&p, Some("codex"), Some("codex -m x"), "bash"),
            "codex -m x"
        );
        assert_eq!(launch_command(&p, None, None, "bash"), "bash");
        assert!(p["claude"].brief && !p["scripted"].brief && !p["shell"].brief);
        assert_eq!(
            for_agent(&p, Some("scripted"), "python3 x.py")
                .unwrap()
                .name,
            "scripted"
        );
        let s = &p["scripted"];
        assert_eq!(
            s.screen_state("scripted agent x\nscripted> \n\n"),
            ScreenState::Idle
        );
        assert_eq!(
            s.screen_state("scripted> \n#1 TASK from human: running 1 command(s)\n$ make\n"),
            ScreenState::Busy
        );
    }

    #[test]
    fn the_program_is_read_as_the_shell_reads_it() {
        let p = builtins();
        let name = |cmd| for_agent(&p, None, cmd).map(|p| p.name.as_str());
        // Quoted as a shell quotes it: a folder with a space.
        assert_eq!(name("'/opt/my tools/claude' --verbose"), Some("claude"));
        assert_eq!(name("env 'A=x y' codex"), Some("codex"));
        // The scripted agent even inside another program's `sh -c '...'`.
        assert_eq!(
            name("exec timeout 600 sh -c 'sleep 1; exec \"$AGENCY_BIN\" agent scripted --rules r'"),
            Some("scripted")
        );
        // An open quote: word by word.
        assert_eq!(name("claude \"unfinished"), Some("claude"));
    }

    #[test]
    fn a_cli_is_starting_until_its_input_box_is_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let p = load(dir.path()).unwrap();
        let c = &p["claude"];
        assert_eq!(c.screen_state(""), ScreenState::Starting);
        assert_eq!(
            c.screen_state(" ▐▛███▜▌   Claude Code v2.1.197\n  ~/project\n"),
            ScreenState::Starting
        );
        let idle = "Claude Code\n\n────\n❯\u{a0}\n────\n  ? for shortcuts\n";
        assert_eq!(c.screen_state(idle), ScreenState::Idle);
        assert!(c.can_type(idle));
        // The spinner's verbs are not all plain ASCII words.
        for verb in ["Sautéing", "Razzle-dazzling", "Thinking"] {
            let busy = format!("✶ {verb}… (3s)\n────\n❯\u{a0}\n────\n  paste again to expand\n");
            assert_eq!(c.screen_state(&busy), ScreenState::Busy, "{verb}");
        }
        let done = "✻ Sautéed for 4s\n────\n❯\u{a0}\n────\n  paste again to expand\n";
        assert_eq!(c.screen_state(done), ScreenState::Idle);
        // Aider's prompt is not always drawn: no box there means busy.
        assert_eq!(
            p["aider"].screen_state("Aider v0.86.2\nsome streamed answer\n"),
            ScreenState::Busy
        );
    }

    #[test]
    fn a_message_still_in_the_box_is_seen_in_any_of_its_shapes() {
        let p = builtins();
        let head = "[msg #1 BRIEFING from agency]";
        let body = "You are dev.\n\n## Role\n- line seven of it\n- line eight";
        // A long paste shown whole, scrolled to its end: a piece of it.
        let gemini = "Tips\n─────\n >   - line seven of it\n     - line eight\n\n workspace\n";
        assert!(p["gemini"].unsent(gemini, head, body));
        assert!(!p["gemini"].unsent(gemini, head, "something else"));
        // Codex's sign for a paste, with the next message typed after it.
        let codex = "› [Pasted Content 2270 chars][msg #3 TASK from human] TASK-7\n\n  gpt · ~/p\n";
        assert!(p["codex"].unsent(codex, head, body));
        assert!(p["codex"].unsent(codex, "[msg #3 TASK from human]", "TASK-7"));
        assert!(!p["codex"].can_type(codex));
    }

    #[test]
    fn only_real_evidence_and_the_last_input_line_count_as_our_message() {
        let p = builtins();
        let head = "[msg #4 NOTE from human]";
        let body = "Please look at the failing test in the parser and fix it";
        // A human typing a word or two that the body also holds.
        for typed in ["ok", "the", "fix it"] {
            let screen = format!("✻ Baked for 2s\n────\n❯ {typed}\n────\n  ? for shortcuts\n");
            assert!(!p["claude"].unsent(&screen, head, body), "{typed}");
        }
        let screen = "────\n❯ the failing test in the parser\n────\n  ? for shortcuts\n";
        assert!(p["claude"].unsent(screen, head, body));
        // An empty prompt below an older echo of the message: taken, even
        // when the empty prompt does not match `input` (trailing space gone).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("profiles.toml"),
            "[mycli]\nprograms = [\"mycli\"]\nready = '^>\\s*$'\ninput = '^> (.*)$'\n",
        )
        .unwrap();
        let m = &load(dir.path()).unwrap()["mycli"];
        let screen = format!("> {head} hello there\nhi, got it\n>\n");
        assert_eq!(m.input_text(&screen).as_deref(), Some(""));
        assert!(!m.unsent(&screen, head, "hello there"));
        assert!(m.unsent(&format!("hi\n> {head} hello there\n"), head, "hello there"));
    }

    #[test]
    fn a_question_is_plain_words() {
        let p = builtins();
        let screen = "│ ? Shell  rm -rf /\u{1b}[2J\u{7}x                    │\n│ Allow execution of [Shell]? │\n";
        assert_eq!(
            p["gemini"].question(screen).as_deref(),
            Some("Shell: rm -rf / [2J x")
        );
        assert_eq!(p["gemini"].question("hello\n > \n"), None);
    }

    #[test]
    fn workspace_profiles_extend_and_override() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("profiles.toml"),
            "[mycli]\nprograms = [\"mycli\"]\nready = '^> $'\nwaiting = 'Allow\\\\?'\n",
        )
        .unwrap();
        let p = load(dir.path()).unwrap();
        let m = for_agent(&p, None, "mycli --fast").unwrap();
        assert_eq!(m.screen_state("hello\n> \n"), ScreenState::Idle);
        assert_eq!(m.screen_state("> go\nAllow? [y/n]\n"), ScreenState::Waiting);
        // Without a `question`, the prompt's own line, not history's.
        assert_eq!(
            m.question("> Allow? said the model\n> go\nAllow? [y/n]\n")
                .as_deref(),
            Some("Allow? [y/n]")
        );
        // Answered: its prompt is back below the question.
        assert_eq!(m.screen_state("Allow? [y/n] y\n> \n"), ScreenState::Idle);
        assert!(p["gemini"].unset_env.contains(&"CI".to_string()));
    }

    #[test]
    fn a_prompt_regex_that_needs_a_trailing_space_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let warn = |ready: &str, input: &str| {
            std::fs::write(
                dir.path().join("profiles.toml"),
                format!("[mycli]\nprograms = [\"mycli\"]\nready = '{ready}'\ninput = '{input}'\n"),
            )
            .unwrap();
            load(dir.path()).unwrap();
            warnings(dir.path())
        };
        // The README's example before it was fixed: both never match.
        let w = warn("^> $", "^> (.*)$");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("ready = '^> $'") && w[0].contains("\\s*$"),
            "{w:?}"
        );
        assert!(
            w[1].contains("input = '^> (.*)$'") && w[1].contains("\\s?"),
            "{w:?}"
        );
        for (ready, input) in [("^>\\s$", "^> +$"), ("^>\\ $", "^>\\s(.*?)$")] {
            assert_eq!(warn(ready, input).len(), 2, "{ready} {input}");
        }
        // Fixed, and shapes that need no trailing blank.
        for (ready, input) in [
            ("^>\\s*$", "^>\\s?(.*)$"),
            ("^> ?$", "^> (.+)$"),
            ("^fake>", "^❯\\s(.*)"),
        ] {
            assert_eq!(warn(ready, input), Vec::<String>::new(), "{ready} {input}");
        }
        // None for the built-in profiles, nor without a profiles.toml.
        std::fs::remove_file(dir.path().join("profiles.toml")).unwrap();
        assert!(warnings(dir.path()).is_empty());
    }

    #[test]
    fn unset_env_takes_variable_names_only() {
        let dir = tempfile::tempdir().unwrap();
        for (list, ok) in [
            ("[\"CI\", \"_X1\"]", true),
            ("[\"A B\"]", false),
            ("[\"$(x)\"]", false),
            ("[\"1X\"]", false),
        ] {
            std::fs::write(
                dir.path().join("profiles.toml"),
                format!("[mycli]\nprograms = [\"mycli\"]\nunset_env = {list}\n"),
            )
            .unwrap();
            assert_eq!(load(dir.path()).is_ok(), ok, "{list}");
        }
    }
}
