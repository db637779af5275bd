//! The JSON mirrors in `registry/`: rewritten from the database after
//! each change, for people and other tools, never read back as truth.

use serde::Serialize;

use super::{AgencyRow, AgentRow, Store, StoreError, StoreResult};
use crate::model::ApprovalStatus;
use crate::workspace::write_atomic;

impl Store {
    /// Rewrites `registry/message_queue.json`: the undelivered messages.
    pub fn write_queue_mirror(&self) -> StoreResult<()> {
        self.write_mirror("message_queue.json", &self.undelivered()?)
    }

    pub(super) fn write_mirror<T: Serialize>(&self, name: &str, value: &T) -> StoreResult<()> {
        let path = self.registry.join(name);
        let mut text = serde_json::to_vec_pretty(value).expect("plain data serializes");
        text.push(b'\n');
        write_atomic(&path, &text).map_err(|e| StoreError::Mirror {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Rewrites `registry/approval_queue.json`: the pending items.
    pub fn write_approvals_mirror(&self) -> StoreResult<()> {
        self.write_mirror(
            "approval_queue.json",
            &self.approvals(Some(ApprovalStatus::Pending))?,
        )
    }

    /// Rewrites `registry/active_agencies.json` from the database.
    pub fn write_agencies_mirror(&self) -> StoreResult<()> {
        #[derive(Serialize)]
        struct Entry {
            #[serde(flatten)]
            agency: AgencyRow,
            agents: Vec<AgentRow>,
        }
        let mut entries = Vec::new();
        for agency in self.agencies()? {
            let agents = self.agents(&agency.name)?;
            entries.push(Entry { agency, agents });
        }
        self.write_mirror("active_agencies.json", &entries)
    }
}
