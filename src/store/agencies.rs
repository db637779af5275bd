//! Agencies and their agents as last brought up.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::events::insert_event;
use super::{Store, StoreResult, NOW};
use crate::model::{AgencyState, Event, Layout, Role};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgencyRow {
    pub name: String,
    pub template: String,
    pub layout: Layout,
    pub session: String,
    pub state: AgencyState,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub role: Role,
    pub position: i64,
    pub command: String,
    pub window: String,
    pub pane_id: Option<String>,
    /// The agent's own git worktree and branch, when it has them.
    pub worktree: Option<String>,
    pub branch: Option<String>,
    /// Why the setup command failed (then the agent was not started).
    pub setup_error: Option<String>,
}

pub(super) fn agency_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgencyRow> {
    Ok(AgencyRow {
        name: r.get(0)?,
        template: r.get(1)?,
        layout: r.get(2)?,
        session: r.get(3)?,
        state: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

impl Store {
    pub fn agency(&self, name: &str) -> StoreResult<Option<AgencyRow>> {
        self.conn
            .query_row(
                "SELECT name, template, layout, session, state, created_at, updated_at
                 FROM agencies WHERE name = ?1",
                [name],
                agency_from_row,
            )
            .optional()
            .map_err(self.err())
    }

    pub fn agencies(&self) -> StoreResult<Vec<AgencyRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, template, layout, session, state, created_at, updated_at
                 FROM agencies ORDER BY name",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], agency_from_row)
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    pub fn agents(&self, agency: &str) -> StoreResult<Vec<AgentRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, role, position, command, window, pane_id, worktree, branch, setup_error
                 FROM agents WHERE agency = ?1 ORDER BY position",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([agency], |r| {
                Ok(AgentRow {
                    name: r.get(0)?,
                    role: r.get(1)?,
                    position: r.get(2)?,
                    command: r.get(3)?,
                    window: r.get(4)?,
                    pane_id: r.get(5)?,
                    worktree: r.get(6)?,
                    branch: r.get(7)?,
                    setup_error: r.get(8)?,
                })
            })
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        Ok(rows)
    }

    /// Records an agency as running with exactly `agents`, plus an event, in
    /// one transaction.
    pub fn save_running(
        &mut self,
        agency: &AgencyRow,
        agents: &[AgentRow],
        event: &Event,
    ) -> StoreResult<String> {
        self.write_tx(|tx| {
            tx.execute(
                &format!(
                    "INSERT INTO agencies (name, template, layout, session, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'running', {NOW}, {NOW})
                     ON CONFLICT (name) DO UPDATE SET template = ?2, layout = ?3, session = ?4,
                         state = 'running', updated_at = {NOW}"
                ),
                params![agency.name, agency.template, agency.layout, agency.session],
            )?;
            tx.execute("DELETE FROM agents WHERE agency = ?1", [&agency.name])?;
            for a in agents {
                tx.execute(
                    "INSERT INTO agents (agency, name, role, position, command, window, pane_id,
                       worktree, branch, setup_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        agency.name,
                        a.name,
                        a.role,
                        a.position,
                        a.command,
                        a.window,
                        a.pane_id,
                        a.worktree,
                        a.branch,
                        a.setup_error
                    ],
                )?;
            }
            insert_event(tx, event)
        })
    }

    /// Sets an agency's state and records an event, in one transaction.
    pub fn set_state(&mut self, agency: &str, state: &str, event: &Event) -> StoreResult<String> {
        self.write_tx(|tx| {
            tx.execute(
                &format!("UPDATE agencies SET state = ?2, updated_at = {NOW} WHERE name = ?1"),
                params![agency, state],
            )?;
            insert_event(tx, event)
        })
    }

    /// A purged agency leaves the registry's list: its rows and its agents'
    /// go, and its messages not yet delivered (queued or failed) are
    /// cancelled, kept with what they said; delivered ones stay as they
    /// are. One transaction, with a `message.cancelled` event for each.
    /// Returns the ids cancelled.
    pub fn forget_agency(&mut self, agency: &str) -> StoreResult<Vec<i64>> {
        self.write_tx(|tx| {
            let cancelled: Vec<(i64, String, String)> = tx
                .prepare(
                    "UPDATE messages SET state = 'cancelled',
                       last_error = 'cancelled: its agency was purged'
                     WHERE agency = ?1 AND state IN ('queued', 'failed')
                     RETURNING id, agent, kind",
                )?
                .query_map([agency], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, agent, kind) in &cancelled {
                let detail =
                    serde_json::json!({"id": id, "to": format!("{agency}/{agent}"), "type": kind});
                insert_event(tx, &Event::new(agency, "message.cancelled", detail))?;
            }
            tx.execute("DELETE FROM agents WHERE agency = ?1", [agency])?;
            tx.execute("DELETE FROM agencies WHERE name = ?1", [agency])?;
            let mut ids: Vec<i64> = cancelled.into_iter().map(|(id, _, _)| id).collect();
            ids.sort_unstable();
            Ok(ids)
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::Store;

    pub(crate) fn sample() -> (AgencyRow, Vec<AgentRow>) {
        let agency = AgencyRow {
            name: "A".into(),
            template: "Generic".into(),
            layout: Layout::Windows,
            session: "A".into(),
            state: AgencyState::Running,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let agents = vec![AgentRow {
            name: "coordinator".into(),
            role: Role::Coordinator,
            position: 0,
            command: "bash".into(),
            window: "coordinator".into(),
            pane_id: Some("%1".into()),
            worktree: None,
            branch: None,
            setup_error: None,
        }];
        (agency, agents)
    }

    /// A registry in `dir` where `sample` was created.
    pub(crate) fn created(dir: &std::path::Path) -> Store {
        let mut s = Store::open(dir).unwrap();
        let (a, agents) = sample();
        s.save_running(
            &a,
            &agents,
            &Event::new("A", "create", serde_json::json!({})),
        )
        .unwrap();
        s
    }

    #[test]
    fn state_change_records_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = created(dir.path());
        s.set_state(
            "A",
            "stopped",
            &Event::new("A", "kill", serde_json::json!({})),
        )
        .unwrap();
        assert_eq!(s.agency("A").unwrap().unwrap().state, AgencyState::Stopped);
        let kinds: Vec<String> = s
            .events(Some("A"), 10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["create", "kill"]);
    }
}
