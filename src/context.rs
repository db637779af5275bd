//! What every command works with: the workspace, its registry and its
//! tmux server, opened once; and the one path by which events are recorded.

use std::fs;

use crate::error::{did_you_mean, Error, Result};
use crate::model::spec::{validate_name, AgencySpec};
use crate::model::{Address, Event, Role};
use crate::os::tmux::Tmux;
use crate::store::Store;
use crate::workspace::Workspace;

/// What every command works with: the workspace, its registry, its tmux server.
pub struct Ctx {
    pub ws: Workspace,
    pub store: Store,
    pub tmux: Tmux,
}

impl Ctx {
    pub fn open(ws: Workspace) -> Result<Ctx> {
        let store = Ctx::open_store(&ws)?;
        let tmux = Tmux::new(ws.tmux_socket());
        Ok(Ctx { ws, store, tmux })
    }

    /// The workspace's registry, its events mirrored in the agencies'
    /// activity logs.
    pub fn open_store(ws: &Workspace) -> Result<Store> {
        Ok(Store::open(&ws.registry_dir())?.with_activity_logs(ws.agencies_dir()))
    }

    /// The one event path: records `event` as a row of the registry's
    /// `events` and, for an agency's event, a line of its
    /// `logs/activity.log` in the same shape (see `store::events`). Changes
    /// that record their events in their own transaction (a message
    /// queued, a decision) go the same way. Returns the event's time.
    pub fn record(&mut self, event: Event) -> Result<String> {
        Ok(self.store.record_event(&event)?)
    }
}

/// Who is there: the agencies this workspace knows and their agents. The
/// one check of an agent's address is `resolve`.
impl Ctx {
    /// Names of the agencies in the registry or with a folder.
    pub fn agency_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.store.agencies()?.into_iter().map(|a| a.name).collect();
        if let Ok(entries) = fs::read_dir(self.ws.agencies_dir()) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if validate_name("agency", &n).is_ok() && e.path().join("agency.json").is_file() {
                    names.push(n);
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Refuses an agency this workspace does not know, naming the known ones.
    pub fn require_known(&self, name: &str) -> Result<()> {
        validate_name("agency", name)?;
        let known = self.store.agency(name)?.is_some()
            || self.ws.agency_dir(name).join("agency.json").is_file();
        if known {
            return Ok(());
        }
        let names = self.agency_names()?;
        let hint = match did_you_mean(name, names.iter().map(String::as_str)) {
            Some(n) => format!("did you mean {n:?}? (see `agency list`)"),
            None if names.is_empty() => "make it with `agency create NAME`".to_string(),
            None => format!(
                "agencies here: {}; or make it with `agency create NAME`",
                names.join(", ")
            ),
        };
        Err(Error::user(
            format!("no agency named {name:?} in this workspace"),
            hint,
        ))
    }

    /// The agents of an agency: `coordinator`, then its specialists.
    pub fn agent_names(&self, name: &str) -> Result<Vec<String>> {
        self.require_known(name)?;
        let dir = self.ws.agency_dir(name);
        if dir.join("agency.json").is_file() {
            let spec = AgencySpec::load(&dir)?;
            let mut names = vec![Role::Coordinator.as_str().to_string()];
            names.extend(spec.agents.into_iter().map(|a| a.name));
            return Ok(names);
        }
        // Purged folder, registry rows left: what the registry knows.
        Ok(self
            .store
            .agents(name)?
            .into_iter()
            .filter(|a| a.role.is_agent())
            .map(|a| a.name)
            .collect())
    }

    /// The address of one of `agency`'s agents: `coordinator` is also known
    /// by its own name (`code-coordinator`); an unknown name is refused,
    /// with the closest real one suggested.
    pub fn resolve(&self, agency: &str, agent: &str) -> Result<Address> {
        validate_name("agent", agent)?;
        let agents = self.agent_names(agency)?;
        if agents.iter().any(|a| a == agent) {
            return Ok(Address::new(agency, agent));
        }
        let own = AgencySpec::load(&self.ws.agency_dir(agency))
            .ok()
            .map(|s| s.coordinator.name);
        if own.as_deref() == Some(agent) {
            return Ok(Address::new(agency, Role::Coordinator.as_str()));
        }
        let mut known: Vec<&str> = agents.iter().map(String::as_str).collect();
        known.extend(own.as_deref());
        let hint = match did_you_mean(agent, known.iter().copied()) {
            Some(n) => format!("did you mean {n:?}? (agents: {})", agents.join(", ")),
            None => format!("agents: {}", agents.join(", ")),
        };
        Err(Error::user(
            format!("agency {agency:?} has no agent {agent:?}"),
            hint,
        ))
    }

    /// The known agencies whose tmux session (made by this workspace) is
    /// up, in name order.
    pub fn running_agencies(&self) -> Result<Vec<String>> {
        let root = self.ws.root.display().to_string();
        let up: std::collections::HashSet<String> = self
            .tmux
            .list_panes()?
            .into_iter()
            .filter(|p| p.agency_home == root)
            .map(|p| p.session)
            .collect();
        Ok(self
            .agency_names()?
            .into_iter()
            .filter(|n| up.contains(n))
            .collect())
    }
}
