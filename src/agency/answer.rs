//! Answering an agent's permission prompt from outside its pane: what it
//! asks, read from its screen, and the key its CLI takes for a choice.

use serde::Serialize;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::spec::AgencySpec;
use crate::model::Event;
use crate::os::tmux::Op;
use crate::runtime::profile::{self, Choice, Profile, ScreenState};

/// An answer given: recorded as an `answer` event.
#[derive(Debug, Clone, Serialize)]
pub struct Answered {
    pub agency: String,
    pub agent: String,
    pub choice: Choice,
    /// What the prompt asked about, as `agency status` showed it.
    pub question: Option<String>,
    /// The keys pressed (tmux key names).
    pub keys: Vec<String>,
    /// Who answered: `AGENCY/AGENT` from the environment, else `human`.
    pub by: String,
    pub at: String,
}

/// The pane and profile of a running agent, checked.
fn agent_pane(ctx: &Ctx, agency: &str, agent: &str) -> Result<(String, Profile)> {
    let agent = ctx.resolve(agency, agent)?.agent;
    let agent = agent.as_str();
    let root = ctx.ws.root.display().to_string();
    let pane = ctx
        .store
        .agents(agency)?
        .into_iter()
        .find(|a| a.name == agent)
        .and_then(|a| a.pane_id)
        .filter(|id| {
            ctx.tmux.list_panes().is_ok_and(|panes| {
                panes.iter().any(|p| {
                    &p.pane_id == id && p.session == agency && p.agency_home == root && !p.dead
                })
            })
        })
        .ok_or_else(|| {
            Error::user(
                format!("{agency}/{agent} is not running"),
                format!("start it with `agency status {agency} --restart`"),
            )
        })?;
    let spec = AgencySpec::load(&ctx.ws.agency_dir(agency))?;
    let profiles = profile::load(&ctx.ws.root)?;
    let entry = spec.agent(agent).expect("listed above");
    let profile = profile::resolve(&profiles, entry, &ctx.ws.default_agent_command())
        .1
        .filter(|p| p.waiting.is_some())
        .cloned()
        .ok_or_else(|| {
            Error::user(
                format!("agency cannot tell when {agency}/{agent} asks for permission (its profile has no `waiting`)"),
                format!("answer in its pane: agency attach {agency} {agent}"),
            )
        })?;
    Ok((pane, profile))
}

/// `agency answer`: presses the key for `choice` at the permission prompt
/// `agency/agent` shows right now, and records that `by` (an agent's
/// `AGENCY/AGENT`, or `human`) answered what. Nothing is typed unless a
/// prompt offering that choice is on its screen, and, with `if_asks` (the
/// question the human saw; "" for none), unless it still asks that.
pub fn answer(
    ctx: &mut Ctx,
    agency: &str,
    agent: &str,
    choice: Choice,
    by: &str,
    if_asks: Option<&str>,
) -> Result<Answered> {
    let (pane, profile) = agent_pane(ctx, agency, agent)?;
    let screen = ctx.tmux.capture(std::slice::from_ref(&pane))?.remove(0);
    let state = profile.screen_state(&screen);
    if state != ScreenState::Waiting {
        return Err(Error::user(
            format!(
                "{agency}/{agent} is not waiting at a prompt (it is {}); nothing was typed",
                state.as_str()
            ),
            format!("answer when `agency status {agency}` shows it `waiting`"),
        ));
    }
    let keys = profile.answer_keys(&screen, choice).ok_or_else(|| {
        Error::user(
            format!(
                "the prompt of {agency}/{agent} offers no {:?}; nothing was typed",
                choice.as_str()
            ),
            format!("answer another way, or look: agency attach {agency} {agent}"),
        )
    })?;
    let question = profile.question(&screen);
    if let Some(seen) = if_asks {
        check_asks(agency, agent, seen, question.as_deref())?;
    }
    let ops: Vec<Op> = keys
        .iter()
        .map(|k| Op::PressKey {
            pane: pane.clone(),
            key: k.clone(),
        })
        .collect();
    ctx.tmux.batch(&ops)?;
    let detail = json!({
        "agent": agent, "choice": choice, "question": question, "by": by, "keys": keys,
    });
    let at = ctx.record(Event::new(agency, "answer", detail))?;
    Ok(Answered {
        agency: agency.to_string(),
        agent: agent.to_string(),
        choice,
        question,
        keys,
        by: by.to_string(),
        at,
    })
}

/// Refuses when the prompt up now asks something other than what the human
/// saw (`seen`): it changed between their look and their answer.
fn check_asks(agency: &str, agent: &str, seen: &str, now: Option<&str>) -> Result<()> {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let now = now.unwrap_or("");
    if squash(seen) == squash(now) {
        return Ok(());
    }
    let now = if now.is_empty() {
        "(nothing agency can read)"
    } else {
        now
    };
    Err(Error::user(
        format!("the prompt of {agency}/{agent} changed: it now asks {now}; nothing was typed"),
        format!("look again with `agency status {agency}`, then answer what it asks now"),
    ))
}
