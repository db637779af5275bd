//! Drawing the monitor: a pure function of the state. Only the rows that
//! fit are built, so 700 agents and 10,000 events cost what a screenful
//! costs.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Sparkline, Table, Wrap};
use ratatui::Frame;

use super::app::{App, Decision, Mode, Row, View};
use crate::monitor::{one_line, AgencyLine, Kind, NeedsYou};
use crate::store::EventRow;
use crate::tui::draw::{age, popup_of_width};

pub fn draw(app: &App, f: &mut Frame) {
    let [title, body, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    heading(app, f, title);
    match app.view {
        View::Main => main(app, f, body),
        View::Detail => detail(app, f, body),
        View::Diff => diff(app, f, body),
    }
    if let Some((error, msg)) = &app.status {
        let style = if *error {
            Style::new().fg(Color::Red).bold()
        } else {
            Style::new().fg(Color::Green)
        };
        f.render_widget(Paragraph::new(one_line(msg)).style(style), status);
    }
    f.render_widget(Paragraph::new(help_line(app)).dim(), help);
    popups(app, f);
}

fn heading(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.totals;
    let n = app.snap.needs_you.len();
    let need = if n == 0 {
        Span::from("nothing needs you").fg(Color::Green)
    } else {
        Span::from(format!("{n} need{} you", if n == 1 { "s" } else { "" }))
            .fg(Color::Yellow)
            .bold()
    };
    let router = match app.snap.router {
        Some(pid) => format!("router {pid}"),
        None => "no router".into(),
    };
    f.render_widget(
        Line::from(vec![
            Span::from("AGENCY MONITOR  ").bold(),
            need,
            Span::from(format!(
                "  ·  {} agencies, {} agents: {} idle, {} busy, {} waiting, {} exited  ·  {router}",
                app.snap.agencies.len(),
                t.agents,
                t.idle,
                t.busy,
                t.waiting,
                t.exited
            ))
            .dim(),
        ]),
        area,
    );
}

fn help_line(app: &App) -> String {
    match (&app.mode, app.view) {
        (Mode::Confirm(Decision::Force(_)), _) => "F approve anyway   any other key cancels".into(),
        (Mode::Confirm(_), _) => "y confirm   any other key cancels".into(),
        (Mode::Feedback { .. }, _) => "type the feedback   Enter reject   Esc cancel".into(),
        (_, View::Main) => {
            let what = match app.need().map(|n| n.kind) {
                Some(Kind::Approval) => "Enter details  d diff  a approve  r reject",
                Some(Kind::Waiting) => "y yes  n no  A always",
                Some(Kind::Exited) => "R restart",
                Some(Kind::Failed) => "R retry",
                Some(Kind::Blocked) => "Enter details",
                None => match app.current() {
                    Some(Row::Agency(_)) => "Enter open/close",
                    Some(_) => "y/n/A answer  R restart",
                    None => "",
                },
            };
            format!("↑↓ move  {what}  p go to pane  q quit")
        }
        (_, _) => "↑↓ scroll  Esc back  d diff  a approve  r reject  q quit".into(),
    }
}

fn main(app: &App, f: &mut Frame, area: Rect) {
    let wide = area.width >= 140;
    let (left, right) = if wide {
        let [l, r] = Layout::horizontal([Constraint::Min(80), Constraint::Length(56)]).areas(area);
        (l, Some(r))
    } else {
        (area, None)
    };
    let n = app.snap.needs_you.len();
    // Needs-you first: as many rows as it has, up to half the height.
    let need_h = (n.max(1) as u16 + 2).min(left.height / 2).max(3);
    let feed_h = if wide { 0 } else { 7.min(left.height / 4) };
    let [needs, agencies, feed] = Layout::vertical([
        Constraint::Length(need_h),
        Constraint::Min(3),
        Constraint::Length(feed_h),
    ])
    .areas(left);
    needs_you(app, f, needs);
    agency_list(app, f, agencies);
    match right {
        Some(r) => events(app, f, r),
        None if feed_h > 0 => events(app, f, feed),
        None => {}
    }
}

/// The window of `rows` rows that shows `selected` (when it is among
/// `first..first+len`), and where it starts.
fn window(selected: Option<usize>, len: usize, rows: usize) -> usize {
    match selected {
        Some(s) if s >= rows => (s + 1 - rows).min(len.saturating_sub(rows)),
        _ => 0,
    }
}

/// The selected row's mark (the reverse video does not show everywhere).
fn marker(on: bool) -> &'static str {
    if on {
        "›"
    } else {
        " "
    }
}

fn selected_style(on: bool) -> Style {
    if on {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new()
    }
}

fn since(n: &NeedsYou, app: &App) -> String {
    n.since.as_deref().map_or("-".into(), |s| age(s, app.now))
}

fn kind_style(k: Kind) -> Style {
    match k {
        Kind::Approval => Style::new().fg(Color::Cyan).bold(),
        Kind::Waiting => Style::new().fg(Color::Yellow).bold(),
        Kind::Blocked | Kind::Failed | Kind::Exited => Style::new().fg(Color::Red).bold(),
    }
}

fn needs_you(app: &App, f: &mut Frame, area: Rect) {
    let items = &app.snap.needs_you;
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!("NEEDS YOU ({})", items.len()))
        .bold();
    if items.is_empty() {
        f.render_widget(
            Paragraph::new("Nothing needs you. Approvals, agents at a prompt, blocked tasks, failed messages and exited agents appear here by themselves.")
                .dim()
                .wrap(Wrap { trim: true })
                .block(block),
            area,
        );
        return;
    }
    let visible = area.height.saturating_sub(2).max(1) as usize;
    let sel = (app.selected < items.len()).then_some(app.selected);
    let start = window(sel, items.len(), visible);
    let rows = items
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(i, n)| {
            TableRow::new(vec![
                Cell::from(marker(sel == Some(i))),
                Cell::from(n.kind.as_str()).style(kind_style(n.kind)),
                Cell::from(n.agency.clone()),
                Cell::from(n.agent.clone().unwrap_or_else(|| "-".into())),
                Cell::from(one_line(&n.what)),
                Cell::from(since(n, app)),
            ])
            .style(selected_style(sel == Some(i)))
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(8),
            Constraint::Length(16),
            Constraint::Length(14),
            Constraint::Fill(1),
            Constraint::Length(5),
        ],
    )
    .header(
        TableRow::new(["", "KIND", "AGENCY", "AGENT", "WHAT", "SINCE"])
            .style(Style::new().bold().underlined()),
    )
    .block(block);
    f.render_widget(table, area);
}

fn bar(done: i64, total: i64, width: usize) -> String {
    if total <= 0 {
        return " ".repeat(width);
    }
    let full = ((done.clamp(0, total) as usize) * width)
        .div_ceil(total as usize)
        .min(width);
    let full = if done < total {
        full.min(width - 1)
    } else {
        full
    };
    format!("{}{}", "█".repeat(full), "░".repeat(width - full))
}

fn agency_row<'a>(app: &App, a: &'a AgencyLine, open: bool) -> Vec<Cell<'a>> {
    let state = if !a.running {
        Span::from("stopped").dim()
    } else {
        Span::from("running").fg(Color::Green)
    };
    let count = |n: usize, label: &'static str, color: Color| {
        let s = Span::from(format!("{n} {label}"));
        if n > 0 {
            s.fg(color)
        } else {
            s.dim()
        }
    };
    let tasks = if a.tasks_total > 0 {
        format!(
            "{} {}/{}",
            bar(a.tasks_done, a.tasks_total, 10),
            a.tasks_done,
            a.tasks_total
        )
    } else {
        "no tasks".into()
    };
    vec![
        Cell::from(format!("{} {}", if open { "▾" } else { "▸" }, a.name)),
        Cell::from(state),
        Cell::from(Line::from(vec![
            count(a.idle, "idle ", Color::Reset),
            count(a.busy, "busy ", Color::Blue),
            count(a.waiting, "waiting ", Color::Yellow),
            count(a.exited, "exited", Color::Red),
        ])),
        Cell::from(tasks),
        Cell::from(
            a.last_activity
                .as_deref()
                .map_or("-".into(), |t| age(t, app.now)),
        ),
    ]
}

fn agency_list(app: &App, f: &mut Frame, area: Rect) {
    let first = app.snap.needs_you.len();
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!("AGENCIES ({})", app.snap.agencies.len()))
        .bold();
    if app.snap.agencies.is_empty() {
        f.render_widget(
            Paragraph::new("No agency yet: `agency create NAME` brings one up.")
                .dim()
                .block(block),
            area,
        );
        return;
    }
    let rows = &app.rows[first.min(app.rows.len())..];
    let visible = area.height.saturating_sub(2).max(1) as usize;
    let sel = app.selected.checked_sub(first);
    let start = window(sel, rows.len(), visible);
    let table_rows = rows
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .filter_map(|(i, r)| {
            let row = match r {
                Row::Agency(a) => {
                    let a = app.snap.agencies.get(*a)?;
                    agency_row(app, a, app.expanded.contains(&a.name))
                }
                Row::Agent(a, g) => {
                    let agent = app.snap.agencies.get(*a)?.agents.get(*g)?;
                    let color = match agent.state.as_str() {
                        "waiting" => Color::Yellow,
                        "exited" => Color::Red,
                        "busy" => Color::Blue,
                        _ => Color::Reset,
                    };
                    let note = match (&agent.question, &agent.setup_error) {
                        (Some(q), _) => format!("asks: {}", one_line(q)),
                        (_, Some(e)) => format!("not started: {}", one_line(e)),
                        _ => agent.pane.clone().unwrap_or_default(),
                    };
                    vec![
                        Cell::from(format!("    {}", agent.name)),
                        Cell::from(agent.role.as_str()).dim(),
                        Cell::from(agent.state.clone()).fg(color),
                        Cell::from(note),
                        Cell::from(
                            agent
                                .since
                                .map(|s| age(&crate::monitor::rfc3339(s), app.now))
                                .unwrap_or_default(),
                        ),
                    ]
                }
                Row::Need(_) => return None,
            };
            let mut cells = vec![Cell::from(marker(sel == Some(i)))];
            cells.extend(row);
            Some(TableRow::new(cells).style(selected_style(sel == Some(i))))
        });
    let table = Table::new(
        table_rows,
        [
            Constraint::Length(1),
            Constraint::Length(24),
            Constraint::Length(11),
            Constraint::Length(33),
            Constraint::Fill(1),
            Constraint::Length(5),
        ],
    )
    .header(
        TableRow::new(["", "AGENCY", "STATE", "AGENTS", "TASKS", "LAST"])
            .style(Style::new().bold().underlined()),
    )
    .block(block);
    f.render_widget(table, area);
}

/// One event as a short line: its kind and the fields that say the most.
pub fn describe(e: &EventRow) -> String {
    let d = &e.detail;
    let mut parts = vec![e.kind.clone()];
    if let Some(id) = d["id"].as_i64() {
        parts.push(format!("#{id}"));
    }
    for key in ["agent", "to", "title", "state", "question", "choice"] {
        if let Some(v) = d[key].as_str() {
            parts.push(v.to_string());
        }
    }
    one_line(&parts.join(" "))
}

fn events(app: &App, f: &mut Frame, area: Rect) {
    let spark_h = if area.height >= 10 { 4 } else { 0 };
    let [feed, spark] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(spark_h)]).areas(area);
    let lines = feed.height.saturating_sub(1) as usize;
    let shown: Vec<Line> = app
        .snap
        .events
        .iter()
        .rev()
        .take(lines)
        .map(|e| {
            Line::from(vec![
                Span::from(format!("{:>4} ", age(&e.at, app.now))).dim(),
                Span::from(format!("{} ", e.agency.as_deref().unwrap_or("-"))).bold(),
                Span::from(describe(e)),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(shown).block(
            Block::new()
                .borders(Borders::TOP)
                .title("RECENT EVENTS")
                .bold(),
        ),
        feed,
    );
    if spark_h > 0 {
        let total: u64 = app.snap.throughput.iter().sum();
        let title = format!(
            "DELIVERED/MIN, LAST HOUR: {total}  ·  TASKS DONE: {}",
            app.snap.done_last_hour
        );
        // The newest minutes that fit the width.
        let w = spark.width as usize;
        let data = &app.snap.throughput[app.snap.throughput.len().saturating_sub(w)..];
        f.render_widget(
            Sparkline::default()
                .block(Block::new().borders(Borders::TOP).title(title).bold())
                .data(data)
                .style(Style::new().fg(Color::Cyan)),
            spark,
        );
    }
}

fn detail(app: &App, f: &mut Frame, area: Rect) {
    let Some(n) = app.need() else {
        return;
    };
    let field = |k: &str, v: String| {
        Line::from(vec![
            Span::from(format!("{k:>10}  ")).dim(),
            Span::from(one_line(&v)),
        ])
    };
    let mut lines = vec![
        Line::from(one_line(&n.what)).bold(),
        Line::from(""),
        field("kind", n.kind.as_str().into()),
        field("agency", n.agency.clone()),
        field("agent", n.agent.clone().unwrap_or_else(|| "-".into())),
        field("since", n.since.clone().unwrap_or_else(|| "-".into())),
        field("command", n.command.clone()),
    ];
    if let Some(a) = app.approval.as_ref().filter(|a| Some(a.id) == n.id) {
        let tests = match (a.tests_passed, a.tests_failed) {
            (Some(p), Some(f)) => format!("{p} passed, {f} failed"),
            _ => "no summary".into(),
        };
        lines.extend([
            Line::from(""),
            field("title", a.title.clone()),
            field("task", a.task.clone()),
            field(
                "branch",
                format!(
                    "{} @ {} into {}",
                    a.branch,
                    &a.commit[..a.commit.len().min(10)],
                    a.base_branch
                ),
            ),
            field(
                "tests",
                format!(
                    "{tests}, exit {} (`{}` in {:.1}s)",
                    a.test_exit_code.map_or("-".into(), |c| c.to_string()),
                    a.test_command,
                    a.test_seconds
                ),
            ),
            field(
                "coverage",
                a.coverage.map_or("unknown".into(), |c| format!("{c}%")),
            ),
            field(
                "changes",
                format!(
                    "{} files, +{} -{}",
                    a.files_changed, a.insertions, a.deletions
                ),
            ),
            field("test log", a.test_log.clone()),
        ]);
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::TOP).title("details")),
        area,
    );
}

fn diff(app: &App, f: &mut Frame, area: Rect) {
    let height = area.height.saturating_sub(1) as usize;
    let lines: Vec<Line> = app
        .text
        .iter()
        .skip(app.scroll)
        .take(height)
        .map(|l| {
            let line = Line::from(one_line(l));
            match l.chars().next() {
                Some('+') => line.fg(Color::Green),
                Some('-') => line.fg(Color::Red),
                Some('@') => line.fg(Color::Cyan),
                _ => line,
            }
        })
        .collect();
    let id = app.need().and_then(|n| n.id).unwrap_or(0);
    f.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title(format!(
            "diff of #{id} — line {} of {}",
            (app.scroll + 1).min(app.text.len().max(1)),
            app.text.len()
        ))),
        area,
    );
}

fn popups(app: &App, f: &mut Frame) {
    let (title, lines): (&str, Vec<Line>) = match &app.mode {
        Mode::Normal => return,
        Mode::Confirm(Decision::Approve(id)) => (
            "approve",
            vec![
                Line::from(format!(
                    "Approve {} and merge it into {}?",
                    approval_named(app, *id),
                    app.approval
                        .as_ref()
                        .filter(|a| a.id == *id)
                        .map_or("the base branch", |a| a.base_branch.as_str())
                )),
                Line::from(""),
                Line::from("y approves; any other key cancels").dim(),
            ],
        ),
        Mode::Confirm(Decision::Force(id)) => (
            "approve despite failing tests",
            vec![
                Line::from(format!(
                    "{} did not pass its tests.",
                    approval_named(app, *id)
                )),
                Line::from(""),
                Line::from("F (shift-f) merges it anyway; any other key cancels"),
            ],
        ),
        Mode::Confirm(Decision::Answer {
            agency,
            agent,
            choice,
            question,
        }) => (
            "answer",
            vec![
                Line::from(format!(
                    "Answer {} to {agency}/{agent}?",
                    choice.as_str().to_uppercase()
                )),
                Line::from(format!(
                    "It asks: {}",
                    one_line(question.as_deref().unwrap_or("(its prompt)"))
                )),
                Line::from(""),
                Line::from("y answers; any other key cancels").dim(),
            ],
        ),
        Mode::Confirm(Decision::Restart { agency, agent }) => (
            "restart",
            vec![
                Line::from(format!(
                    "Start {agency}/{agent} again (and any other exited agent of {agency})?"
                )),
                Line::from(""),
                Line::from("y restarts; any other key cancels").dim(),
            ],
        ),
        Mode::Confirm(Decision::Retry(id)) => (
            "retry",
            vec![
                Line::from(format!("Queue message #{id} again for delivery?")),
                Line::from(""),
                Line::from("y retries; any other key cancels").dim(),
            ],
        ),
        Mode::Feedback { id, input } => (
            "reject",
            vec![
                Line::from(format!("Feedback for #{id} (sent to its coordinator):")),
                Line::from(format!("> {input}_")).bold(),
                Line::from("Enter rejects; Esc cancels").dim(),
            ],
        ),
    };
    popup_of_width(f, title, lines, 76);
}

/// `#ID title (branch, tests)` as its row says, else `#ID`.
fn approval_named(app: &App, id: i64) -> String {
    app.snap
        .needs_you
        .iter()
        .find(|n| n.kind == Kind::Approval && n.id == Some(id))
        .map_or(format!("#{id}"), |n| one_line(&n.what))
}
