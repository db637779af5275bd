//! Drawing: a pure function of the state.

use std::time::SystemTime;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::app::{App, Filter, Mode, View};
use crate::model::ApprovalStatus;
use crate::store::ApprovalRow;

pub fn draw(app: &App, f: &mut Frame) {
    let [title, body, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let heading = format!("PENDING APPROVALS ({})", app.pending);
    let showing = if app.filter == Filter::Pending {
        String::new()
    } else {
        format!("  — showing {}", app.filter.label())
    };
    f.render_widget(
        Line::from(vec![Span::from(heading).bold(), Span::from(showing).dim()]),
        title,
    );
    match app.view {
        View::List => list(app, f, body),
        View::Detail => detail(app, f, body),
        View::Diff => text(app, f, body, "diff", true),
        View::Log => text(app, f, body, "test log", false),
    }
    if let Some((error, msg)) = &app.status {
        let style = if *error {
            Style::new().fg(Color::Red).bold()
        } else {
            Style::new().fg(Color::Green)
        };
        f.render_widget(Paragraph::new(msg.as_str()).style(style), status);
    }
    f.render_widget(Paragraph::new(help_line(app)).dim(), help);
    dialog(app, f);
}

/// The question of the mode the screen is in, over the rest.
fn dialog(app: &App, f: &mut Frame) {
    match &app.mode {
        Mode::ConfirmApprove(id) => {
            let item = app.items.iter().find(|i| i.id == *id);
            let what = item.map_or(String::new(), |i| {
                format!(" {} ({}) into {}", i.title, i.branch, i.base_branch)
            });
            popup(
                f,
                "approve",
                vec![
                    Line::from(format!("Approve #{id}{what}?")),
                    Line::from(""),
                    Line::from("y approves; any other key cancels").dim(),
                ],
            );
        }
        Mode::ConfirmForce(id) => {
            let item = app.items.iter().find(|i| i.id == *id);
            let (what, base, tests) = item.map_or(Default::default(), |i| {
                let n = |v: Option<i64>| v.map_or("?".to_string(), |n| n.to_string());
                (
                    format!(" {} ({})", i.title, i.branch),
                    i.base_branch.clone(),
                    format!(
                        "{} passed, {} failed, exit {}",
                        n(i.tests_passed),
                        n(i.tests_failed),
                        i.test_exit_code.map_or("-".to_string(), |c| c.to_string())
                    ),
                )
            });
            popup(
                f,
                "approve despite failing tests",
                vec![
                    Line::from(format!("#{id}{what} did not pass its tests ({tests}).")),
                    Line::from(""),
                    Line::from(format!("F (shift-f) merges it into {base} anyway")),
                    Line::from("any other key cancels (t then shows the test log)").dim(),
                ],
            );
        }
        Mode::Feedback { id, input } => popup(
            f,
            "reject",
            vec![
                Line::from(format!("Feedback for #{id} (sent to its coordinator):")),
                Line::from(format!("> {input}_")).bold(),
                Line::from("Enter rejects; Esc cancels").dim(),
            ],
        ),
        Mode::Normal => {}
    }
}

fn help_line(app: &App) -> &'static str {
    match (&app.mode, app.view) {
        (Mode::ConfirmApprove(_), _) => "y confirm   any other key cancels",
        (Mode::ConfirmForce(_), _) => "F approve anyway   any other key cancels",
        (Mode::Feedback { .. }, _) => "type the feedback   Enter reject   Esc cancel",
        (_, View::List) => {
            "↑↓ move  Enter details  d diff  t tests  a approve  r reject  f filter  q quit"
        }
        (_, _) => "↑↓ scroll  Esc back  d diff  t tests  a approve  r reject  q quit",
    }
}

/// Age of an RFC 3339 time, as `45s`, `12m`, `3h`, `2d`.
pub fn age(created_at: &str, now: SystemTime) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(created_at.trim_end_matches('Z')) else {
        return "?".into();
    };
    let s = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The tests cell: counts (or the exit code), and the coverage unless it
/// has a column of its own.
fn tests(i: &ApprovalRow, with_coverage: bool) -> (String, Style) {
    let failed = !i.passed();
    let mut text = match (i.tests_passed, i.tests_failed) {
        (Some(p), Some(f)) => format!("{p}✓ {f}✗"),
        _ => format!(
            "exit {}",
            i.test_exit_code.map_or("-".into(), |c| c.to_string())
        ),
    };
    if let (Some(c), true) = (i.coverage, with_coverage) {
        text.push_str(&format!(" {c:.0}%"));
    }
    let color = if failed { Color::Red } else { Color::Green };
    (text, Style::new().fg(color))
}

fn list(app: &App, f: &mut Frame, area: Rect) {
    if app.items.is_empty() {
        let msg = if app.filter == Filter::Pending {
            "Nothing waits for you. New submissions appear here by themselves.\n\nAgencies queue work with `agency submit`; press f to see decided items."
        } else {
            "No items with this status. Press f for the next filter."
        };
        f.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::TOP).title("queue")),
            area,
        );
        return;
    }
    // Only the rows that fit are built: ten thousand items cost no more.
    let visible = area.height.saturating_sub(2).max(1) as usize;
    let start = app.selected.saturating_sub(visible.saturating_sub(1));
    // Wide terminals give coverage and the demo link columns of their own.
    let wide = area.width >= 120;
    let rows = app
        .items
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(n, i)| item_row(app, n, i, wide));
    // The demo link is worth showing whole: as wide as the longest (to 40).
    let demo_width = app
        .items
        .iter()
        .skip(start)
        .take(visible)
        .filter_map(|i| i.demo.as_ref().map(|d| d.chars().count()))
        .max()
        .unwrap_or(0)
        .clamp(4, 40) as u16;
    let (widths, header) = columns(wide, demo_width);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().bold().underlined()))
        .block(Block::new().borders(Borders::TOP).title(format!(
            "{} of {}",
            app.selected + 1,
            app.items.len()
        )));
    f.render_widget(table, area);
}

/// The row of item `n` of the queue.
fn item_row<'a>(app: &App, n: usize, i: &'a ApprovalRow, wide: bool) -> Row<'a> {
    let (t, ts) = tests(i, !wide);
    let changes = Cell::from(Line::from(vec![
        Span::from(format!("{}f ", i.files_changed)),
        Span::from(format!("+{}", i.insertions)).fg(Color::Green),
        Span::from(format!(" -{}", i.deletions)).fg(Color::Red),
    ]));
    let mut cells = vec![
        Cell::from(format!("#{}", i.id)),
        Cell::from(i.agency.clone()),
        Cell::from(i.title.clone()),
        Cell::from(i.branch.clone()),
        Cell::from(t).style(ts),
    ];
    if wide {
        let cov = i.coverage.map_or(String::new(), |c| format!("{c:.0}%"));
        cells.push(Cell::from(cov));
    }
    cells.push(changes);
    cells.push(Cell::from(age(&i.created_at, app.now)));
    if wide {
        cells.push(Cell::from(i.demo.clone().unwrap_or_default()));
    }
    // Decided items are dim; the selection shows on top of that.
    let mut style = Style::new();
    if i.status != ApprovalStatus::Pending {
        style = style.add_modifier(Modifier::DIM);
    }
    if n == app.selected {
        style = style.add_modifier(Modifier::REVERSED);
    }
    Row::new(cells).style(style)
}

/// The queue's column widths and headings; wide terminals get coverage
/// and the demo link (`demo_width` wide) too.
fn columns(wide: bool, demo_width: u16) -> (Vec<Constraint>, Vec<&'static str>) {
    if wide {
        (
            vec![
                Constraint::Length(6),
                Constraint::Length(12),
                Constraint::Fill(2),
                Constraint::Fill(1),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Length(18),
                Constraint::Length(4),
                Constraint::Length(demo_width),
            ],
            vec![
                "ID", "AGENCY", "TITLE", "BRANCH", "TESTS", "COV", "CHANGES", "AGE", "DEMO",
            ],
        )
    } else {
        (
            vec![
                Constraint::Length(6),
                Constraint::Length(12),
                Constraint::Fill(2),
                Constraint::Fill(1),
                Constraint::Length(13),
                Constraint::Length(14),
                Constraint::Length(4),
            ],
            vec!["ID", "AGENCY", "TITLE", "BRANCH", "TESTS", "CHANGES", "AGE"],
        )
    }
}

fn detail(app: &App, f: &mut Frame, area: Rect) {
    let Some(i) = app.current() else {
        return;
    };
    let (t, ts) = tests(i, true);
    let field = |k: &str, v: String| {
        Line::from(vec![Span::from(format!("{k:>10}  ")).dim(), Span::from(v)])
    };
    let mut lines = vec![
        Line::from(format!("#{} {}", i.id, i.title)).bold(),
        Line::from(""),
        field("agency", i.agency.clone()),
        field("task", i.task.clone()),
        field("status", i.status.to_string()),
        field(
            "branch",
            format!("{} @ {}", i.branch, &i.commit[..i.commit.len().min(10)]),
        ),
        field("into", i.base_branch.clone()),
        Line::from(vec![
            Span::from(format!("{:>10}  ", "tests")).dim(),
            Span::styled(t, ts),
        ]),
        field(
            "coverage",
            i.coverage.map_or("unknown".into(), |c| format!("{c}%")),
        ),
        field(
            "changes",
            format!(
                "{} files, +{} -{}",
                i.files_changed, i.insertions, i.deletions
            ),
        ),
        field("demo", i.demo.clone().unwrap_or_else(|| "none".into())),
        field("age", age(&i.created_at, app.now)),
        field(
            "test run",
            format!("`{}` in {:.1}s", i.test_command, i.test_seconds),
        ),
    ];
    if let Some(p) = i.previous_id {
        lines.push(field("replaces", format!("#{p}")));
    }
    if let Some(fb) = &i.feedback {
        lines.push(field("feedback", fb.clone()));
    }
    if let Some(by) = &i.decided_by {
        lines.push(field(
            "decided",
            format!("by {by} at {}", i.decided_at.as_deref().unwrap_or("?")),
        ));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::TOP).title("details")),
        area,
    );
}

fn text(app: &App, f: &mut Frame, area: Rect, title: &str, diff: bool) {
    let height = area.height.saturating_sub(1) as usize;
    let lines: Vec<Line> = app
        .text
        .iter()
        .skip(app.scroll)
        .take(height)
        .map(|l| {
            let color = match l.chars().next() {
                Some('+') if diff => Some(Color::Green),
                Some('-') if diff => Some(Color::Red),
                Some('@') if diff => Some(Color::Cyan),
                _ => None,
            };
            match color {
                Some(c) => Line::from(l.as_str()).fg(c),
                None => Line::from(l.as_str()),
            }
        })
        .collect();
    let id = app.current().map_or(0, |i| i.id);
    f.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title(format!(
            "{title} of #{id} — line {} of {}",
            (app.scroll + 1).min(app.text.len().max(1)),
            app.text.len()
        ))),
        area,
    );
}

fn popup(f: &mut Frame, title: &str, lines: Vec<Line>) {
    popup_of_width(f, title, lines, 70);
}

/// A bordered box over the middle of the screen, at most `width` wide and
/// as high as `lines` wrap to.
pub(crate) fn popup_of_width(f: &mut Frame, title: &str, lines: Vec<Line>, width: u16) {
    let area = f.area();
    let w = area.width.saturating_sub(4).min(width);
    // Room for the lines as they wrap inside the border.
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let h = (rows as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height.saturating_sub(h)) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title.to_string())),
        rect,
    );
}
