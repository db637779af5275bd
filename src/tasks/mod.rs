//! The task graph: work as tasks with dependencies across agencies.
//!
//! A task is `waiting` while something it needs is unfinished, `ready` when
//! it can be taken, `claimed` by an agent, in `review` once submitted for
//! approval, and `done`, `blocked` or `cancelled`. Everything that follows
//! from a change happens in the transaction that makes it: when a task
//! becomes ready its agency's coordinator is sent a `TASK` message (once per
//! readiness), and when one is done or cancelled the tasks that needed it
//! are checked again and dispatched. Nothing polls for unblocked work; the
//! router only watches the panes of agents holding claims (see `lease`).
//!
//! The rules are in `graph` (no SQL); the SQL in `store::tasks`.

pub mod graph;
pub mod hooks;
pub mod lease;
pub mod mirror;
pub mod plan;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use crate::bus;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::{validate_name, AgencySpec};
use crate::model::AgencyState;
use crate::store::{NewMessage, NewTask, TaskRow, TaskTx};
pub use graph::{Action, Priority, State};

/// Titles are one line of at most this many characters.
pub const MAX_TITLE: usize = 200;
/// How much of a task's body its `TASK` message carries.
const MESSAGE_BODY: usize = 2000;
/// Who sends the messages that announce readiness.
const SYSTEM: &str = "agency";

/// A task id as given: `12` or `#12`.
pub fn parse_id(s: &str) -> Option<i64> {
    let d = s.trim().strip_prefix('#').unwrap_or(s.trim());
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse().ok().filter(|&n| n > 0)
}

/// Who acts: `AGENCY_NAME/AGENCY_AGENT` in an agent's pane, else `human`.
pub fn actor() -> String {
    bus::sender(None).unwrap_or_else(|_| "human".into())
}

/// A one-line title without control characters.
pub fn clean_title(title: &str) -> Result<String> {
    let one_line: String = crate::model::sanitize(title)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    let t = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return Err(Error::user(
            "the task has no title",
            "give it one: agency task add \"Build the login form\"",
        ));
    }
    if t.chars().count() > MAX_TITLE {
        return Err(Error::user(
            format!(
                "the title is {} characters; at most {MAX_TITLE}",
                t.chars().count()
            ),
            "put the details in --body",
        ));
    }
    Ok(t)
}

/// A body without control characters (newlines and tabs stay).
pub fn clean_body(body: &str) -> Result<String> {
    let b = crate::model::sanitize(body).trim_end().to_string();
    if b.len() > bus::MAX_BODY {
        return Err(Error::user(
            format!("the body is {} bytes; at most {}", b.len(), bus::MAX_BODY),
            "put long content in a file and name its path in the body",
        ));
    }
    Ok(b)
}

fn check_capability(c: &str) -> Result<()> {
    Ok(validate_name("capability", c)?)
}

fn not_found(id: i64) -> Error {
    Error::user(
        format!("no task {id}"),
        "see the tasks with `agency task list`",
    )
}

fn state_of(t: &TaskRow) -> State {
    State::parse(&t.state).unwrap_or(State::Waiting)
}

fn rank_of(t: &TaskRow) -> i64 {
    Priority::parse(&t.priority).unwrap_or_default().rank()
}

/// The running agencies and what they can do, read before a transaction.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    running: Vec<(String, Vec<String>)>,
}

impl Routing {
    pub fn load(ctx: &Ctx) -> Result<Routing> {
        let mut running = Vec::new();
        for a in ctx.store.agencies()? {
            if a.state == AgencyState::Running {
                let caps = capabilities(ctx, &a.name);
                running.push((a.name, caps));
            }
        }
        Ok(Routing { running })
    }
}

/// An agency's capabilities, from its `agency.json`.
pub fn capabilities(ctx: &Ctx, agency: &str) -> Vec<String> {
    AgencySpec::load(&ctx.ws.agency_dir(agency))
        .map(|s| s.capabilities)
        .unwrap_or_default()
}

/// What a transaction did, told once it is committed.
#[derive(Debug, Default)]
pub struct Effects {
    messages: Vec<(NewMessage, i64)>,
    /// Tasks that became ready.
    pub ready: Vec<i64>,
    /// Something was written.
    pub changed: bool,
}

/// One transaction's work on the graph: the moves, and what follows them.
pub struct Graph<'t, 'c> {
    pub tx: &'t TaskTx<'c>,
    routing: &'t Routing,
    actor: &'t str,
    pub fx: Effects,
    /// Said in the `TASK` message of the next task to become ready.
    pub ready_why: Option<String>,
    /// Ready tasks to announce, per agency, with their lines.
    announce: std::collections::BTreeMap<String, Vec<(TaskRow, String)>>,
}

impl<'t, 'c> Graph<'t, 'c> {
    pub fn new(tx: &'t TaskTx<'c>, routing: &'t Routing, actor: &'t str) -> Self {
        Graph {
            tx,
            routing,
            actor,
            fx: Effects::default(),
            ready_why: None,
            announce: Default::default(),
        }
    }

    pub fn get(&self, id: i64) -> Result<TaskRow> {
        self.tx.get(id)?.ok_or_else(|| not_found(id))
    }

    /// The facts the rules need about `t`.
    pub fn facts(&self, t: &TaskRow) -> Result<graph::Facts> {
        let needs: Vec<State> = self
            .tx
            .need_states(t.id)?
            .iter()
            .filter_map(|s| State::parse(s))
            .collect();
        Ok(graph::Facts {
            state: state_of(t),
            unresolved: graph::readiness(&needs) == State::Waiting,
            has_agent: t.agent.is_some(),
        })
    }

    /// Where `action` takes `t`, or the refusal as a user error.
    pub fn target(&self, t: &TaskRow, action: Action) -> Result<State> {
        graph::transition(t.id, self.facts(t)?, action).map_err(|r| Error::user(r.message, r.hint))
    }

    /// Writes `t` (its new state already set) and records `kind` in its
    /// history; a task that became ready is dispatched, one that finished
    /// frees what waited for it.
    pub fn record(
        &mut self,
        t: &mut TaskRow,
        from: State,
        kind: &str,
        note: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<()> {
        let to = state_of(t);
        if to == State::Ready && from != State::Ready {
            // Routed first, so its history and log name the agency.
            self.route_task(t)?;
        }
        self.tx.save(t, rank_of(t))?;
        self.tx.event(t, kind, self.actor, note, detail)?;
        self.fx.changed = true;
        if to == State::Ready && from != State::Ready {
            let why = self.ready_why.take();
            self.dispatch(t, why.as_deref())?;
        }
        if to.resolved() && !from.resolved() {
            self.free_dependents(t.id)?;
        }
        Ok(())
    }

    /// Moves `t` to `to` by `action`: state, history, what follows.
    pub fn move_to(
        &mut self,
        t: &mut TaskRow,
        to: State,
        kind: &str,
        note: Option<&str>,
    ) -> Result<()> {
        let from = state_of(t);
        t.state = to.as_str().into();
        if to == State::Ready || to == State::Waiting {
            t.agent = None;
            t.dispatch_id = None;
        }
        if to != State::Blocked {
            t.reason = None;
        }
        if to != State::Review {
            t.approval_id = t.approval_id.filter(|_| to == State::Done);
        }
        self.record(t, from, kind, note, json!({"from": from.as_str()}))
    }

    /// Announces a ready task to its agency's coordinator (at `finish`),
    /// routing it first when it asks for a capability; without a running
    /// agency that has it, it waits and says why.
    pub fn dispatch(&mut self, t: &mut TaskRow, why: Option<&str>) -> Result<()> {
        let (before, unrouted) = (t.reason.clone(), t.agency.is_none());
        let Some(agency) = self.route_task(t)? else {
            if t.reason != before {
                self.tx.save(t, rank_of(t))?;
                let why = t.reason.clone();
                self.tx
                    .event(t, "waits", SYSTEM, why.as_deref(), json!({}))?;
                self.fx.changed = true;
            }
            return Ok(());
        };
        if unrouted {
            self.tx.save(t, rank_of(t))?;
            self.fx.changed = true;
        }
        let mut about = Vec::new();
        if t.priority != Priority::Normal.as_str() {
            about.push(format!("priority {}", t.priority));
        }
        about.extend(why.map(str::to_string));
        about.push(format!("agency task show {}", t.id));
        let line = format!(
            "task #{} ready{}: {} ({})",
            t.id,
            if why.is_some() { " again" } else { "" },
            t.title,
            about.join("; ")
        );
        self.announce
            .entry(agency)
            .or_default()
            .push((t.clone(), line));
        Ok(())
    }

    /// Sends what became ready: one `TASK` message per agency, however many
    /// of its tasks became ready in this transaction (one wake-up, not a
    /// storm), each task's line naming its id; then returns what happened.
    pub fn finish(mut self) -> Result<Effects> {
        for (agency, tasks) in std::mem::take(&mut self.announce) {
            let (head, body) = match tasks.as_slice() {
                [(t, line)] => (line.clone(), t.body.clone()),
                many => (
                    format!(
                        "{} tasks ready (agency task list --ready --agency {agency}):",
                        many.len()
                    ),
                    many.iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            };
            let id = self.message(&agency, "coordinator", SYSTEM, "TASK", head, &body)?;
            let to = format!("{agency}/coordinator");
            let note = format!("TASK message #{id} to {to}");
            for (t, _) in &tasks {
                self.tx.set_dispatch(t.id, id)?;
                self.tx.event(
                    t,
                    "dispatched",
                    SYSTEM,
                    Some(&note),
                    json!({"to": to, "message": id}),
                )?;
                self.fx.ready.push(t.id);
            }
        }
        Ok(self.fx)
    }

    /// Gives a capability's task an agency, or says why it has none; returns
    /// the task's agency.
    fn route_task(&mut self, t: &mut TaskRow) -> Result<Option<String>> {
        if t.agency.is_none() {
            let cap = t.capability.clone().unwrap_or_default();
            match self.route(&cap)? {
                Some(a) => {
                    t.agency = Some(a);
                    t.reason = None;
                }
                None => t.reason = Some(format!("no running agency has capability {cap}")),
            }
        }
        Ok(t.agency.clone())
    }

    /// The running agency a capability's task goes to.
    fn route(&self, capability: &str) -> Result<Option<String>> {
        let open = self.tx.open_counts()?;
        let offers: Vec<graph::Offer> = self
            .routing
            .running
            .iter()
            .map(|(a, caps)| graph::Offer {
                agency: a.clone(),
                capabilities: caps.clone(),
                open: open.get(a).copied().unwrap_or(0),
            })
            .collect();
        Ok(graph::choose_agency(capability, &offers).map(str::to_string))
    }

    /// Queues a message in this transaction; returns its id.
    pub fn message(
        &mut self,
        agency: &str,
        agent: &str,
        from: &str,
        kind: &str,
        head: String,
        body: &str,
    ) -> Result<i64> {
        let mut text = head;
        if !body.is_empty() {
            text.push('\n');
            let cut: String = body.chars().take(MESSAGE_BODY).collect();
            text.push_str(&cut);
            if cut.len() < body.len() {
                text.push_str(" …");
            }
        }
        let m = bus::intra_message(from, agency, agent, kind.into(), bus::check_body(&text)?);
        let id = self
            .tx
            .queue_message(&m)?
            .expect("messages without origin are always queued");
        self.fx.messages.push((m, id));
        Ok(id)
    }

    /// Tasks that waited for `id` and now have everything they need become
    /// ready (and are dispatched).
    fn free_dependents(&mut self, id: i64) -> Result<()> {
        for d in self.tx.waiting_dependents(id)? {
            let mut t = self.get(d)?;
            if !self.facts(&t)?.unresolved {
                let note = format!("task {id} finished");
                self.move_to(&mut t, State::Ready, "ready", Some(&note))?;
            }
        }
        Ok(())
    }
}

/// Runs `f` on the graph in one transaction, then tells what it did: the
/// agencies' activity logs, and the router (which delivers the messages,
/// watches the claims and rewrites `registry/task_graph.json`).
pub fn transact<T>(
    ctx: &mut Ctx,
    f: impl FnOnce(&mut Graph<'_, '_>) -> Result<T>,
) -> Result<(T, Effects)> {
    let routing = Routing::load(ctx)?;
    let actor = actor();
    let (out, fx) = ctx.store.tasks_tx(true, |tx| {
        let mut g = Graph::new(tx, &routing, &actor);
        let out = f(&mut g)?;
        Ok::<_, Error>((out, g.finish()?))
    })?;
    after(ctx, &fx)?;
    Ok((out, fx))
}

/// What follows a committed change.
pub fn after(ctx: &mut Ctx, fx: &Effects) -> Result<()> {
    if !fx.changed && fx.messages.is_empty() {
        return Ok(());
    }
    // The router delivers what was queued, rewrites task_graph.json and
    // watches claims.
    bus::queued(ctx)
}

/// `agency task add`.
#[derive(Debug, Clone, Default)]
pub struct AddRequest {
    pub title: String,
    pub body: String,
    pub agency: Option<String>,
    pub capability: Option<String>,
    pub needs: Vec<i64>,
    pub parent: Option<i64>,
    pub priority: Priority,
}

#[derive(Debug, Clone, Serialize)]
pub struct Added {
    pub id: i64,
    pub state: String,
    pub agency: Option<String>,
    /// Why a ready task has no agency yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Checks where a task goes: one known agency, or a capability; an agent's
/// own agency when neither is given.
fn destination(
    ctx: &Ctx,
    agency: Option<&str>,
    capability: Option<&str>,
) -> Result<(Option<String>, Option<String>)> {
    match (agency, capability) {
        (Some(_), Some(_)) => Err(Error::user(
            "a task goes to an agency or asks for a capability, not both",
            "drop --agency to let any running agency with the capability take it",
        )),
        (Some(a), None) => {
            ctx.agent_names(a)?;
            Ok((Some(a.to_string()), None))
        }
        (None, Some(c)) => {
            check_capability(c)?;
            Ok((None, Some(c.to_string())))
        }
        (None, None) => match std::env::var("AGENCY_NAME").ok().filter(|a| !a.is_empty()) {
            Some(a) => {
                ctx.agent_names(&a)?;
                Ok((Some(a), None))
            }
            None => Err(Error::user(
                "where does the task go?",
                "pass --agency NAME, or --capability C to let a running agency that has it take it",
            )),
        },
    }
}

/// Refuses ids that name no task.
fn check_known(g: &Graph<'_, '_>, ids: &[i64], what: &str) -> Result<()> {
    let found = g.tx.existing(ids)?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|i| !found.contains(i))
        .map(|i| i.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::user(
            format!("{what}: no task {}", missing.join(", ")),
            "see the tasks with `agency task list`; nothing was written",
        ))
    }
}

fn dedup(ids: &[i64]) -> Vec<i64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

pub fn add(ctx: &mut Ctx, r: &AddRequest) -> Result<Added> {
    let title = clean_title(&r.title)?;
    let body = clean_body(&r.body)?;
    let (agency, capability) = destination(ctx, r.agency.as_deref(), r.capability.as_deref())?;
    let needs = dedup(&r.needs);
    let new = NewTask {
        title,
        body,
        agency,
        capability,
        priority: r.priority.as_str().into(),
        rank: r.priority.rank(),
        parent: r.parent,
        needs,
        plan: None,
        key: None,
    };
    let (t, _) = transact(ctx, |g| insert(g, &new))?;
    Ok(Added {
        id: t.id,
        state: t.state,
        agency: t.agency,
        reason: t.reason,
    })
}

/// Inserts a checked new task in `waiting` or `ready` (dispatched).
pub fn insert(g: &mut Graph<'_, '_>, new: &NewTask) -> Result<TaskRow> {
    check_known(g, &new.needs, "--needs")?;
    if let Some(p) = new.parent {
        check_known(g, &[p], "--parent")?;
    }
    let id = g.tx.insert(new, State::Waiting.as_str())?;
    let mut t = g.get(id)?;
    g.tx.event(&t, "created", g.actor, None, json!({"needs": new.needs}))?;
    g.fx.changed = true;
    if !g.facts(&t)?.unresolved {
        g.move_to(&mut t, State::Ready, "ready", None)?;
    }
    Ok(t)
}

/// `agency task edit`: what changes.
#[derive(Debug, Clone, Default)]
pub struct EditRequest {
    pub title: Option<String>,
    pub body: Option<String>,
    pub priority: Option<Priority>,
    pub needs: Option<Vec<i64>>,
    pub agency: Option<String>,
    pub capability: Option<String>,
}

pub fn edit(ctx: &mut Ctx, id: i64, r: &EditRequest) -> Result<TaskRow> {
    let title = r.title.as_deref().map(clean_title).transpose()?;
    let body = r.body.as_deref().map(clean_body).transpose()?;
    let dest = if r.agency.is_some() || r.capability.is_some() {
        Some(destination(
            ctx,
            r.agency.as_deref(),
            r.capability.as_deref(),
        )?)
    } else {
        None
    };
    let (t, _) = transact(ctx, |g| {
        let mut t = g.get(id)?;
        let from = state_of(&t);
        let mut changed = Vec::new();
        if let Some(v) = title.filter(|v| *v != t.title) {
            t.title = v;
            changed.push("title");
        }
        if let Some(v) = body.filter(|v| *v != t.body) {
            t.body = v;
            changed.push("body");
        }
        if let Some(p) = r.priority.filter(|p| p.as_str() != t.priority) {
            t.priority = p.as_str().into();
            changed.push("priority");
        }
        if let Some((agency, cap)) = dest.filter(|d| (&d.0, &d.1) != (&t.agency, &t.capability)) {
            if matches!(from, State::Claimed | State::Review) {
                return Err(Error::user(
                    format!("task {id} is {from}: it stays where it is while worked on"),
                    format!("reopen it first (agency task reopen {id}), then move it"),
                ));
            }
            t.agency = agency;
            t.capability = cap;
            changed.push("agency");
        }
        if let Some(needs) = &r.needs {
            let needs = dedup(needs);
            if needs != t.needs {
                set_needs(g, &t, &needs)?;
                t.needs = needs;
                changed.push("needs");
            }
        }
        if changed.is_empty() {
            return Ok(t);
        }
        let note = format!("changed {}", changed.join(", "));
        let detail = json!({"changed": changed});
        g.record(&mut t, from, "edited", Some(&note), detail)?;
        settle(g, &mut t, from, changed.contains(&"agency"))?;
        Ok(t)
    })?;
    Ok(t)
}

/// Checks and writes new needs: known ids, no task needing itself, no loop.
pub fn set_needs(g: &mut Graph<'_, '_>, t: &TaskRow, needs: &[i64]) -> Result<()> {
    check_known(g, needs, "--needs")?;
    let mut lookup_err = None;
    let cycle = graph::find_cycle(t.id, needs, |n| {
        g.tx.needs_of(n).unwrap_or_else(|e| {
            lookup_err = Some(e);
            Vec::new()
        })
    });
    if let Some(e) = lookup_err {
        return Err(e.into());
    }
    if let Some(path) = cycle {
        let path: Vec<String> = path.iter().map(|i| i.to_string()).collect();
        let message = if path.len() == 2 {
            format!("task {} cannot need itself", t.id)
        } else {
            format!("that makes a loop: {}", path.join(" needs "))
        };
        return Err(Error::user(
            message,
            "a task can only need work that does not (even indirectly) need it; nothing was written",
        ));
    }
    g.tx.set_needs(t.id, needs)?;
    Ok(())
}

/// After needs or routing changed: a waiting/ready task follows its needs
/// (dispatched when it became ready, or when it moved to another agency).
pub fn settle(g: &mut Graph<'_, '_>, t: &mut TaskRow, from: State, moved: bool) -> Result<()> {
    if !matches!(from, State::Waiting | State::Ready) {
        return Ok(());
    }
    let want = if g.facts(t)?.unresolved {
        State::Waiting
    } else {
        State::Ready
    };
    if want != from {
        let kind = want.as_str();
        g.move_to(t, want, kind, Some("its needs changed"))?;
    } else if want == State::Ready && moved {
        g.dispatch(t, Some("moved here"))?;
    }
    Ok(())
}

/// An agent that may hold tasks: `AGENCY/AGENT`, else the pane's own.
pub fn claimer(ctx: &Ctx, given: Option<&str>) -> Result<(String, String)> {
    let (agency, agent) = match given {
        Some(g) => match g.split_once('/') {
            Some((a, b)) => (a.to_string(), b.to_string()),
            None => {
                return Err(Error::user(
                    format!("{g:?} is not AGENCY/AGENT"),
                    "name the agent with its agency: --agent CodeAgency/python-agent",
                ))
            }
        },
        None => {
            let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
            match (env("AGENCY_NAME"), env("AGENCY_AGENT")) {
                (Some(a), Some(b)) => (a, b),
                _ => {
                    return Err(Error::user(
                        "who takes the task?",
                        "pass --agent AGENCY/AGENT (inside an agent's pane it is that agent)",
                    ))
                }
            }
        }
    };
    let agent = check_agent(ctx, &agency, &agent)?;
    Ok((agency, agent))
}

/// The one recipient check, returning the agent's name (the coordinator
/// may be named by its own name).
fn check_agent(ctx: &Ctx, agency: &str, agent: &str) -> Result<String> {
    validate_name("agency", agency)?;
    Ok(ctx.resolve(agency, agent)?.agent)
}

/// Gives `t` to `agency/agent`; tells the agent when someone else assigned it.
fn take(g: &mut Graph<'_, '_>, t: &mut TaskRow, agency: &str, agent: &str) -> Result<()> {
    t.agency = Some(agency.to_string());
    t.agent = Some(agent.to_string());
    t.reason = None;
    let by = format!("{agency}/{agent}");
    let note = (g.actor != by).then(|| format!("assigned to {by}"));
    let from = state_of(t);
    t.state = State::Claimed.as_str().into();
    g.record(
        t,
        from,
        "claimed",
        note.as_deref(),
        json!({"agent": by, "from": from.as_str()}),
    )?;
    if g.actor != by {
        let head = format!(
            "task #{} assigned to you: {} (agency task show {}; when finished: work on your branch is reported COMPLETE to your coordinator for review, other work is agency task done {})",
            t.id, t.title, t.id, t.id
        );
        let actor = g.actor.to_string();
        g.message(agency, agent, &actor, "TASK", head, &t.body)?;
    }
    Ok(())
}

/// `agency task claim ID [--agent AGENCY/AGENT]`.
pub fn claim(ctx: &mut Ctx, id: i64, agent: Option<&str>) -> Result<TaskRow> {
    let (agency, agent) = claimer(ctx, agent)?;
    let caps = capabilities(ctx, &agency);
    let (t, _) = transact(ctx, |g| {
        let mut t = g.get(id)?;
        if t.state == "claimed"
            && t.agency.as_deref() == Some(&agency)
            && t.agent.as_deref() == Some(&agent)
        {
            return Ok(t);
        }
        g.target(&t, Action::Claim)?;
        match (&t.agency, &t.capability) {
            (Some(a), _) if *a != agency => {
                return Err(Error::user(
                    format!("task {id} belongs to {a}"),
                    format!("give it to an agent of {a}, or move it: agency task edit {id} --agency {agency}"),
                ))
            }
            (None, Some(c)) if !caps.contains(c) => {
                return Err(Error::user(
                    format!("task {id} asks for capability {c}, which {agency} does not have"),
                    "give it to an agency that has it (see the capabilities in `agency templates`)",
                ))
            }
            _ => {}
        }
        take(g, &mut t, &agency, &agent)?;
        Ok(t)
    })?;
    Ok(t)
}

/// What `task next` found.
#[derive(Debug, Clone, Serialize)]
pub struct Next {
    #[serde(flatten)]
    pub task: TaskRow,
    pub body: String,
    /// The agent already held it (after a restart, say).
    pub resumed: bool,
}

/// `agency task next AGENCY AGENT`: the task the agent already holds, else
/// the best ready task its agency can do, claimed in the transaction that
/// found it. `None`: nothing to do.
pub fn next(ctx: &mut Ctx, agency: &str, agent: &str) -> Result<Option<Next>> {
    let agent = &check_agent(ctx, agency, agent)?;
    let caps = capabilities(ctx, agency);
    let (found, _) = transact(ctx, |g| {
        if let Some(id) = g.tx.held_by(agency, agent)? {
            let t = g.get(id)?;
            return Ok(Some((t, true)));
        }
        let candidates: Vec<graph::Candidate> =
            g.tx.candidates(agency, &caps)?
                .into_iter()
                .map(|(id, rank, dependents)| graph::Candidate {
                    id,
                    rank,
                    dependents,
                })
                .collect();
        let Some(id) = graph::best(&candidates) else {
            return Ok(None);
        };
        let mut t = g.get(id)?;
        take(g, &mut t, agency, agent)?;
        Ok(Some((t, false)))
    })?;
    Ok(found.map(|(t, resumed)| Next {
        body: t.body.clone(),
        task: t,
        resumed,
    }))
}

/// The outcome of done/block/cancel/reopen.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub id: i64,
    pub state: String,
    /// Nothing had to change (it was already so).
    pub unchanged: bool,
    /// Tasks that became ready because of it.
    pub ready: Vec<i64>,
}

/// `agency task done|block|cancel|reopen ID [--note TEXT]`.
pub fn act(ctx: &mut Ctx, id: i64, action: Action, note: Option<&str>) -> Result<Changed> {
    let note = note.map(clean_body).transpose()?.filter(|n| !n.is_empty());
    if action == Action::Block && note.is_none() {
        return Err(Error::user(
            "say why it is blocked",
            format!("agency task block {id} --note \"waiting for the API key\""),
        ));
    }
    let ((state, unchanged), fx) = transact(ctx, |g| {
        let mut t = g.get(id)?;
        let from = state_of(&t);
        let to = g.target(&t, action)?;
        if to == from && !(action == Action::Block && t.reason != note) {
            return Ok((to, true));
        }
        let kind = match action {
            Action::Reopen => "reopened",
            _ => to.as_str(),
        };
        if action == Action::Block {
            t.reason = note.clone();
        }
        g.move_to(&mut t, to, kind, note.as_deref())?;
        if action == Action::Block {
            tell_blocked(g, &t, note.as_deref().unwrap_or(""))?;
        }
        Ok((to, false))
    })?;
    Ok(Changed {
        id,
        state: state.as_str().into(),
        unchanged,
        ready: fx.ready,
    })
}

/// A blocked task is news for its coordinator (unless it blocked it).
fn tell_blocked(g: &mut Graph<'_, '_>, t: &TaskRow, reason: &str) -> Result<()> {
    let Some(agency) = t.agency.clone() else {
        return Ok(());
    };
    if g.actor == format!("{agency}/coordinator") {
        return Ok(());
    }
    let head = format!(
        "task #{} blocked by {}: {} (agency task show {})",
        t.id, g.actor, reason, t.id
    );
    let actor = g.actor.to_string();
    g.message(&agency, "coordinator", &actor, "BLOCKED", head, "")?;
    Ok(())
}

/// Routes the ready tasks that wait for an agency with their capability
/// (after an agency comes up). Returns the tasks dispatched.
pub fn route_waiting(ctx: &mut Ctx) -> Result<Vec<i64>> {
    let (_, fx) = transact(ctx, |g| {
        for id in g.tx.unrouted()? {
            let mut t = g.get(id)?;
            g.dispatch(&mut t, None)?;
        }
        Ok(())
    })?;
    Ok(fx.ready)
}

/// A task with its history, for `task show`.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub task: TaskRow,
    pub body: String,
    /// Tasks that need it.
    pub needed_by: Vec<i64>,
    pub history: Vec<crate::store::TaskEventRow>,
}

pub fn show(ctx: &Ctx, id: i64) -> Result<Shown> {
    let task = ctx.store.task(id)?.ok_or_else(|| not_found(id))?;
    Ok(Shown {
        body: task.body.clone(),
        needed_by: ctx.store.task_dependents(id)?,
        history: ctx.store.task_history(id)?,
        task,
    })
}

/// Every task's state by id (to tell which needs are unfinished).
pub fn states(ctx: &Ctx) -> Result<HashMap<i64, String>> {
    Ok(ctx.store.task_states()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbers_with_an_optional_hash() {
        assert_eq!(parse_id("12"), Some(12));
        assert_eq!(parse_id("#7"), Some(7));
        assert_eq!(parse_id(" 3 "), Some(3));
        for label in ["greeting", "12a", "", "#", "0", "-1", "1.5", "User auth"] {
            assert_eq!(parse_id(label), None, "{label}");
        }
    }

    #[test]
    fn every_built_in_briefing_teaches_the_task_commands() {
        // The built-in templates are this folder, embedded.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut checked = 0;
        for t in std::fs::read_dir(&root).unwrap().flatten() {
            let lead = t.path().join("coordinator.md");
            let Ok(lead) = std::fs::read_to_string(&lead) else {
                continue;
            };
            for cmd in [
                "agency task add",
                "agency plan apply",
                "agency task claim",
                "--task <id>",
            ] {
                assert!(
                    lead.contains(cmd),
                    "{:?}: coordinator lacks {cmd}",
                    t.path()
                );
            }
            let agents = std::fs::read_dir(t.path().join("agents"))
                .unwrap()
                .flatten();
            let skeleton = root.join("_specialist.md");
            for brief in agents.map(|a| a.path()).chain([skeleton.clone()]) {
                let text = std::fs::read_to_string(&brief).unwrap();
                for cmd in ["agency task next", "agency task done", "agency task block"] {
                    assert!(text.contains(cmd), "{brief:?} lacks {cmd}");
                }
                checked += 1;
            }
        }
        assert!(checked > 10, "only {checked} briefings found");
    }

    #[test]
    fn titles_are_one_clean_line() {
        assert_eq!(
            clean_title(" Fix\tthe\x1b[31m login\nform ").unwrap(),
            "Fix the[31m login form"
        );
        assert!(clean_title(" \n ").is_err());
        assert!(clean_title(&"x".repeat(MAX_TITLE + 1)).is_err());
        assert_eq!(clean_body("a\x07b\r\nc\n\n").unwrap(), "ab\nc");
    }
}
