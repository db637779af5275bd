//! The approval screen: one `tokio::select!` loop over terminal events, a
//! one-second tick and a debounced watch on the registry, feeding actions to
//! `App::update`; drawing is `draw::draw`, a pure function of the state.

pub mod app;
pub mod draw;
pub mod monitor;

use std::time::{Duration, SystemTime};

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::approval;
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::model::ApprovalStatus;
use crate::os::git::Project;
use app::{Action, App, Effect, Filter};

/// A signal on every write to the registry's folder (none if it cannot be
/// watched: the screens' tick still refreshes them), and what watches it.
pub(crate) fn watch_registry(
    ctx: &Ctx,
) -> (
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
) {
    let (changed_tx, changed) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|e| e.kind.is_modify() || e.kind.is_create()) {
            let _ = changed_tx.send(());
        }
    })
    .ok()
    .and_then(|mut w| {
        w.watch(&ctx.ws.registry_dir(), RecursiveMode::NonRecursive)
            .ok()
            .map(|_| w)
    });
    (watcher, changed)
}

/// Opens the screen until `q`. The terminal is restored on quit, on error
/// and on panic (`ratatui::init` installs that hook).
pub fn run(ctx: &mut Ctx, filter: Filter) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the screen", e))?;
    rt.block_on(async {
        let mut terminal = ratatui::init();
        let result = event_loop(&mut terminal, ctx, filter).await;
        ratatui::restore();
        result
    })
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    ctx: &mut Ctx,
    filter: Filter,
) -> Result<()> {
    let mut app = App::new(filter, SystemTime::now());
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // Any write to the registry (a submission, a decision elsewhere).
    let (_watcher, mut changed) = watch_registry(ctx);
    let mut pending = vec![Effect::Reload];
    loop {
        for effect in std::mem::take(&mut pending) {
            if let Some(action) = perform(ctx, &app, effect) {
                pending.extend(app.update(action));
            }
        }
        terminal
            .draw(|f| draw::draw(&app, f))
            .map_err(|e| Error::io("drawing the screen", e))?;
        if app.quit {
            return Ok(());
        }
        let action = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => app.key(k),
                Some(Ok(_)) => None, // resize and the rest: redrawn above
                Some(Err(e)) => return Err(Error::io("reading the terminal", e)),
                None => return Ok(()),
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

/// Carries out an effect; what came of it returns as an action. A failure
/// is shown on the screen, never a crash.
fn perform(ctx: &mut Ctx, app: &App, effect: Effect) -> Option<Action> {
    let show = |e: Error| match e.hint() {
        Some(h) => format!("{e} — {h}"),
        None => e.to_string(),
    };
    match effect {
        Effect::Reload => {
            let items = ctx.store.approvals(app.filter.status()).ok()?;
            let pending = ctx
                .store
                .approvals(Some(ApprovalStatus::Pending))
                .ok()?
                .len();
            Some(Action::Loaded(items, pending))
        }
        Effect::LoadDiff(id) => {
            let item = app.items.iter().find(|i| i.id == id)?;
            let text = Project::open(&ctx.ws.project_dir())
                .and_then(|p| p.diff_text(&item.base_branch, &item.commit))
                .unwrap_or_else(|e| format!("cannot show the diff: {e}"));
            Some(Action::Text(text.lines().map(str::to_string).collect()))
        }
        Effect::LoadLog(id) => {
            let item = app.items.iter().find(|i| i.id == id)?;
            let text = std::fs::read_to_string(&item.test_log)
                .unwrap_or_else(|e| format!("cannot read {}: {e}", item.test_log));
            Some(Action::Text(text.lines().map(str::to_string).collect()))
        }
        Effect::Approve(id, force) => Some(Action::Decided(
            approval::approve(ctx, id, None, force)
                .map(|r| {
                    format!(
                        "approved #{id}: {} merged into {} ({})",
                        r.branch, r.base_branch, r.merge
                    )
                })
                .map_err(show),
        )),
        Effect::Reject(id, feedback) => Some(Action::Decided(
            approval::reject(ctx, id, &feedback)
                .map(|_| format!("rejected #{id}; the feedback went to its coordinator"))
                .map_err(show),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::app::{Action, App, Filter, Mode, View};
    use super::draw::draw;
    use crate::store::ApprovalRow;

    fn item(id: i64, title: &str, failed: i64) -> ApprovalRow {
        ApprovalRow {
            id,
            agency: "CodeAgency".into(),
            task: format!("task {id}"),
            title: title.into(),
            branch: format!("feature/{id}"),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            base_branch: "main".into(),
            status: crate::model::ApprovalStatus::Pending,
            tests_passed: Some(12),
            tests_failed: Some(failed),
            coverage: Some(87.5),
            test_command: "cargo test".into(),
            test_exit_code: Some(if failed > 0 { 101 } else { 0 }),
            test_seconds: 4.2,
            test_log: "sandbox/logs/x.log".into(),
            files_changed: 3,
            insertions: 120,
            deletions: 7,
            demo: Some("http://localhost:3000/demo".into()),
            feedback: None,
            decided_by: None,
            decision_note: None,
            merge_commit: None,
            previous_id: None,
            created_at: "2026-11-22T12:00:00.000Z".into(),
            decided_at: None,
        }
    }

    /// A fixed clock: ages are the same in every run.
    fn app(items: Vec<ApprovalRow>) -> App {
        let now = humantime::parse_rfc3339("2026-11-22T12:30:00Z").unwrap_or(UNIX_EPOCH);
        let mut a = App::new(Filter::Pending, now + Duration::from_secs(0));
        let n = items.len();
        a.update(Action::Loaded(items, n));
        a
    }

    fn render(app: &App) -> String {
        render_at(app, 80, 24)
    }

    fn render_at(app: &App, width: u16, height: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
        t.draw(|f| draw(app, f)).unwrap();
        t.backend().to_string()
    }

    /// The screen, then which rows are dim and which is highlighted (the
    /// text alone cannot show it).
    fn render_styled(app: &App, width: u16) -> String {
        use ratatui::style::Modifier;
        let mut t = Terminal::new(TestBackend::new(width, 12)).unwrap();
        t.draw(|f| draw(app, f)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut out = t.backend().to_string();
        for y in 0..buf.area.height {
            // Column 1 is inside the ID cell of a table row.
            let m = buf[(1, y)].modifier;
            let mut marks = Vec::new();
            if m.contains(Modifier::REVERSED) {
                marks.push("highlighted");
            }
            if m.contains(Modifier::DIM) && y > 2 && y < buf.area.height - 2 {
                marks.push("dim");
            }
            if !marks.is_empty() {
                out.push_str(&format!("row {y}: {}\n", marks.join(" ")));
            }
        }
        out
    }

    /// An item decided `status` (approved items carry their merge).
    fn decided(id: i64, title: &str, status: &str) -> ApprovalRow {
        ApprovalRow {
            status: status.parse().unwrap(),
            decided_by: Some("human".into()),
            decided_at: Some("2026-11-22T12:20:00.000Z".into()),
            ..item(id, title, 0)
        }
    }

    fn two() -> App {
        app(vec![
            item(1, "Add OAuth2 login", 0),
            item(2, "Fix flaky cache test", 1),
        ])
    }

    #[test]
    fn list() {
        insta::assert_snapshot!(render(&two()));
    }

    #[test]
    fn list_at_120_columns() {
        insta::assert_snapshot!(render_at(&two(), 120, 8));
    }

    #[test]
    fn list_at_160_columns() {
        insta::assert_snapshot!(render_at(&two(), 160, 8));
    }

    /// Every column keeps its header above it, whatever the width.
    #[test]
    fn columns_line_up_with_their_headers_at_any_width() {
        for width in [80u16, 100, 119, 120, 140, 160, 200] {
            let screen = render_at(&two(), width, 8);
            let lines: Vec<&str> = screen.lines().collect();
            let (header, row) = (lines[2], lines[3]);
            // By column (the row holds ✓ and ✗, several bytes each).
            let under = |name: &str| -> String {
                let col = header
                    .match_indices(name)
                    .map(|(i, _)| i)
                    .find(|&i| {
                        let end = header[i + name.len()..].chars().next();
                        (i == 0 || header[..i].ends_with(' '))
                            && end.is_none_or(|c| c == ' ' || c == '"')
                    })
                    .unwrap_or_else(|| panic!("{width}: no {name}:\n{screen}"));
                row.chars().skip(col).collect()
            };
            for (name, value) in [("CHANGES", "3f +120 -7"), ("AGE", "30m")] {
                assert!(
                    under(name).starts_with(value),
                    "{width} columns: {name} does not show {value}:\n{screen}"
                );
            }
            if width >= 120 {
                assert!(under("COV").starts_with("88%"), "{screen}");
                assert!(
                    under("DEMO").starts_with("http://localhost:3000/demo"),
                    "{screen}"
                );
            }
        }
    }

    #[test]
    fn filters_keep_the_selection_visible() {
        for (filter, name) in [
            (Filter::All, "all"),
            (Filter::Approved, "approved"),
            (Filter::Rejected, "rejected"),
        ] {
            let items = match filter {
                Filter::All => vec![
                    item(3, "Still pending", 0),
                    decided(2, "Merged already", "approved"),
                    decided(1, "Sent back", "rejected"),
                ],
                Filter::Approved => vec![
                    decided(2, "Merged already", "approved"),
                    decided(4, "Merged before", "approved"),
                ],
                _ => vec![
                    decided(1, "Sent back", "rejected"),
                    decided(5, "Sent back too", "rejected"),
                ],
            };
            let now = humantime::parse_rfc3339("2026-11-22T12:30:00Z").unwrap();
            let mut a = App::new(filter, now);
            a.update(Action::Loaded(items, 1));
            a.update(Action::Move(1));
            insta::assert_snapshot!(format!("filter_{name}"), render_styled(&a, 120));
        }
    }

    #[test]
    fn empty() {
        insta::assert_snapshot!(render(&app(Vec::new())));
    }

    #[test]
    fn detail() {
        let mut a = two();
        a.update(Action::Move(1));
        a.update(Action::Open(View::Detail));
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn diff() {
        let mut a = two();
        a.update(Action::Open(View::Diff));
        a.update(Action::Text(
            "diff --git a/x b/x\n@@ -1 +1,2 @@\n a\n-b\n+c\n+d"
                .lines()
                .map(str::to_string)
                .collect(),
        ));
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn confirm() {
        let mut a = two();
        a.update(Action::AskApprove);
        assert_eq!(a.mode, Mode::ConfirmApprove(1));
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn failed_items_are_approved_with_f_only() {
        let mut a = two();
        a.update(Action::Move(1));
        a.update(Action::AskApprove);
        assert_eq!(a.mode, Mode::ConfirmForce(2));
        insta::assert_snapshot!(render(&a));
        let key = |c| {
            a.key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Char(c),
            ))
        };
        assert_eq!(key('y'), Some(Action::Cancel));
        assert_eq!(key('F'), Some(Action::ConfirmedForce));
        assert_eq!(
            a.update(Action::ConfirmedForce),
            vec![super::app::Effect::Approve(2, true)]
        );
        assert_eq!(a.mode, Mode::Normal);
    }

    #[test]
    fn feedback_input() {
        let mut a = two();
        a.update(Action::AskReject);
        for c in "needs tests".chars() {
            a.update(Action::Type(c));
        }
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn error() {
        let mut a = two();
        a.update(Action::Decided(Err(
            "feature/1 conflicts with main in: src/lib.rs; nothing was changed".into(),
        )));
        insta::assert_snapshot!(render(&a));
    }

    #[test]
    fn anything_but_y_cancels_and_selection_follows_the_item() {
        let mut a = two();
        a.update(Action::AskApprove);
        let key = a.key(crossterm::event::KeyEvent::from(
            crossterm::event::KeyCode::Char('n'),
        ));
        assert_eq!(key, Some(Action::Cancel));
        assert!(a.update(Action::Cancel).is_empty());
        assert_eq!(a.mode, Mode::Normal);
        a.update(Action::Move(1));
        // A new item arrives before the selected one: selection stays on #2.
        a.update(Action::Loaded(
            vec![
                item(0, "new", 0),
                item(1, "Add OAuth2 login", 0),
                item(2, "x", 1),
            ],
            3,
        ));
        assert_eq!(a.current().unwrap().id, 2);
    }
}
