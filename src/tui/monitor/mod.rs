//! `agency monitor`, the one screen: what needs the human first (and
//! decided there, in two keys), the agencies below, recent events and a
//! throughput sparkline. The same architecture as the approval screen: one
//! `tokio::select!` loop over terminal events, a one-second tick and a
//! debounced watch on the registry, feeding actions to `App::update`;
//! drawing is `draw::draw`, a pure function of the state.

pub mod app;
pub mod draw;

use std::time::{Duration, SystemTime};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;

use crate::approval;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::monitor::scan::BUDGET;
use crate::monitor::Monitor;
use crate::os::git::Project;
use app::{Action, App, Decision, Effect, Jumped};

/// Opens the screen until `q`; returns what to print once it has closed
/// (the command that attaches to a pane, outside tmux). The terminal is
/// restored on quit, on error and on panic.
pub fn run(ctx: &mut Ctx) -> Result<Option<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the screen", e))?;
    rt.block_on(async {
        let mut terminal = ratatui::init();
        let result = event_loop(&mut terminal, ctx).await;
        ratatui::restore();
        result
    })
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    ctx: &mut Ctx,
) -> Result<Option<String>> {
    let mut app = App::new(SystemTime::now());
    let mut monitor = Monitor::new(BUDGET);
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Any write to the registry: a submission, a decision, a delivery.
    let (_watcher, mut changed) = crate::tui::watch_registry(ctx);
    let mut pending = vec![Effect::Reload];
    loop {
        for effect in std::mem::take(&mut pending) {
            if let Some(action) = perform(ctx, &mut monitor, effect) {
                pending.extend(app.update(action));
            }
        }
        terminal
            .draw(|f| draw::draw(&app, f))
            .map_err(|e| Error::io("drawing the screen", e))?;
        if app.quit {
            return Ok(app.exit_message.take());
        }
        let action = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => app.key(k),
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(Error::io("reading the terminal", e)),
                None => return Ok(None),
            },
            _ = tick.tick() => Some(Action::Tick(SystemTime::now())),
            Some(()) = changed.recv() => {
                // Debounce: one reload for a burst of writes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while changed.try_recv().is_ok() {}
                pending.push(Effect::Reload);
                None
            }
        };
        if let Some(a) = action {
            pending.extend(app.update(a));
        }
    }
}

fn show(e: Error) -> String {
    match e.hint() {
        Some(h) => format!("{e} — {h}"),
        None => e.to_string(),
    }
}

/// Carries out an effect; what came of it returns as an action. A failure
/// is shown on the screen, never a crash.
fn perform(ctx: &mut Ctx, monitor: &mut Monitor, effect: Effect) -> Option<Action> {
    match effect {
        Effect::Reload => {
            if ctx.store.replaced() {
                if let Ok(store) = Ctx::open_store(&ctx.ws) {
                    // Not closed: see the router's `reopen`.
                    std::mem::forget(std::mem::replace(&mut ctx.store, store));
                }
            }
            match monitor.refresh(ctx, SystemTime::now()) {
                Ok(snap) => Some(Action::Loaded(Box::new(snap))),
                // The last picture stays; the reason is shown.
                Err(e) => Some(Action::Problem(show(e))),
            }
        }
        Effect::LoadApproval(id) => ctx
            .store
            .approval(id)
            .ok()
            .flatten()
            .map(|a| Action::Approval(Box::new(a))),
        Effect::LoadDiff(id) => {
            let text = match ctx.store.approval(id) {
                Ok(Some(item)) => Project::open(&ctx.ws.project_dir())
                    .and_then(|p| p.diff_text(&item.base_branch, &item.commit))
                    .unwrap_or_else(|e| format!("cannot show the diff: {e}")),
                _ => format!("no approval #{id}"),
            };
            Some(Action::Text(text.lines().map(str::to_string).collect()))
        }
        Effect::Decide(d) => Some(Action::Decided(decide(ctx, d).map_err(show))),
        Effect::Reject(id, feedback) => Some(Action::Decided(
            approval::reject(ctx, id, &feedback)
                .map(|_| format!("rejected #{id}; the feedback went to its coordinator"))
                .map_err(show),
        )),
        Effect::Jump { agency, agent } => {
            Some(Action::Jumped(jump(ctx, &agency, agent.as_deref())))
        }
    }
}

/// Carries out a confirmed decision; returns what to show.
fn decide(ctx: &mut Ctx, d: Decision) -> Result<String> {
    match d {
        Decision::Approve(id) | Decision::Force(id) => {
            let force = matches!(d, Decision::Force(_));
            let r = approval::approve(ctx, id, None, force)?;
            Ok(format!(
                "approved #{id}: {} merged into {} ({})",
                r.branch, r.base_branch, r.merge
            ))
        }
        Decision::Answer {
            agency,
            agent,
            choice,
            question,
        } => answer(ctx, &agency, &agent, choice, question.as_deref()),
        Decision::Restart { agency, agent } => {
            crate::agency::restore(ctx, Some(&agency))?;
            crate::tasks::route_waiting(ctx)?;
            Ok(format!("started {agency}/{agent} again"))
        }
        Decision::Retry(id) => match ctx.store.retry_message(id, &crate::tasks::actor())? {
            Some(m) => {
                crate::bus::router::ensure_running(&ctx.ws)?;
                crate::bus::router::wake(&ctx.ws.registry_dir());
                Ok(format!("message #{id} to {} is queued again", m.to))
            }
            None => Err(Error::user(
                format!("message #{id} is not failed (any more)"),
                "nothing to retry",
            )),
        },
    }
}

/// Answers a permission prompt through `agency answer`'s own function: the
/// key its CLI takes for the choice, only while the prompt is up and still
/// asks what the monitor showed (`question`), recorded.
fn answer(
    ctx: &mut Ctx,
    agency: &str,
    agent: &str,
    choice: app::Choice,
    question: Option<&str>,
) -> Result<String> {
    use crate::runtime::profile::Choice;
    let choice = match choice {
        app::Choice::Yes => Choice::Yes,
        app::Choice::No => Choice::No,
        app::Choice::Always => Choice::Always,
    };
    // From the monitor: the human at its screen.
    let seen = Some(question.unwrap_or(""));
    let done = crate::agency::answer::answer(ctx, agency, agent, choice, "human", seen)?;
    Ok(format!(
        "answered {} to {agency}/{agent}: {}",
        choice.as_str(),
        done.question.as_deref().unwrap_or("(its prompt)")
    ))
}

/// Inside tmux on this server, switches this client to the pane; else the
/// screen closes and prints the command that attaches.
fn jump(ctx: &Ctx, agency: &str, agent: Option<&str>) -> std::result::Result<Jumped, String> {
    let target = crate::agency::attach_target(ctx, agency, agent).map_err(show)?;
    let what = match agent {
        Some(a) => format!("{agency}/{a}"),
        None => agency.to_string(),
    };
    if ctx.tmux.inside_same_server() {
        ctx.tmux
            .switch_client(&target)
            .map(|()| {
                Jumped::Switched(format!(
                    "switched to {what} (come back with your tmux keys)"
                ))
            })
            .map_err(|e| e.to_string())
    } else {
        let me = crate::workspace::invocation(&ctx.ws);
        let mut cmd = format!("{me} attach {}", crate::workspace::quote(agency));
        if let Some(a) = agent {
            cmd.push(' ');
            cmd.push_str(&crate::workspace::quote(a));
        }
        Ok(Jumped::Attach(cmd))
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::app::{Action, App, Choice, Decision, Effect, Mode, Row, View};
    use super::draw::draw;
    use crate::monitor::{sample, Kind, Snapshot};

    fn app(snap: Snapshot) -> App {
        let mut a = App::new(sample::now());
        a.update(Action::Loaded(Box::new(snap)));
        a
    }

    fn render(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(app, f)).unwrap();
        t.backend().to_string()
    }

    fn press(a: &mut App, code: KeyCode) -> Vec<Effect> {
        match a.key(KeyEvent::from(code)) {
            Some(action) => a.update(action),
            None => Vec::new(),
        }
    }

    /// Selects the first needs-you row of `kind`.
    fn select(a: &mut App, kind: Kind) {
        a.selected = a
            .snap
            .needs_you
            .iter()
            .position(|n| n.kind == kind)
            .unwrap();
    }

    fn small() -> Snapshot {
        sample::fleet(3, 4, 40)
    }

    #[test]
    fn empty() {
        insta::assert_snapshot!(render(&app(Snapshot::default()), 100, 20));
    }

    #[test]
    fn busy() {
        let mut s = small();
        s.needs_you.clear();
        let mut a = app(s);
        // Open the first agency.
        a.update(Action::Enter);
        insta::assert_snapshot!(render(&a, 120, 30));
    }

    #[test]
    fn every_kind_of_row() {
        let a = app(small());
        let kinds: Vec<Kind> = a.snap.needs_you.iter().map(|n| n.kind).collect();
        for k in [
            Kind::Approval,
            Kind::Waiting,
            Kind::Blocked,
            Kind::Failed,
            Kind::Exited,
        ] {
            assert!(kinds.contains(&k), "{k:?}");
        }
        insta::assert_snapshot!(render(&a, 120, 30));
    }

    #[test]
    fn fleet_of_700() {
        let a = app(sample::fleet(100, 7, 10_000));
        assert_eq!(a.totals.agents, 700);
        insta::assert_snapshot!(render(&a, 200, 50));
    }

    #[test]
    fn approve_is_a_then_y_and_a_failed_one_takes_f() {
        let mut a = app(small());
        assert_eq!(press(&mut a, KeyCode::Char('a')), vec![]);
        assert_eq!(a.mode, Mode::Confirm(Decision::Approve(3)));
        insta::assert_snapshot!("confirm_approve", render(&a, 100, 24));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            vec![Effect::Decide(Decision::Approve(3))]
        );
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('a'));
        assert_eq!(a.mode, Mode::Confirm(Decision::Force(4)));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            vec![],
            "y does not force"
        );
        assert_eq!(a.mode, Mode::Normal);
        press(&mut a, KeyCode::Char('a'));
        assert_eq!(
            press(&mut a, KeyCode::Char('F')),
            vec![Effect::Decide(Decision::Force(4))]
        );
    }

    #[test]
    fn reject_takes_feedback() {
        let mut a = app(small());
        press(&mut a, KeyCode::Char('r'));
        for c in "needs tests".chars() {
            press(&mut a, KeyCode::Char(c));
        }
        insta::assert_snapshot!("feedback", render(&a, 100, 24));
        assert_eq!(
            press(&mut a, KeyCode::Enter),
            vec![Effect::Reject(3, "needs tests".into())]
        );
    }

    #[test]
    fn a_waiting_agent_is_answered_in_two_keys() {
        let mut a = app(small());
        a.update(Action::Move(2));
        assert_eq!(a.need().unwrap().kind, Kind::Waiting);
        assert_eq!(a.need().unwrap().agency, "CodeAgency");
        // `a` is for approvals: nothing happens but a hint.
        assert_eq!(press(&mut a, KeyCode::Char('a')), vec![]);
        assert_eq!(a.mode, Mode::Normal);
        press(&mut a, KeyCode::Char('A'));
        insta::assert_snapshot!("confirm_answer", render(&a, 100, 24));
        let want = Effect::Decide(Decision::Answer {
            agency: "CodeAgency".into(),
            agent: "dev".into(),
            choice: Choice::Always,
            question: Some("Bash(rm -rf build && cargo build)".into()),
        });
        assert_eq!(press(&mut a, KeyCode::Char('y')), vec![want]);
        for (key, choice) in [('y', Choice::Yes), ('n', Choice::No)] {
            press(&mut a, KeyCode::Char(key));
            assert!(
                matches!(&a.mode, Mode::Confirm(Decision::Answer { choice: c, .. }) if *c == choice)
            );
            assert_eq!(press(&mut a, KeyCode::Char('x')), vec![], "cancelled");
        }
    }

    #[test]
    fn exited_agents_restart_and_failed_messages_retry_with_r_then_y() {
        let mut a = app(small());
        select(&mut a, Kind::Failed);
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            vec![Effect::Decide(Decision::Retry(41))]
        );
        select(&mut a, Kind::Exited);
        press(&mut a, KeyCode::Char('R'));
        insta::assert_snapshot!("confirm_restart", render(&a, 100, 24));
        assert_eq!(
            press(&mut a, KeyCode::Char('y')),
            vec![Effect::Decide(Decision::Restart {
                agency: "DocsAgency".into(),
                agent: "writer".into()
            })]
        );
        // R on an approval does nothing.
        a.update(Action::Top);
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn what_agents_wrote_reaches_the_terminal_without_control_characters() {
        let mut s = small();
        s.needs_you[0].what = "evil \x1b]0;pwned\x07 title\nsecond line \u{9b}31m".into();
        s.events[0].detail = serde_json::json!({"title": "\x1b[2J wiped"});
        let a = app(s);
        let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
        t.draw(|f| draw(&a, f)).unwrap();
        let text: String = t
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        assert!(
            text.contains("evil ]0;pwned title second line 31m"),
            "{text}"
        );
    }

    #[test]
    fn p_jumps_to_the_pane_of_any_row() {
        let mut a = app(small());
        assert_eq!(
            press(&mut a, KeyCode::Char('p')),
            vec![Effect::Jump {
                agency: "CodeAgency".into(),
                agent: None
            }]
        );
        a.update(Action::Move(2));
        assert_eq!(
            press(&mut a, KeyCode::Char('p')),
            vec![Effect::Jump {
                agency: "CodeAgency".into(),
                agent: Some("dev".into())
            }]
        );
        a.update(Action::Jumped(Ok(super::app::Jumped::Attach(
            "agency attach CodeAgency dev".into(),
        ))));
        assert!(a.quit);
        assert_eq!(
            a.exit_message.as_deref(),
            Some("agency attach CodeAgency dev")
        );
    }

    #[test]
    fn details_of_an_approval_and_the_selection_follows_its_row() {
        let mut a = app(small());
        a.update(Action::Move(1));
        assert_eq!(press(&mut a, KeyCode::Enter), vec![Effect::LoadApproval(4)]);
        assert_eq!(a.view, View::Detail);
        insta::assert_snapshot!("detail", render(&a, 100, 24));
        press(&mut a, KeyCode::Esc);
        // The approval before it is decided: the selection stays on #4.
        let mut s = small();
        s.needs_you.remove(0);
        a.update(Action::Loaded(Box::new(s)));
        assert_eq!(a.need().unwrap().id, Some(4));
        // An agency opens with Enter and its agents become rows.
        let first_agency = a.snap.needs_you.len();
        a.update(Action::Bottom);
        a.update(Action::Move(-2));
        assert_eq!(a.current(), Some(&Row::Agency(0)));
        let before = a.rows.len();
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.rows.len(), before + 4);
        assert_eq!(a.rows[first_agency + 1], Row::Agent(0, 0));
    }
}
