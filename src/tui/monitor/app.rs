//! The monitor's state, its actions and `update`: keys become actions, only
//! `update` changes state, and what touches the outside world (approving,
//! answering a prompt, restarting, retrying, jumping to a pane, reading the
//! registry) comes back as effects for the event loop.

use std::collections::HashSet;
use std::time::SystemTime;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::monitor::{Kind, NeedsYou, Snapshot};
use crate::store::ApprovalRow;

/// An answer to a permission prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Yes,
    No,
    Always,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Yes => "yes",
            Choice::No => "no",
            Choice::Always => "always",
        }
    }
}

/// A decision the human confirms with `y` (`F` for a forced approval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve(i64),
    /// Approve although its tests failed.
    Force(i64),
    Answer {
        agency: String,
        agent: String,
        choice: Choice,
        question: Option<String>,
    },
    /// Start the agency's exited agents again (`status NAME --restart`).
    Restart {
        agency: String,
        agent: String,
    },
    /// Queue a failed message again.
    Retry(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Confirm(Decision),
    Feedback { id: i64, input: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Main,
    /// The selected row in full (an approval with its record).
    Detail,
    Diff,
}

/// What a row of the screen stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Row {
    /// An item of `needs_you`, by index.
    Need(usize),
    Agency(usize),
    /// An agent of an expanded agency: (agency index, agent index).
    Agent(usize, usize),
}

/// A row's identity across refreshes, so the selection stays on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Need(Kind, String, Option<String>, Option<i64>),
    Agency(String),
    Agent(String, String),
}

#[derive(Debug, Clone)]
pub enum Action {
    Move(isize),
    Top,
    Bottom,
    /// Enter: details of a needs-you row; opens or closes an agency.
    Enter,
    Back,
    Diff,
    AskApprove,
    AskReject,
    AskAnswer(Choice),
    /// `R`: restart an exited agent, or retry a failed message.
    AskAgain,
    Jump,
    Confirmed,
    ConfirmedForce,
    Cancel,
    Type(char),
    Erase,
    SubmitFeedback,
    Quit,
    Loaded(Box<Snapshot>),
    /// The approval record for the detail view.
    Approval(Box<ApprovalRow>),
    Text(Vec<String>),
    /// How a decision went: a message, or an error to show.
    Decided(Result<String, String>),
    /// A jump to a pane: done (a message), or the command to run after
    /// the screen closes (outside tmux), or an error.
    Jumped(Result<Jumped, String>),
    /// Something went wrong that changes nothing else (a refresh failed).
    Problem(String),
    Tick(SystemTime),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jumped {
    Switched(String),
    /// Not inside tmux: quit and print this.
    Attach(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Reload,
    LoadApproval(i64),
    LoadDiff(i64),
    Decide(Decision),
    Reject(i64, String),
    Jump {
        agency: String,
        agent: Option<String>,
    },
}

/// Totals over every agency, counted once per refresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub agents: usize,
    pub idle: usize,
    pub busy: usize,
    pub waiting: usize,
    pub exited: usize,
}

#[derive(Debug, Clone)]
pub struct App {
    pub snap: Snapshot,
    pub totals: Totals,
    pub rows: Vec<Row>,
    pub selected: usize,
    pub expanded: HashSet<String>,
    pub view: View,
    pub approval: Option<ApprovalRow>,
    pub text: Vec<String>,
    pub scroll: usize,
    pub mode: Mode,
    /// The last outcome: `(is_error, message)`.
    pub status: Option<(bool, String)>,
    pub now: SystemTime,
    pub quit: bool,
    /// Printed once the screen has closed (the attach command).
    pub exit_message: Option<String>,
}

impl App {
    pub fn new(now: SystemTime) -> App {
        App {
            snap: Snapshot::default(),
            totals: Totals::default(),
            rows: Vec::new(),
            selected: 0,
            expanded: HashSet::new(),
            view: View::Main,
            approval: None,
            text: Vec::new(),
            scroll: 0,
            mode: Mode::Normal,
            status: None,
            now,
            quit: false,
            exit_message: None,
        }
    }

    pub fn current(&self) -> Option<&Row> {
        self.rows.get(self.selected)
    }

    /// The needs-you item selected, if a needs-you row is.
    pub fn need(&self) -> Option<&NeedsYou> {
        match self.current()? {
            Row::Need(i) => self.snap.needs_you.get(*i),
            _ => None,
        }
    }

    /// The (agency, agent, state, question) of the agent a row is about.
    fn agent(&self) -> Option<(String, String, String, Option<String>)> {
        match self.current()? {
            Row::Need(i) => {
                let n = self.snap.needs_you.get(*i)?;
                let agent = n.agent.clone()?;
                let state = match n.kind {
                    Kind::Waiting => "waiting",
                    Kind::Exited => "exited",
                    _ => "",
                };
                let question = self
                    .live_question(&n.agency, &agent)
                    .or_else(|| n.what.strip_prefix("asks: ").map(str::to_string));
                Some((n.agency.clone(), agent, state.into(), question))
            }
            Row::Agent(a, g) => {
                let agency = self.snap.agencies.get(*a)?;
                let agent = agency.agents.get(*g)?;
                Some((
                    agency.name.clone(),
                    agent.name.clone(),
                    agent.state.clone(),
                    agent.question.clone(),
                ))
            }
            Row::Agency(_) => None,
        }
    }

    fn live_question(&self, agency: &str, agent: &str) -> Option<String> {
        self.snap
            .agencies
            .iter()
            .find(|a| a.name == agency)?
            .agents
            .iter()
            .find(|a| a.name == agent)?
            .question
            .clone()
    }

    fn key_of(&self, row: &Row) -> Option<Key> {
        Some(match row {
            Row::Need(i) => {
                let n = self.snap.needs_you.get(*i)?;
                Key::Need(n.kind, n.agency.clone(), n.agent.clone(), n.id)
            }
            Row::Agency(a) => Key::Agency(self.snap.agencies.get(*a)?.name.clone()),
            Row::Agent(a, g) => {
                let agency = self.snap.agencies.get(*a)?;
                Key::Agent(agency.name.clone(), agency.agents.get(*g)?.name.clone())
            }
        })
    }

    fn selected_key(&self) -> Option<Key> {
        self.current().cloned().and_then(|r| self.key_of(&r))
    }

    /// Rebuilds the rows (after a refresh or an agency opened), keeping
    /// the selection on the same thing.
    fn rebuild(&mut self, keep: Option<Key>) {
        let mut rows: Vec<Row> = (0..self.snap.needs_you.len()).map(Row::Need).collect();
        for (i, a) in self.snap.agencies.iter().enumerate() {
            rows.push(Row::Agency(i));
            if self.expanded.contains(&a.name) {
                rows.extend((0..a.agents.len()).map(|g| Row::Agent(i, g)));
            }
        }
        self.rows = rows;
        let found = keep.and_then(|k| {
            self.rows
                .iter()
                .position(|r| self.key_of(r).as_ref() == Some(&k))
        });
        self.selected = found.unwrap_or(self.selected.min(self.rows.len().saturating_sub(1)));
    }

    /// The action a key stands for in the current mode.
    pub fn key(&self, k: KeyEvent) -> Option<Action> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        match &self.mode {
            Mode::Confirm(Decision::Force(_)) => Some(match k.code {
                KeyCode::Char('F') => Action::ConfirmedForce,
                _ => Action::Cancel,
            }),
            Mode::Confirm(_) => Some(match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Action::Confirmed,
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
                KeyCode::Enter | KeyCode::Char(' ') => Some(Action::Enter),
                KeyCode::Esc | KeyCode::Backspace => Some(Action::Back),
                KeyCode::Char('d') => Some(Action::Diff),
                KeyCode::Char('a') => Some(Action::AskApprove),
                KeyCode::Char('r') => Some(Action::AskReject),
                KeyCode::Char('y') => Some(Action::AskAnswer(Choice::Yes)),
                KeyCode::Char('n') => Some(Action::AskAnswer(Choice::No)),
                KeyCode::Char('A') => Some(Action::AskAnswer(Choice::Always)),
                KeyCode::Char('R') => Some(Action::AskAgain),
                KeyCode::Char('p') => Some(Action::Jump),
                _ => None,
            },
        }
    }

    fn error(&mut self, msg: impl Into<String>) {
        self.status = Some((true, msg.into()));
    }

    /// The only place state changes.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => self.quit = true,
            Action::Move(n) => {
                if self.view == View::Main {
                    let max = self.rows.len().saturating_sub(1) as isize;
                    self.selected = (self.selected as isize + n).clamp(0, max) as usize;
                } else {
                    let max = self.text.len().saturating_sub(1) as isize;
                    self.scroll = (self.scroll as isize + n).clamp(0, max) as usize;
                }
            }
            Action::Top => {
                self.selected = 0;
                self.scroll = 0;
            }
            Action::Bottom => {
                self.selected = self.rows.len().saturating_sub(1);
                self.scroll = self.text.len().saturating_sub(1);
            }
            Action::Enter => return self.enter(),
            Action::Back => {
                self.view = View::Main;
                self.scroll = 0;
            }
            Action::Diff => match self.need() {
                Some(n) if n.kind == Kind::Approval => {
                    let id = n.id.unwrap_or_default();
                    self.view = View::Diff;
                    self.scroll = 0;
                    self.text.clear();
                    return vec![Effect::LoadDiff(id)];
                }
                _ => self.error("d shows the diff of an approval"),
            },
            Action::AskApprove => match self.need() {
                Some(n) if n.kind == Kind::Approval => {
                    let id = n.id.unwrap_or_default();
                    self.mode = Mode::Confirm(if n.tests_failed {
                        Decision::Force(id)
                    } else {
                        Decision::Approve(id)
                    });
                }
                _ => self.error("a approves an approval; at a prompt: y yes, n no, A always"),
            },
            Action::AskReject => match self.need() {
                Some(n) if n.kind == Kind::Approval => {
                    self.mode = Mode::Feedback {
                        id: n.id.unwrap_or_default(),
                        input: String::new(),
                    }
                }
                _ => self.error("r rejects an approval"),
            },
            Action::AskAnswer(choice) => match self.agent() {
                Some((agency, agent, state, question)) if state == "waiting" => {
                    self.mode = Mode::Confirm(Decision::Answer {
                        agency,
                        agent,
                        choice,
                        question,
                    })
                }
                _ => self.error("y, n and A answer an agent waiting at a prompt"),
            },
            Action::AskAgain => {
                if let Some(n) = self.need().filter(|n| n.kind == Kind::Failed) {
                    self.mode = Mode::Confirm(Decision::Retry(n.id.unwrap_or_default()));
                } else {
                    match self.agent() {
                        Some((agency, agent, state, _)) if state == "exited" => {
                            self.mode = Mode::Confirm(Decision::Restart { agency, agent })
                        }
                        _ => self.error("R restarts an exited agent or retries a failed message"),
                    }
                }
            }
            Action::Jump => {
                let target = match self.current() {
                    Some(Row::Agency(a)) => {
                        self.snap.agencies.get(*a).map(|a| (a.name.clone(), None))
                    }
                    Some(Row::Need(_)) => self.need().map(|n| (n.agency.clone(), n.agent.clone())),
                    Some(Row::Agent(..)) => self.agent().map(|(a, g, _, _)| (a, Some(g))),
                    None => None,
                };
                match target {
                    Some((agency, agent)) if !agency.is_empty() => {
                        return vec![Effect::Jump { agency, agent }]
                    }
                    _ => self.error("nothing to jump to here"),
                }
            }
            Action::Confirmed => {
                if let Mode::Confirm(d) = std::mem::replace(&mut self.mode, Mode::Normal) {
                    if !matches!(d, Decision::Force(_)) {
                        return vec![Effect::Decide(d)];
                    }
                }
            }
            Action::ConfirmedForce => {
                if let Mode::Confirm(Decision::Force(id)) = self.mode {
                    self.mode = Mode::Normal;
                    return vec![Effect::Decide(Decision::Force(id))];
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
                        self.error("type the feedback first (Esc cancels)");
                    } else {
                        let effect = Effect::Reject(*id, input.trim().to_string());
                        self.mode = Mode::Normal;
                        return vec![effect];
                    }
                }
            }
            Action::Loaded(snap) => {
                let keep = self.selected_key();
                self.snap = *snap;
                let mut t = Totals::default();
                for a in &self.snap.agencies {
                    t.agents += a.agents.len();
                    t.idle += a.idle;
                    t.busy += a.busy;
                    t.waiting += a.waiting;
                    t.exited += a.exited;
                }
                self.totals = t;
                self.rebuild(keep);
            }
            Action::Approval(a) => self.approval = Some(*a),
            Action::Text(lines) => self.text = lines,
            Action::Decided(result) => {
                self.status = Some(match result {
                    Ok(m) => (false, m),
                    Err(e) => (true, e),
                });
                self.view = View::Main;
                return vec![Effect::Reload];
            }
            Action::Jumped(result) => match result {
                Ok(Jumped::Switched(m)) => self.status = Some((false, m)),
                Ok(Jumped::Attach(cmd)) => {
                    self.exit_message = Some(cmd);
                    self.quit = true;
                }
                Err(e) => self.error(e),
            },
            Action::Problem(e) => self.error(e),
            Action::Tick(now) => {
                self.now = now;
                return vec![Effect::Reload];
            }
        }
        Vec::new()
    }

    fn enter(&mut self) -> Vec<Effect> {
        match self.current().cloned() {
            Some(Row::Agency(a)) => {
                if let Some(name) = self.snap.agencies.get(a).map(|a| a.name.clone()) {
                    let keep = self.selected_key();
                    if !self.expanded.remove(&name) {
                        self.expanded.insert(name);
                    }
                    self.rebuild(keep);
                }
                Vec::new()
            }
            Some(Row::Need(_)) => {
                self.view = View::Detail;
                self.scroll = 0;
                self.approval = None;
                match self.need() {
                    Some(n) if n.kind == Kind::Approval => {
                        vec![Effect::LoadApproval(n.id.unwrap_or_default())]
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }
}
