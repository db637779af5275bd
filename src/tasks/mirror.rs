//! `registry/task_graph.json`, rewritten by the router when the graph
//! changed (at most every `EVERY` while it keeps changing), so a command
//! never pays for writing a large graph out. Like the other mirrors it is
//! for people and other tools, never read back as truth.

use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::error::Result;

const EVERY: Duration = Duration::from_millis(200);

#[derive(Default)]
pub struct Mirror {
    written: Option<i64>,
    at: Option<Instant>,
}

impl Mirror {
    /// Rewrites the mirror if the graph changed since the last time and
    /// the last write is long enough ago; returns whether it wrote.
    pub fn tick(&mut self, ctx: &Ctx) -> Result<bool> {
        if self.at.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(false);
        }
        let sig = ctx.store.task_signature()?;
        if self.written == Some(sig) {
            return Ok(false);
        }
        ctx.store.write_task_mirror()?;
        self.written = Some(sig);
        self.at = Some(Instant::now());
        Ok(true)
    }
}
