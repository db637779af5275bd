//! The task graph's rules, free of SQL: states and the moves between them,
//! cycle checks, readiness, which agency a capability goes to, which ready
//! task is best, and the tree `task list` draws.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a task is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Has needs not done yet
    Waiting,
    /// Can be claimed
    Ready,
    /// An agent works on it
    Claimed,
    /// Submitted for the human's approval
    Review,
    /// Finished
    Done,
    /// Stopped by an agent, with a reason
    Blocked,
    /// Dropped
    Cancelled,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Waiting,
        State::Ready,
        State::Claimed,
        State::Review,
        State::Done,
        State::Blocked,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Ready => "ready",
            State::Claimed => "claimed",
            State::Review => "review",
            State::Done => "done",
            State::Blocked => "blocked",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished one way or the other: a need in this state no longer holds
    /// anything back.
    pub fn resolved(self) -> bool {
        matches!(self, State::Done | State::Cancelled)
    }

    pub fn open(self) -> bool {
        !self.resolved()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    Default,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// When nothing else is ready
    Low,
    /// The default
    #[default]
    Normal,
    /// Before normal work
    High,
    /// Before everything else
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Higher goes first.
    pub fn rank(self) -> i64 {
        self as i64
    }
}

/// What is done to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Claim,
    Done,
    Block,
    Cancel,
    /// Back to waiting/ready: a finished, cancelled or blocked task again,
    /// or a claim given up.
    Reopen,
    /// `agency submit --task ID`.
    Submit,
    /// `agency reject` of the item it is in review under.
    Reject,
    /// `agency handoff --task ID` to another agency.
    Handoff,
    /// The claimer's pane has been gone longer than the lease.
    Reclaim,
}

/// Why a move is refused, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub hint: String,
}

/// What a task looks like to the rules.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub state: State,
    /// Some of its needs are not done or cancelled yet.
    pub unresolved: bool,
    /// An agent holds it (or held it before it was blocked or submitted).
    pub has_agent: bool,
}

/// Where `action` takes a task, or why it may not. `Ok(same state)` means
/// nothing changes (doing it twice is harmless).
pub fn transition(id: i64, f: Facts, action: Action) -> Result<State, Refusal> {
    use State::*;
    let waiting_or_ready = if f.unresolved { Waiting } else { Ready };
    let refuse = |why: String, hint: String| Err(Refusal { message: why, hint });
    let finished = |s: State| {
        refuse(
            format!("task {id} is {s}: it cannot be {}", past(action)),
            format!("reopen it first: agency task reopen {id}"),
        )
    };
    match (action, f.state) {
        (Action::Claim, Ready) => Ok(Claimed),
        (Action::Claim, Waiting) => refuse(
            format!("task {id} is waiting for tasks it needs"),
            format!("see which with `agency task show {id}`; it becomes ready when they are done"),
        ),
        (Action::Claim, Claimed | Review) => refuse(
            format!("task {id} is already {}", f.state),
            format!("see who holds it: agency task show {id}"),
        ),
        (Action::Claim, Blocked) => refuse(
            format!("task {id} is blocked"),
            format!("see why with `agency task show {id}`; `agency task reopen {id}` makes it ready again"),
        ),
        // In review only the human's decision moves it: `approve` makes it
        // done (its dependents start on work the base branch has).
        (Action::Done | Action::Cancel | Action::Reopen, Review) => refuse(
            format!("task {id} waits for the human's decision on its approval item"),
            "approve or reject the item (agency approvals) first".into(),
        ),
        (Action::Done, Ready | Claimed | Blocked) => Ok(Done),
        (Action::Done, Waiting) => refuse(
            format!("task {id} still waits for tasks it needs"),
            format!("finish or cancel those first (agency task show {id}), or change its needs with `agency task edit {id} --needs ...`"),
        ),
        (Action::Done, Done) | (Action::Cancel, Cancelled) => Ok(f.state),
        (Action::Claim | Action::Done | Action::Block | Action::Submit, Cancelled) => {
            finished(Cancelled)
        }
        (Action::Claim | Action::Block | Action::Submit | Action::Cancel, Done) => finished(Done),
        (Action::Block, Ready | Claimed | Review | Blocked) => Ok(Blocked),
        (Action::Block, Waiting) => refuse(
            format!("task {id} is waiting for tasks it needs; only work that started can be blocked"),
            format!("cancel it (agency task cancel {id}) or change its needs (agency task edit {id} --needs ...)"),
        ),
        (Action::Cancel, _) => Ok(Cancelled),
        (Action::Reopen, Done | Cancelled | Blocked | Claimed) => Ok(waiting_or_ready),
        (Action::Reopen, Waiting | Ready) => Ok(f.state),
        (Action::Submit, Ready | Claimed | Blocked | Review) => Ok(Review),
        (Action::Submit, Waiting) => refuse(
            format!("task {id} still waits for tasks it needs"),
            format!("finish those first (agency task show {id}), or submit with a free-text --task label"),
        ),
        (Action::Reject, Review) => Ok(if f.has_agent { Claimed } else { Ready }),
        (Action::Reject, s) => Ok(s),
        (Action::Handoff, Claimed) => Ok(Ready),
        (Action::Handoff, Waiting | Ready | Blocked) => Ok(f.state),
        (Action::Handoff, Review) => refuse(
            format!("task {id} is in review"),
            "wait for the human's decision (agency approvals), or hand off with a free-text --task label".into(),
        ),
        (Action::Handoff, s @ (Done | Cancelled)) => finished(s),
        (Action::Reclaim, Claimed) => Ok(Ready),
        (Action::Reclaim, s) => Ok(s),
    }
}

fn past(a: Action) -> &'static str {
    match a {
        Action::Done => "finished",
        Action::Block => "blocked",
        Action::Submit => "submitted",
        Action::Handoff => "handed off",
        Action::Claim => "claimed",
        Action::Cancel => "cancelled",
        _ => "changed",
    }
}

/// The state a task starts in, or returns to when it may go on.
pub fn readiness(need_states: &[State]) -> State {
    if need_states.iter().all(|s| s.resolved()) {
        State::Ready
    } else {
        State::Waiting
    }
}

/// Whether `task` needing `needs` closes a loop in the graph whose edges
/// `needs_of` gives (task → what it needs). Returns the loop, from `task`
/// back to `task`, if so.
pub fn find_cycle(
    task: i64,
    needs: &[i64],
    mut needs_of: impl FnMut(i64) -> Vec<i64>,
) -> Option<Vec<i64>> {
    if needs.contains(&task) {
        return Some(vec![task, task]);
    }
    // Depth-first from each new need, remembering how we got there.
    let mut came_from: HashMap<i64, i64> = HashMap::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut stack: Vec<i64> = Vec::new();
    for &n in needs {
        if seen.insert(n) {
            came_from.insert(n, task);
            stack.push(n);
        }
    }
    while let Some(at) = stack.pop() {
        for next in needs_of(at) {
            if next == task {
                let mut path = vec![task, at];
                let mut cur = at;
                while let Some(&prev) = came_from.get(&cur) {
                    if prev == task {
                        break;
                    }
                    path.push(prev);
                    cur = prev;
                }
                // Collected backwards from the loop's end.
                path[1..].reverse();
                path.push(task);
                return Some(path);
            }
            if seen.insert(next) {
                came_from.insert(next, at);
                stack.push(next);
            }
        }
    }
    None
}

/// Orders `nodes` so each comes after everything it needs; a loop (or a
/// node needing itself) is returned as `Err(loop)`.
pub fn topo_order<K: Ord + Clone>(needs: &BTreeMap<K, Vec<K>>) -> Result<Vec<K>, Vec<K>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<K: Ord + Clone>(
        k: &K,
        needs: &BTreeMap<K, Vec<K>>,
        marks: &mut BTreeMap<K, Mark>,
        path: &mut Vec<K>,
        out: &mut Vec<K>,
    ) -> Result<(), Vec<K>> {
        match marks.get(k) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == k).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(k.clone());
                return Err(cycle);
            }
            None => {}
        }
        marks.insert(k.clone(), Mark::Visiting);
        path.push(k.clone());
        for n in needs.get(k).into_iter().flatten() {
            visit(n, needs, marks, path, out)?;
        }
        path.pop();
        marks.insert(k.clone(), Mark::Done);
        out.push(k.clone());
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::with_capacity(needs.len());
    for k in needs.keys() {
        visit(k, needs, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// A running agency that might take a capability's task.
#[derive(Debug, Clone)]
pub struct Offer {
    pub agency: String,
    pub capabilities: Vec<String>,
    /// Its tasks not done or cancelled.
    pub open: i64,
}

/// The agency a task needing `capability` goes to: among those that have
/// it, the one with the fewest open tasks (then by name).
pub fn choose_agency<'a>(capability: &str, offers: &'a [Offer]) -> Option<&'a str> {
    offers
        .iter()
        .filter(|o| o.capabilities.iter().any(|c| c == capability))
        .min_by(|a, b| a.open.cmp(&b.open).then_with(|| a.agency.cmp(&b.agency)))
        .map(|o| o.agency.as_str())
}

/// A ready task an agent might take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub rank: i64,
    /// How many open tasks wait for it: finishing it frees them.
    pub dependents: i64,
}

/// The best of the ready tasks: the highest priority, then the one most
/// others wait for, then the oldest.
pub fn best(candidates: &[Candidate]) -> Option<i64> {
    candidates
        .iter()
        .max_by(|a, b| {
            a.rank
                .cmp(&b.rank)
                .then(a.dependents.cmp(&b.dependents))
                .then(b.id.cmp(&a.id))
        })
        .map(|c| c.id)
}

/// The order and indentation of a tree of tasks by parent: each row's
/// index into `rows` and the prefix drawn before its title. A task whose
/// parent is not among `rows` is a root.
pub fn tree(rows: &[(i64, Option<i64>)]) -> Vec<(usize, String)> {
    let present: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    let mut children: BTreeMap<Option<i64>, Vec<usize>> = BTreeMap::new();
    for (i, (_, parent)) in rows.iter().enumerate() {
        let p = parent.filter(|p| present.contains(p));
        children.entry(p).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| rows[i].0);
    }
    fn walk(
        at: Option<i64>,
        lead: &str,
        rows: &[(i64, Option<i64>)],
        children: &BTreeMap<Option<i64>, Vec<usize>>,
        out: &mut Vec<(usize, String)>,
        seen: &mut HashSet<usize>,
    ) {
        let Some(list) = children.get(&at) else {
            return;
        };
        for (n, &i) in list.iter().enumerate() {
            if !seen.insert(i) {
                continue;
            }
            let last = n + 1 == list.len();
            let (here, below) = match (at, last) {
                (None, _) => (String::new(), String::new()),
                (Some(_), false) => (format!("{lead}├─ "), format!("{lead}│  ")),
                (Some(_), true) => (format!("{lead}└─ "), format!("{lead}   ")),
            };
            out.push((i, here));
            walk(Some(rows[i].0), &below, rows, children, out, seen);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut seen = HashSet::new();
    walk(None, "", rows, &children, &mut out, &mut seen);
    // Rows on a parent loop are never reached from a root: list them flat.
    for i in 0..rows.len() {
        if seen.insert(i) {
            out.push((i, String::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(state: State) -> Facts {
        Facts {
            state,
            unresolved: false,
            has_agent: true,
        }
    }

    #[test]
    fn moves_follow_the_rules() {
        use Action as A;
        use State::*;
        assert_eq!(transition(1, facts(Ready), A::Claim), Ok(Claimed));
        assert!(transition(1, facts(Claimed), A::Claim).is_err());
        assert!(transition(1, facts(Waiting), A::Claim).is_err());
        assert!(transition(1, facts(Waiting), A::Done).is_err());
        assert_eq!(transition(1, facts(Done), A::Done), Ok(Done));
        assert!(transition(1, facts(Done), A::Cancel).is_err());
        assert_eq!(transition(1, facts(Claimed), A::Submit), Ok(Review));
        assert_eq!(transition(1, facts(Review), A::Reject), Ok(Claimed));
        let unclaimed = Facts {
            has_agent: false,
            ..facts(Review)
        };
        assert_eq!(transition(1, unclaimed, A::Reject), Ok(Ready));
        assert_eq!(transition(1, facts(Claimed), A::Handoff), Ok(Ready));
        assert!(transition(1, facts(Review), A::Handoff).is_err());
        assert_eq!(transition(1, facts(Claimed), A::Reclaim), Ok(Ready));
        assert_eq!(transition(1, facts(Done), A::Reclaim), Ok(Done));
        let pending = Facts {
            unresolved: true,
            ..facts(Cancelled)
        };
        assert_eq!(transition(1, pending, A::Reopen), Ok(Waiting));
        assert_eq!(transition(1, facts(Blocked), A::Reopen), Ok(Ready));
        assert!(transition(1, facts(Review), A::Reopen).is_err());
        // Only the human's decision finishes work under review.
        for a in [A::Done, A::Cancel] {
            let e = transition(5, facts(Review), a).unwrap_err();
            assert!(e.message.contains("the human's decision"), "{e:?}");
        }
        let e = transition(7, facts(Waiting), A::Done).unwrap_err();
        assert!(e.hint.contains("agency task show 7"), "{e:?}");
    }

    #[test]
    fn only_finished_needs_make_a_task_ready() {
        use State::*;
        assert_eq!(readiness(&[]), Ready);
        assert_eq!(readiness(&[Done, Cancelled]), Ready);
        assert_eq!(readiness(&[Done, Review]), Waiting);
        assert_eq!(readiness(&[Claimed]), Waiting);
    }

    #[test]
    fn cycles_and_self_edges_are_found() {
        // 3 needs 2, 2 needs 1.
        let g: HashMap<i64, Vec<i64>> = [(3, vec![2]), (2, vec![1]), (1, vec![])].into();
        let needs_of = |n: i64| g.get(&n).cloned().unwrap_or_default();
        assert_eq!(find_cycle(1, &[3], needs_of), Some(vec![1, 3, 2, 1]));
        assert_eq!(find_cycle(1, &[1], needs_of), Some(vec![1, 1]));
        assert_eq!(find_cycle(3, &[1], needs_of), None);
        assert_eq!(find_cycle(4, &[3, 2], needs_of), None);
        // A diamond is no loop.
        let d: HashMap<i64, Vec<i64>> = [(4, vec![2, 3]), (2, vec![1]), (3, vec![1])].into();
        assert_eq!(
            find_cycle(5, &[4], |n| d.get(&n).cloned().unwrap_or_default()),
            None
        );
    }

    #[test]
    fn topological_order_puts_needs_first_and_finds_loops() {
        let plan: BTreeMap<&str, Vec<&str>> = [
            ("deploy", vec!["test"]),
            ("test", vec!["front", "back"]),
            ("front", vec!["design"]),
            ("back", vec!["design"]),
            ("design", vec![]),
        ]
        .into();
        let order = topo_order(&plan).unwrap();
        let pos = |k| order.iter().position(|x| *x == k).unwrap();
        assert!(pos("design") < pos("front") && pos("front") < pos("test"));
        assert!(pos("back") < pos("test") && pos("test") < pos("deploy"));
        let looped: BTreeMap<&str, Vec<&str>> =
            [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])].into();
        assert_eq!(topo_order(&looped).unwrap_err(), vec!["a", "b", "c", "a"]);
        let selfish: BTreeMap<&str, Vec<&str>> = [("a", vec!["a"])].into();
        assert_eq!(topo_order(&selfish).unwrap_err(), vec!["a", "a"]);
    }

    #[test]
    fn capabilities_go_to_the_least_loaded_agency() {
        let offer = |a: &str, caps: &[&str], open| Offer {
            agency: a.into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            open,
        };
        let offers = [
            offer("A", &["backend"], 3),
            offer("B", &["backend", "qa"], 1),
            offer("C", &["qa"], 0),
            offer("D", &["backend"], 1),
        ];
        assert_eq!(choose_agency("backend", &offers), Some("B"));
        assert_eq!(choose_agency("qa", &offers), Some("C"));
        assert_eq!(choose_agency("ml", &offers), None);
    }

    #[test]
    fn the_best_task_is_urgent_then_unblocking_then_old() {
        let c = |id, rank, dependents| Candidate {
            id,
            rank,
            dependents,
        };
        assert_eq!(best(&[]), None);
        assert_eq!(best(&[c(1, 1, 0), c(2, 3, 0), c(3, 1, 9)]), Some(2));
        assert_eq!(best(&[c(1, 1, 0), c(2, 1, 2), c(3, 1, 1)]), Some(2));
        assert_eq!(best(&[c(5, 1, 0), c(4, 1, 0)]), Some(4));
    }

    #[test]
    fn the_tree_nests_children_under_parents() {
        let rows = [
            (1, None),
            (2, Some(1)),
            (3, Some(1)),
            (4, Some(2)),
            (5, None),
            (6, Some(99)),
        ];
        let drawn: Vec<(i64, String)> = tree(&rows)
            .into_iter()
            .map(|(i, p)| (rows[i].0, p))
            .collect();
        let want: Vec<(i64, String)> = [
            (1, ""),
            (2, "├─ "),
            (4, "│  └─ "),
            (3, "└─ "),
            (5, ""),
            (6, ""),
        ]
        .into_iter()
        .map(|(i, p)| (i, p.to_string()))
        .collect();
        assert_eq!(drawn, want);
        // A parent loop cannot hide rows.
        assert_eq!(tree(&[(1, Some(2)), (2, Some(1))]).len(), 2);
    }
}
