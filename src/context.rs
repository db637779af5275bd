//! What every command works with: the workspace, its registry and its
//! tmux server, opened once; and the one path by which events are recorded.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
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
        let store = Store::open(&ws.registry_dir())?;
        let tmux = Tmux::new(ws.tmux_socket());
        Ok(Ctx { ws, store, tmux })
    }

    /// Records an event in the registry and appends it to the agency's
    /// `logs/activity.log`.
    pub fn event(&mut self, agency: &str, kind: &str, detail: serde_json::Value) -> Result<()> {
        let at = self.store.record_event(Some(agency), kind, &detail)?;
        self.activity(agency, &at, kind, &detail)
    }

    /// Appends a line stamped now to the agency's `logs/activity.log`.
    pub fn activity_line(
        &self,
        agency: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.activity(agency, &now, kind, detail)
    }

    pub(crate) fn activity(
        &self,
        agency: &str,
        at: &str,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let dir = self.ws.agency_dir(agency).join("logs");
        if !dir.parent().is_some_and(Path::is_dir) {
            return Ok(());
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = dir.join("activity.log");
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        writeln!(f, "{at} {kind} {detail}").map_err(|e| Error::io(path.display(), e))
    }
}
