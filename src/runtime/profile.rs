//! Agent profiles: how to tell an agent CLI is ready for a message, busy,
//! or waiting on a permission prompt. Built in (`profiles.toml`), extended
//! or overridden by the workspace's own `profiles.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};

const BUILTIN: &str = include_str!("profiles.toml");

#[derive(Debug, Deserialize)]
struct ProfileSpec {
    #[serde(default)]
    programs: Vec<String>,
    ready: Option<String>,
    waiting: Option<String>,
    busy: Option<String>,
    #[serde(default = "enter")]
    submit: String,
}

fn enter() -> String {
    "Enter".into()
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub programs: Vec<String>,
    pub ready: Option<Regex>,
    pub waiting: Option<Regex>,
    pub busy: Option<Regex>,
    pub submit: String,
}

/// What a pane's screen says about its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenState {
    Idle,
    Busy,
    Waiting,
}

impl Profile {
    /// Reads a screen (as `capture-pane -p` prints it).
    pub fn screen_state(&self, screen: &str) -> ScreenState {
        if self.waiting.as_ref().is_some_and(|w| w.is_match(screen)) {
            return ScreenState::Waiting;
        }
        let last = screen
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        match &self.ready {
            Some(r) if r.is_match(last) => ScreenState::Idle,
            Some(_) => ScreenState::Busy,
            None if self.busy.as_ref().is_some_and(|b| b.is_match(screen)) => ScreenState::Busy,
            None => ScreenState::Idle,
        }
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
                "see the built-in profiles in the README for the format",
            )
        })?;
        specs.extend(extra);
    }
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
            let p = Profile {
                ready: re(&name, &s.ready)?,
                waiting: re(&name, &s.waiting)?,
                busy: re(&name, &s.busy)?,
                programs: s.programs,
                submit: s.submit,
                name: name.clone(),
            };
            Ok((name, p))
        })
        .collect()
}

/// The profile for an agent: the one it names, else the one whose programs
/// include its command's program (`"$AGENCY_BIN" agent scripted` is the
/// scripted agent).
pub fn for_agent<'a>(
    profiles: &'a BTreeMap<String, Profile>,
    named: Option<&str>,
    command: &str,
) -> Option<&'a Profile> {
    if let Some(n) = named {
        return profiles.get(n);
    }
    let words: Vec<&str> = command
        .split_whitespace()
        .filter(|w| *w != "exec")
        .collect();
    if words.windows(2).any(|w| w == ["agent", "scripted"]) {
        return profiles.get("scripted");
    }
    let program = words.first()?.trim_matches(['"', '\'']);
    let program = program.rsplit('/').next().unwrap_or(program);
    profiles
        .values()
        .find(|p| p.programs.iter().any(|x| x == program))
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
        assert_eq!(m.screen_state("Allow? [y/n]\n> \n"), ScreenState::Waiting);
    }
}
