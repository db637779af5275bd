//! Leases: a claim outlives its agent by at most `[tasks] lease`. The
//! router calls `Leases::tick` on its own tick; only while tasks are
//! claimed does it look at the panes (one `list-panes`, at most every
//! second). A claimer whose pane is dead or gone starts the clock (stored,
//! so a restarted router goes on from it); one back alive stops it; once
//! the lease has passed the task is ready again, dispatched anew, with a
//! `reclaimed` entry in its history.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{after, Graph, Routing, State};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// How often the panes are looked at, at most.
const EVERY: Duration = Duration::from_secs(1);

pub struct Leases {
    lease: Duration,
    last: Option<Instant>,
}

impl Leases {
    pub fn new(lease: Duration) -> Leases {
        Leases { lease, last: None }
    }

    fn due(&self) -> bool {
        let every = EVERY.min(self.lease / 2);
        self.last.is_none_or(|t| t.elapsed() >= every)
    }

    /// Starts and stops lease clocks, and reclaims lapsed claims. Returns
    /// the tasks reclaimed.
    pub fn tick(&mut self, ctx: &mut Ctx) -> Result<Vec<i64>> {
        if !self.due() {
            return Ok(Vec::new());
        }
        self.last = Some(Instant::now());
        let claims = ctx.store.claims()?;
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let panes = ctx.tmux.list_panes()?;
        let root = ctx.ws.root.display().to_string();
        let mut pane_of: HashMap<String, HashMap<String, Option<String>>> = HashMap::new();
        let (mut gone, mut alive) = (Vec::new(), Vec::new());
        for c in &claims {
            if !pane_of.contains_key(&c.agency) {
                let rows = ctx.store.agents(&c.agency)?;
                pane_of.insert(
                    c.agency.clone(),
                    rows.into_iter().map(|a| (a.name, a.pane_id)).collect(),
                );
            }
            let id = pane_of[&c.agency].get(&c.agent).cloned().flatten();
            let up = id.is_some_and(|id| {
                panes.iter().any(|p| {
                    p.pane_id == id && p.session == c.agency && p.agency_home == root && !p.dead
                })
            });
            match (up, &c.gone_since) {
                (false, None) => gone.push(c.id),
                (true, Some(_)) => alive.push(c.id),
                _ => {}
            }
        }
        let clocks_running = claims.iter().any(|c| c.gone_since.is_some());
        if gone.is_empty() && alive.is_empty() && !clocks_running {
            return Ok(Vec::new());
        }
        let routing = Routing::load(ctx)?;
        let lease = self.lease;
        let (reclaimed, fx) = ctx.store.tasks_tx(true, |tx| {
            let mut g = Graph::new(tx, &routing, "agency");
            tx.mark_gone(&gone, &alive)?;
            let lapsed = tx.lapsed(lease.as_secs_f64())?;
            for &id in &lapsed {
                let mut t = g.get(id)?;
                let who = format!(
                    "{}/{}",
                    t.agency.as_deref().unwrap_or("-"),
                    t.agent.as_deref().unwrap_or("-")
                );
                let note = format!(
                    "{who} has been gone longer than the lease ({})",
                    humantime::format_duration(lease)
                );
                g.ready_why = Some(format!("{who} is gone"));
                g.move_to(&mut t, State::Ready, "reclaimed", Some(&note))?;
            }
            Ok::<_, Error>((lapsed, g.finish()?))
        })?;
        after(ctx, &fx)?;
        Ok(reclaimed)
    }
}
