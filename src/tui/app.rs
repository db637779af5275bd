//! The approval screen's state, its actions, and `update`: keys become
//! actions, only `update` changes state, and what must touch the outside
//! world (git, the registry) comes back as effects for the event loop.

use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::ApprovalStatus;
use crate::store::ApprovalRow;

/// Which items the screen shows (and `approvals --status` lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Filter {
    Pending,
    Approved,
    Rejected,
    All,
}

impl Filter {
    pub fn status(self) -> Option<ApprovalStatus> {
        match self {
            Filter::Pending => Some(ApprovalStatus::Pending),
            Filter::Approved => Some(ApprovalStatus::Approved),
            Filter::Rejected => Some(ApprovalStatus::Rejected),
            Filter::All => None,
        }
    }

    pub fn label(self) -> &'static str {
        self.status().map_or("all", ApprovalStatus::as_str)
    }

    fn next(self) -> Filter {
        match self {
            Filter::Pending => Filter::Approved,
            Filter::Approved => Filter::Rejected,
            Filter::Rejected => Filter::All,
            Filter::All => Filter::Pending,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    List,
    Detail,
    Diff,
    Log,
}

/// A decision waiting for its confirmation: confirmation as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    ConfirmApprove(i64),
    /// Approving an item whose tests failed: only `F` confirms.
    ConfirmForce(i64),
    Feedback {
        id: i64,
        input: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Move(isize),
    Top,
    Bottom,
    Open(View),
    Back,
    CycleFilter,
    AskApprove,
    Confirmed,
    /// `F` on an item whose tests failed: approve it anyway.
    ConfirmedForce,
    Cancel,
    AskReject,
    Type(char),
    Erase,
    SubmitFeedback,
    Quit,
    /// Fresh items for the current filter, and the pending count.
    Loaded(Vec<ApprovalRow>, usize),
    /// The text of the diff or test log that was asked for.
    Text(Vec<String>),
    /// How a decision went: a message, or an error to show.
    Decided(Result<String, String>),
    Tick(SystemTime),
}

/// What the event loop must do for `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Reload,
    LoadDiff(i64),
    LoadLog(i64),
    /// Approve an item; `true`: even though its tests failed.
    Approve(i64, bool),
    Reject(i64, String),
}

#[derive(Debug, Clone)]
pub struct App {
    pub items: Vec<ApprovalRow>,
    pub pending: usize,
    pub filter: Filter,
    pub selected: usize,
    pub view: View,
    pub scroll: usize,
    pub text: Vec<String>,
    pub mode: Mode,
    /// The last outcome: `(is_error, message)`.
    pub status: Option<(bool, String)>,
    pub now: SystemTime,
    pub quit: bool,
}

impl App {
    pub fn new(filter: Filter, now: SystemTime) -> App {
        App {
            items: Vec::new(),
            pending: 0,
            filter,
            selected: 0,
            view: View::List,
            scroll: 0,
            text: Vec::new(),
            mode: Mode::Normal,
            status: None,
            now,
            quit: false,
        }
    }

    pub fn current(&self) -> Option<&ApprovalRow> {
        self.items.get(self.selected)
    }

    /// The action a key stands for in the current mode.
    pub fn key(&self, k: KeyEvent) -> Option<Action> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match &self.mode {
            // Only `y` confirms; anything else cancels.
            Mode::ConfirmApprove(_) => Some(match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Action::Confirmed,
                _ => Action::Cancel,
            }),
            // A deliberate key, not the `y` of habit.
            Mode::ConfirmForce(_) => Some(match k.code {
                KeyCode::Char('F') => Action::ConfirmedForce,
                _ => Action::Cancel,
            }),
            Mode::Feedback { .. } => match k.code {
                KeyCode::Enter => Some(Action::SubmitFeedback),
                KeyCode::Esc => Some(Action::Cancel),
                KeyCode::Backspace => Some(Action::Erase),
                KeyCode::Char(c) => Some(Action::Type(c)),
                _ => None,
            },
            Mode::Normal => match k.code {
                KeyCode::Char('q') => Some(Action::Quit),
                KeyCode::Up | KeyCode::Char('k') => Some(Action::Move(-1)),
                KeyCode::Down | KeyCode::Char('j') => Some(Action::Move(1)),
                KeyCode::PageUp => Some(Action::Move(-10)),
                KeyCode::PageDown => Some(Action::Move(10)),
                KeyCode::Home | KeyCode::Char('g') => Some(Action::Top),
                KeyCode::End | KeyCode::Char('G') => Some(Action::Bottom),
                KeyCode::Enter => Some(Action::Open(View::Detail)),
                KeyCode::Char('d') => Some(Action::Open(View::Diff)),
                KeyCode::Char('t') => Some(Action::Open(View::Log)),
                KeyCode::Esc | KeyCode::Backspace => Some(Action::Back),
                KeyCode::Char('f') => Some(Action::CycleFilter),
                KeyCode::Char('a') => Some(Action::AskApprove),
                KeyCode::Char('r') => Some(Action::AskReject),
                _ => None,
            },
        }
    }

    /// The only place state changes.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => self.quit = true,
            Action::Move(n) => {
                if matches!(self.view, View::Diff | View::Log) {
                    let max = self.text.len().saturating_sub(1);
                    self.scroll = (self.scroll as isize + n).clamp(0, max as isize) as usize;
                } else if !self.items.is_empty() {
                    let max = self.items.len() as isize - 1;
                    self.selected = (self.selected as isize + n).clamp(0, max) as usize;
                }
            }
            Action::Top => {
                self.selected = 0;
                self.scroll = 0;
            }
            Action::Bottom => {
                self.selected = self.items.len().saturating_sub(1);
                self.scroll = self.text.len().saturating_sub(1);
            }
            Action::Open(view) => {
                let Some(id) = self.current().map(|i| i.id) else {
                    return Vec::new();
                };
                self.view = view;
                self.scroll = 0;
                self.text.clear();
                return match view {
                    View::Diff => vec![Effect::LoadDiff(id)],
                    View::Log => vec![Effect::LoadLog(id)],
                    _ => Vec::new(),
                };
            }
            Action::Back => {
                self.view = View::List;
                self.scroll = 0;
            }
            Action::CycleFilter => {
                self.filter = self.filter.next();
                self.selected = 0;
                self.view = View::List;
                return vec![Effect::Reload];
            }
            Action::AskApprove => {
                if let Some(i) = self
                    .current()
                    .filter(|i| i.status == ApprovalStatus::Pending)
                {
                    self.mode = if !i.passed() {
                        Mode::ConfirmForce(i.id)
                    } else {
                        Mode::ConfirmApprove(i.id)
                    };
                } else {
                    self.status = Some((true, "only a pending item can be approved".into()));
                }
            }
            Action::AskReject => {
                if let Some(i) = self
                    .current()
                    .filter(|i| i.status == ApprovalStatus::Pending)
                {
                    self.mode = Mode::Feedback {
                        id: i.id,
                        input: String::new(),
                    };
                } else {
                    self.status = Some((true, "only a pending item can be rejected".into()));
                }
            }
            Action::Confirmed => {
                if let Mode::ConfirmApprove(id) = self.mode {
                    self.mode = Mode::Normal;
                    return vec![Effect::Approve(id, false)];
                }
            }
            Action::ConfirmedForce => {
                if let Mode::ConfirmForce(id) = self.mode {
                    self.mode = Mode::Normal;
                    return vec![Effect::Approve(id, true)];
                }
            }
            Action::Cancel => {
                if self.mode != Mode::Normal {
                    self.status = Some((false, "cancelled".into()));
                }
                self.mode = Mode::Normal;
            }
            Action::Type(c) => {
                if let Mode::Feedback { input, .. } = &mut self.mode {
                    input.push(c);
                }
            }
            Action::Erase => {
                if let Mode::Feedback { input, .. } = &mut self.mode {
                    input.pop();
                }
            }
            Action::SubmitFeedback => {
                if let Mode::Feedback { id, input } = &self.mode {
                    if input.trim().is_empty() {
                        self.status = Some((true, "type the feedback first (Esc cancels)".into()));
                    } else {
                        let effect = Effect::Reject(*id, input.trim().to_string());
                        self.mode = Mode::Normal;
                        return vec![effect];
                    }
                }
            }
            Action::Loaded(items, pending) => {
                // Keep the selection on the same item when others arrive.
                let keep = self.current().map(|i| i.id);
                self.items = items;
                self.pending = pending;
                self.selected = keep
                    .and_then(|id| self.items.iter().position(|i| i.id == id))
                    .unwrap_or_else(|| self.selected.min(self.items.len().saturating_sub(1)));
                if self.items.is_empty() && self.view != View::List {
                    self.view = View::List;
                }
            }
            Action::Text(lines) => self.text = lines,
            Action::Decided(result) => {
                self.status = Some(match result {
                    Ok(m) => (false, m),
                    Err(e) => (true, e),
                });
                return vec![Effect::Reload];
            }
            Action::Tick(now) => {
                self.now = now;
                return vec![Effect::Reload];
            }
        }
        Vec::new()
    }
}
