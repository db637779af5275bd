//! Reading every agent's state without capturing every pane on every look.
//!
//! `agency status` captures the screen of each agent whose profile can read
//! it. At 700 agents that is 700 screens a refresh. The scanner keeps what
//! it last read of each pane and captures again only panes whose window has
//! shown output since (tmux's `window_activity`, one `list-panes` for all),
//! at most `budget` of them per look, those unread the longest first. A
//! screen that has not changed reads the same, so its state stands.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::context::Ctx;
use crate::error::Result;
use crate::model::spec::AgencySpec;
use crate::model::{AgencyState, Role};
use crate::os::tmux::PaneInfo;
use crate::runtime::profile::{self, Profile, ScreenState};

/// Screens captured per look at most, by default (see the module doc).
pub const BUDGET: usize = 64;

/// One agent as last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentLive {
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pane: Option<String>,
    /// `starting`, `idle`, `busy`, `waiting`, `exited` or `unknown` (a
    /// program whose profile cannot read its screen).
    pub state: String,
    /// What it asks at its permission prompt, when `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// When this scanner first saw it in its current state (Unix seconds).
    #[serde(skip)]
    pub since: Option<u64>,
    /// Why its setup command failed (it was never started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    /// Its screen was not read yet (over the budget): `state` says nothing.
    #[serde(skip)]
    pub unread: bool,
}

/// One agency as last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgencyLive {
    pub name: String,
    /// The registry says it should run (not killed).
    pub running: bool,
    /// Its tmux session is there.
    pub session: bool,
    pub agents: Vec<AgentLive>,
    /// The newest output in any of its windows (Unix seconds).
    #[serde(skip)]
    pub activity: Option<u64>,
}

/// What was read of a pane's screen, and when.
#[derive(Debug, Clone)]
struct Look {
    /// Its window's `window_activity` when read.
    activity: u64,
    /// When read (Unix seconds).
    at: u64,
    state: ScreenState,
    question: Option<String>,
}

#[derive(Default)]
pub struct Scanner {
    /// Screens captured per look at most (0: no limit).
    pub budget: usize,
    looks: HashMap<String, Look>,
    /// Each agency's `agency.json` with the time it was modified.
    specs: HashMap<String, (Option<SystemTime>, Option<AgencySpec>)>,
    profiles: Option<(Option<SystemTime>, BTreeMap<String, Profile>)>,
    /// (agency, agent) → (state, since).
    since: HashMap<(String, String), (String, u64)>,
    dead: usize,
    /// Screens captured in the last look (for benchmarks and tests).
    pub captured: usize,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Scanner {
    pub fn new(budget: usize) -> Scanner {
        Scanner {
            budget,
            ..Scanner::default()
        }
    }

    fn spec(&mut self, ctx: &Ctx, agency: &str) -> Option<&AgencySpec> {
        let path = ctx.ws.agency_dir(agency).join("agency.json");
        let stamp = modified(&path);
        let entry = self.specs.entry(agency.to_string()).or_insert((None, None));
        if entry.0 != stamp || (entry.1.is_none() && stamp.is_some()) {
            *entry = (stamp, AgencySpec::load(&ctx.ws.agency_dir(agency)).ok());
        }
        entry.1.as_ref()
    }

    fn profiles(&mut self, ctx: &Ctx) -> &BTreeMap<String, Profile> {
        let stamp = modified(&ctx.ws.root.join("profiles.toml"));
        if self.profiles.as_ref().is_none_or(|(s, _)| *s != stamp) {
            // A broken profiles.toml: the built-in profiles still read screens.
            let p = profile::load(&ctx.ws.root).unwrap_or_else(|_| profile::builtins());
            self.profiles = Some((stamp, p));
        }
        &self.profiles.as_ref().expect("just set").1
    }

    /// One look at every agency of the registry.
    pub fn scan(&mut self, ctx: &Ctx, now: SystemTime) -> Result<Vec<AgencyLive>> {
        let now = unix(now);
        let panes = ctx.tmux.list_panes()?;
        let activity = ctx.tmux.window_activity()?;
        let root = ctx.ws.root.display().to_string();
        let ours: HashMap<&str, &PaneInfo> = panes
            .iter()
            .filter(|p| p.agency_home == root)
            .map(|p| (p.pane_id.as_str(), p))
            .collect();
        self.note_deaths(ctx, &ours);
        let default_cmd = ctx.ws.default_agent_command();
        let mut rows: BTreeMap<String, Vec<crate::store::AgentRow>> = BTreeMap::new();
        for (agency, a) in ctx.store.all_agents()? {
            rows.entry(agency).or_default().push(a);
        }
        let mut out = Vec::new();
        // (index of agency, index of agent, pane, profile) to read.
        let mut wanted: Vec<(usize, usize, String, Profile, u64)> = Vec::new();
        for agency in ctx.store.agencies()? {
            let session = panes
                .iter()
                .any(|p| p.session == agency.name && p.agency_home == root);
            let mut live = AgencyLive {
                name: agency.name.clone(),
                running: agency.state == AgencyState::Running,
                session,
                agents: Vec::new(),
                activity: None,
            };
            for a in rows.remove(&agency.name).unwrap_or_default() {
                let pane = a
                    .pane_id
                    .as_deref()
                    .and_then(|id| ours.get(id).copied())
                    .filter(|p| p.session == agency.name);
                if let Some(p) = pane {
                    let act = activity.get(&p.pane_id).copied();
                    live.activity = live.activity.max(act);
                }
                if !a.role.is_agent() {
                    continue;
                }
                let state = crate::runtime::pane_state(pane);
                if state == "unknown" {
                    let p = pane.expect("has a pane");
                    if let Some(prof) =
                        self.screen_profile(ctx, &agency.name, &a.name, &default_cmd)
                    {
                        let act = activity.get(&p.pane_id).copied().unwrap_or(now);
                        wanted.push((out.len(), live.agents.len(), p.pane_id.clone(), prof, act));
                    }
                }
                live.agents.push(AgentLive {
                    name: a.name,
                    role: a.role,
                    pane: pane.map(|p| p.pane_id.clone()),
                    state: state.into(),
                    question: None,
                    since: None,
                    setup_error: a.setup_error,
                    unread: false,
                });
            }
            out.push(live);
        }
        self.read_screens(ctx, &mut out, wanted, now)?;
        let present: std::collections::HashSet<&str> = ours.keys().copied().collect();
        self.looks.retain(|p, _| present.contains(p.as_str()));
        self.track_since(&mut out, now);
        Ok(out)
    }

    /// Counts the dead panes of this workspace. So a kept pane of an exited
    /// agent shows its note (see `Tmux::reap_exited`), they are reaped once
    /// per new death, not every look.
    fn note_deaths(&mut self, ctx: &Ctx, ours: &HashMap<&str, &PaneInfo>) {
        let dead = ours.values().filter(|p| p.dead).count();
        if dead > self.dead {
            let _ = ctx.tmux.reap_exited();
        }
        self.dead = dead;
    }

    /// The profile of `agent`, when it can read the agent's screen.
    fn screen_profile(
        &mut self,
        ctx: &Ctx,
        agency: &str,
        agent: &str,
        default_cmd: &str,
    ) -> Option<Profile> {
        let entry = self.spec(ctx, agency).and_then(|s| s.agent(agent)).cloned();
        let profiles = self.profiles(ctx);
        let (_, prof) = profile::resolve(profiles, &entry?, default_cmd);
        prof.filter(|p| p.ready.is_some() || p.waiting.is_some() || p.busy.is_some())
            .cloned()
    }

    /// Captures the screens that may have changed (within the budget) and
    /// sets every profiled agent's state from its latest look.
    fn read_screens(
        &mut self,
        ctx: &Ctx,
        out: &mut [AgencyLive],
        wanted: Vec<(usize, usize, String, Profile, u64)>,
        now: u64,
    ) -> Result<()> {
        // Changed: never read, output since the read, or output in the very
        // second of the read (which may have come just after it).
        let stale = |l: Option<&Look>, act: u64| l.is_none_or(|l| l.activity != act || act >= l.at);
        let mut due: Vec<&(usize, usize, String, Profile, u64)> = wanted
            .iter()
            .filter(|(_, _, pane, _, act)| stale(self.looks.get(pane), *act))
            .collect();
        due.sort_by_key(|(_, _, pane, _, _)| self.looks.get(pane).map(|l| l.at));
        if self.budget > 0 {
            due.truncate(self.budget);
        }
        let panes: Vec<String> = due.iter().map(|w| w.2.clone()).collect();
        let screens = ctx.tmux.capture(&panes)?;
        self.captured = panes.len();
        for (w, screen) in due.into_iter().zip(screens) {
            let (_, _, pane, prof, act) = w;
            let state = prof.screen_state(&screen);
            let question = prof.question(&screen);
            self.looks.insert(
                pane.clone(),
                Look {
                    activity: *act,
                    at: now,
                    state,
                    question,
                },
            );
        }
        for (i, j, pane, _, _) in &wanted {
            let a = &mut out[*i].agents[*j];
            match self.looks.get(pane) {
                Some(l) => {
                    a.state = l.state.as_str().into();
                    a.question = l.question.clone();
                }
                // Not read yet (over the budget): the next look reads it.
                None => {
                    a.state = "unknown".into();
                    a.unread = true;
                }
            }
        }
        Ok(())
    }

    fn track_since(&mut self, out: &mut [AgencyLive], now: u64) {
        let mut keep = HashMap::new();
        for agency in out.iter_mut() {
            for a in &mut agency.agents {
                let key = (agency.name.clone(), a.name.clone());
                let since = match self.since.remove(&key) {
                    Some((s, t)) if s == a.state => t,
                    _ => now,
                };
                a.since = Some(since);
                keep.insert(key, (a.state.clone(), since));
            }
        }
        self.since = keep;
    }
}
