//! What an agent's CLI may do without asking: the `permissions` level of
//! each agent (`agency.json`, default from `agency.toml`'s `[agents]
//! permissions`), carried out by its profile through the CLI's own flags
//! and files. Nothing here edits a user's own CLI configuration.

use std::path::PathBuf;

use serde::Deserialize;

use super::profile::Profile;
use crate::model::Permissions;

/// Agency's commands every agent runs without asking under `bus`: a
/// command and every argument after it (`agency send` covers `agency send
/// A B "..."` but not `agency send-inter`).
pub const AGENT_COMMANDS: &[&str] = &[
    "agency send",
    "agency inbox",
    "agency ack",
    "agency status",
    "agency task",
    "agency plan",
];

/// What a coordinator also runs without asking under `bus`.
pub const COORDINATOR_COMMANDS: &[&str] = &[
    "agency send-inter",
    "agency broadcast",
    "agency handoff",
    "agency submit",
    "agency sandbox deploy",
];

/// The commands pre-approved for an agent under `bus` and `project`.
pub fn bus_commands(coordinator: bool) -> Vec<&'static str> {
    let mut all = AGENT_COMMANDS.to_vec();
    if coordinator {
        all.extend(COORDINATOR_COMMANDS);
    }
    all
}

/// What a level adds to an agent's start: arguments after its command, and
/// a file its profile reads them from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub args: Vec<String>,
    /// Written before the agent starts (`{rules_file}` in the arguments).
    pub file: Option<(PathBuf, String)>,
    /// Where the CLI reads rules by itself (a file in its working folder):
    /// a file left there from an earlier level is removed.
    pub own_rules: Option<PathBuf>,
    /// A git exclude pattern for that file when it is in the agent's
    /// working folder (never to be committed).
    pub exclude: Option<String>,
}

/// The places a grant's arguments name.
#[derive(Debug, Clone)]
pub struct Places {
    /// The agency's and the agent's names (checked names: letters,
    /// digits, `_`, `-`).
    pub agency: String,
    pub agent: String,
    /// The folder it works in.
    pub workdir: PathBuf,
    /// Where the agent's rules file goes unless its profile names a place
    /// in its working folder.
    pub rules_file: PathBuf,
    /// The workspace's registry folder.
    pub registry: PathBuf,
    /// The user's home folder.
    pub home: PathBuf,
}

/// The arguments and file that give an agent with `profile` the `level`.
pub fn grant(profile: &Profile, level: Permissions, coordinator: bool, places: &Places) -> Grant {
    let p = &profile.permissions;
    let mut raw: Vec<&String> = p.args.iter().collect();
    let pre_approve = matches!(level, Permissions::Bus | Permissions::Project);
    match level {
        Permissions::Bus => raw.extend(&p.bus),
        Permissions::Project => raw.extend(p.bus.iter().chain(&p.project)),
        Permissions::Ask => raw.extend(&p.ask),
        Permissions::All => raw.extend(&p.all),
    }
    let rules: Vec<String> = bus_commands(coordinator)
        .iter()
        .map(|c| {
            let words: Vec<&str> = c.split(' ').collect();
            p.rule.replace("{command}", c).replace(
                "{command_words}",
                &serde_json::to_string(&words).expect("strings serialize"),
            )
        })
        .collect();
    let rules_json = serde_json::to_string(&rules).expect("strings serialize");
    let rules_file = match &p.rules_file {
        Some(rel) => places
            .workdir
            .join(own_rules_file(rel, &places.agency, &places.agent)),
        None => places.rules_file.clone(),
    };
    // A profile's own folder for it is read by the CLI by itself.
    let file_used = p.rules_file.is_some() || raw.iter().any(|a| a.contains("{rules_file}"));
    let args = raw
        .into_iter()
        .map(|a| {
            a.replace("{rules_json}", &rules_json)
                .replace("{rules_file}", &rules_file.display().to_string())
                .replace("{registry}", &places.registry.display().to_string())
                .replace("{home}", &places.home.display().to_string())
        })
        .collect();
    let file = (pre_approve && file_used).then(|| {
        let mut text = String::new();
        for r in &rules {
            text.push_str(r);
            text.push('\n');
        }
        (rules_file.clone(), text)
    });
    let exclude = file
        .as_ref()
        .and(p.rules_file.as_ref())
        .map(|rel| format!("**/{}", own_rules_file(rel, "*", "*")));
    Grant {
        args,
        own_rules: p.rules_file.is_some().then_some(rules_file),
        file,
        exclude,
    }
}

/// A profile's `rules_file` for an agent.
pub fn own_rules_file(template: &str, agency: &str, agent: &str) -> String {
    template
        .replace("{agency}", agency)
        .replace("{agent}", agent)
}

/// How a profile carries out the levels (`[NAME.permissions]` in
/// profiles.toml).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionArgs {
    /// One pre-approved command as the CLI writes it; `{command}` is the
    /// command (e.g. `Bash({command} *)`), `{command_words}` its words as a
    /// JSON array.
    #[serde(default)]
    pub rule: String,
    /// Where the rules file goes when the CLI reads it from the agent's
    /// working folder (relative to it; `{agency}` and `{agent}` are the
    /// names); else it is kept in the registry.
    #[serde(default)]
    pub rules_file: Option<String>,
    /// Arguments for every level (what agency's commands need to work).
    #[serde(default)]
    pub args: Vec<String>,
    /// Arguments for `bus` (and `project`). `{rules_json}`: the rules as a
    /// JSON array; `{rules_file}`: a file of the rules, one after another;
    /// `{registry}`: the registry folder.
    #[serde(default)]
    pub bus: Vec<String>,
    /// Arguments `project` adds to `bus`'s.
    #[serde(default)]
    pub project: Vec<String>,
    #[serde(default)]
    pub ask: Vec<String>,
    #[serde(default)]
    pub all: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::profile::builtins;
    use std::path::Path;

    fn grant_for(cli: &str, level: Permissions, coordinator: bool) -> Grant {
        let places = Places {
            agency: "A".into(),
            agent: "dev".into(),
            workdir: "/w/project".into(),
            rules_file: "/w/registry/permissions/A/dev.toml".into(),
            registry: "/w/registry".into(),
            home: "/h".into(),
        };
        grant(&builtins()[cli], level, coordinator, &places)
    }

    #[test]
    fn levels_parse_and_default_to_bus() {
        #[derive(Deserialize)]
        struct T {
            p: Permissions,
        }
        let t: T = toml::from_str("p = \"project\"").unwrap();
        assert_eq!(t.p, Permissions::Project);
        assert!(toml::from_str::<T>("p = \"everything\"").is_err());
        assert_eq!(Permissions::default(), Permissions::Bus);
    }

    #[test]
    fn claude_gets_its_allow_list_as_settings_and_its_own_modes() {
        let g = grant_for("claude", Permissions::Bus, false);
        assert_eq!(g.args[0], "--settings");
        let settings: serde_json::Value = serde_json::from_str(&g.args[1]).unwrap();
        let allow = settings["permissions"]["allow"].as_array().unwrap();
        assert!(allow.contains(&"Bash(agency send *)".into()));
        assert!(!allow.contains(&"Bash(agency submit *)".into()));
        assert_eq!(g.args.len(), 2);
        assert!(g.file.is_none());
        let c = grant_for("claude", Permissions::Bus, true);
        assert!(c.args[1].contains("Bash(agency submit *)"));
        let p = grant_for("claude", Permissions::Project, false);
        assert_eq!(p.args[2..], ["--permission-mode", "acceptEdits"]);
        assert_eq!(
            grant_for("claude", Permissions::Ask, false).args,
            ["--permission-mode", "default"]
        );
        assert_eq!(
            grant_for("claude", Permissions::All, false).args,
            ["--permission-mode", "bypassPermissions"]
        );
    }

    #[test]
    fn codex_gets_rules_in_its_working_folder() {
        let g = grant_for("codex", Permissions::Bus, false);
        assert_eq!(g.args, ["-c", "allow_login_shell=false"]);
        let (path, text) = g.file.unwrap();
        assert_eq!(
            path,
            Path::new("/w/project/.codex/rules/agency-A-dev.rules")
        );
        assert!(text.contains(r#"prefix_rule(pattern = ["agency","send"], decision = "allow")"#));
        assert!(text.contains(r#"["agency","task"]"#));
        assert!(!text.contains("sandbox"));
        assert_eq!(
            g.exclude.as_deref(),
            Some("**/.codex/rules/agency-*-*.rules")
        );
        // Asked: no rules, and one left from before goes.
        let a = grant_for("codex", Permissions::Ask, false);
        assert!(a.file.is_none());
        assert_eq!(a.own_rules, Some(path));
        let all = grant_for("codex", Permissions::All, true);
        assert!(all
            .args
            .contains(&"--dangerously-bypass-approvals-and-sandbox".to_string()));
    }

    #[test]
    fn gemini_gets_a_policy_file_beside_the_users_own() {
        let g = grant_for("gemini", Permissions::Bus, true);
        assert_eq!(
            g.args,
            [
                "--policy",
                "/w/registry/permissions/A/dev.toml",
                "--policy",
                "/h/.gemini/policies"
            ]
        );
        let (path, text) = g.file.unwrap();
        assert_eq!(path, Path::new("/w/registry/permissions/A/dev.toml"));
        let policy: toml::Value = toml::from_str(&text).unwrap();
        let rules = policy["rule"].as_array().unwrap();
        assert_eq!(rules.len(), bus_commands(true).len());
        assert_eq!(rules[0]["commandPrefix"].as_str(), Some("agency send"));
        assert_eq!(rules[0]["decision"].as_str(), Some("allow"));
        assert!(grant_for("gemini", Permissions::Ask, false).file.is_none());
        assert_eq!(
            grant_for("gemini", Permissions::All, false).args,
            ["--approval-mode", "yolo"]
        );
    }

    #[test]
    fn aider_can_only_approve_everything() {
        for level in [Permissions::Bus, Permissions::Ask, Permissions::Project] {
            assert_eq!(grant_for("aider", level, true), Grant::default());
        }
        assert_eq!(
            grant_for("aider", Permissions::All, true).args,
            ["--yes-always"]
        );
    }

    #[test]
    fn coordinators_also_hand_off_and_submit() {
        assert!(!bus_commands(false).contains(&"agency submit"));
        assert!(bus_commands(true).contains(&"agency submit"));
        assert!(bus_commands(true).contains(&"agency send"));
    }
}
