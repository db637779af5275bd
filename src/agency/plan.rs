//! The pure half of bringing an agency up: from what should run (each
//! agent's and utility window's slot, in window order), the panes its tmux
//! session has now and the registry's rows of before, the tmux steps that
//! make what is missing and restart what must be. No tmux, no files: the
//! caller runs the steps (`agency::bring_up`).
//!
//! Two passes, because a split needs the pane it splits: pass 1 makes the
//! session and the missing windows, each in its place among the live ones,
//! and restarts panes in place; pass 2 (`panes` layout) splits the missing
//! agents into the agents' window once it exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Stale;
use crate::model::{Layout, Role};
use crate::os::tmux::{Op, PaneInfo, PaneSpec, Place};
use crate::runtime::SHELLS;

/// What the plan needs to know of a slot.
pub(super) struct Want {
    pub name: String,
    pub role: Role,
    pub window: String,
    /// The folder it works in.
    pub dir: PathBuf,
    /// Its setup command failed: it is not started.
    pub blocked: bool,
    /// What runs in its pane when it is made or restarted.
    pub pane: PaneSpec,
}

/// The agency's tmux session as it is now, and what the registry knew.
pub(super) struct Now<'a> {
    pub session: &'a str,
    /// The workspace's root: the session's `@agency-home`.
    pub root: &'a str,
    pub layout: Layout,
    /// The coordinator and its specialists (the first slots).
    pub agents: usize,
    /// The session's panes (none: no session).
    pub panes: &'a [&'a PaneInfo],
    /// Each agent's pane id in the registry (empty: no rows).
    pub prior: &'a HashMap<String, Option<String>>,
    /// Restart agents started in another folder even if not at a prompt.
    pub move_agents: bool,
}

/// What to do, and what each step makes.
pub(super) struct Plan {
    /// Each slot's live pane, before any step.
    pub live: Vec<Option<String>>,
    /// Slots whose program exited: started again in their pane.
    pub respawn: Vec<usize>,
    /// Slots started in another folder, restarted where they work now.
    pub moves: Vec<usize>,
    /// Slots left running in another folder.
    pub stale: Vec<Stale>,
    /// Pass 1, one tmux batch: the session and missing windows, then the
    /// restarts.
    pub ops: Vec<Op>,
    /// The slot whose pane each pane-making step of `ops` makes, in order.
    pub op_slots: Vec<usize>,
    /// Windows: one per slot, except that the `panes` layout puts the
    /// agents together in the first.
    units: Vec<Vec<usize>>,
}

/// Pass 1 of bringing the agency up.
pub(super) fn plan(wants: &[Want], now: &Now) -> Plan {
    let live = live_panes(wants, now);
    let dead = |id: &String| now.panes.iter().any(|p| &p.pane_id == id && p.dead);
    let respawn: Vec<usize> = (0..wants.len())
        .filter(|&i| live[i].as_ref().is_some_and(dead) && !wants[i].blocked)
        .collect();
    let (moves, stale) = misplaced(wants, &live, now.panes, now.move_agents);
    let units = units(now.layout, now.agents, wants.len());
    let mut windows = Windows {
        wants,
        now,
        units: &units,
        ops: Vec::new(),
        op_slots: Vec::new(),
        session_made: !now.panes.is_empty(),
    };
    windows.place_missing(&live);
    let Windows {
        mut ops, op_slots, ..
    } = windows;
    for &i in respawn.iter().chain(&moves) {
        if let Some(pane) = &live[i] {
            ops.push(Op::Respawn {
                pane: pane.clone(),
                spec: wants[i].pane.clone(),
            });
        }
    }
    Plan {
        live,
        respawn,
        moves,
        stale,
        ops,
        op_slots,
        units,
    }
}

/// Pass 2 (`panes` layout): with `panes` each slot's pane after pass 1,
/// the splits that put the missing agents into the agents' window, and
/// the slot each split makes.
pub(super) fn splits(
    plan: &Plan,
    wants: &[Want],
    layout: Layout,
    panes: &[Option<String>],
) -> (Vec<Op>, Vec<usize>) {
    let mut ops = Vec::new();
    let mut made = Vec::new();
    if layout != Layout::Panes {
        return (ops, made);
    }
    let Some(anchor) = live_in(panes, &plan.units[0]) else {
        return (ops, made);
    };
    // Each split lands right after the anchor: go backwards to keep order.
    for &i in plan.units[0].iter().rev() {
        if panes[i].is_none() && !wants[i].blocked {
            ops.push(Op::SplitWindow {
                target: anchor.clone(),
                pane: wants[i].pane.clone(),
            });
            // Re-tile after each split so the next one has room.
            ops.push(Op::SelectLayout {
                target: anchor.clone(),
                layout: "tiled".into(),
            });
            made.push(i);
        }
    }
    (ops, made)
}

/// Which slots' panes are still there. Without registry rows (a lost
/// registry), windows are matched by name so nothing is duplicated.
fn live_panes(wants: &[Want], now: &Now) -> Vec<Option<String>> {
    wants
        .iter()
        .map(|w| {
            let by_id = now
                .prior
                .get(&w.name)
                .cloned()
                .flatten()
                .filter(|id| now.panes.iter().any(|p| &p.pane_id == id));
            by_id.or_else(|| {
                (now.prior.is_empty() && now.layout == Layout::Windows)
                    .then(|| now.panes.iter().find(|p| p.window_name == w.window))
                    .flatten()
                    .map(|p| p.pane_id.clone())
            })
        })
        .collect()
}

/// The slots of each window, in window order.
fn units(layout: Layout, agents: usize, slots: usize) -> Vec<Vec<usize>> {
    match layout {
        Layout::Windows => (0..slots).map(|i| vec![i]).collect(),
        Layout::Panes => {
            let mut u = vec![(0..agents).collect::<Vec<_>>()];
            u.extend((agents..slots).map(|i| vec![i]));
            u
        }
    }
}

/// The first live pane of a window's slots.
fn live_in(panes: &[Option<String>], unit: &[usize]) -> Option<String> {
    unit.iter().find_map(|&i| panes[i].clone())
}

/// Pass 1's windows: each missing one made right after the live window
/// before it (or before the first live one, or at the end), the session
/// with the first if there is none.
struct Windows<'a> {
    wants: &'a [Want],
    now: &'a Now<'a>,
    units: &'a [Vec<usize>],
    ops: Vec<Op>,
    op_slots: Vec<usize>,
    session_made: bool,
}

impl Windows<'_> {
    fn place_missing(&mut self, live: &[Option<String>]) {
        let mut group = Vec::new(); // missing windows waiting for an anchor
        let mut last_live: Option<String> = None;
        for (u, unit) in self.units.iter().enumerate() {
            // An agent whose setup failed is not started.
            if unit.iter().all(|&i| self.wants[i].blocked) {
                continue;
            }
            // new-window places relative to a window: anchors are window ids.
            match live_in(live, unit).and_then(|p| self.window_of(&p)) {
                Some(w) => {
                    self.make(&group, last_live.as_deref(), Some(&w));
                    group.clear();
                    last_live = Some(w);
                }
                None => group.push(u),
            }
        }
        self.make(&group, last_live.as_deref(), None);
    }

    fn window_of(&self, pane: &str) -> Option<String> {
        let p = self.now.panes.iter().find(|p| p.pane_id == pane)?;
        Some(p.window_id.clone())
    }

    /// Makes the windows `group` between the live windows `after` and
    /// `before`.
    fn make(&mut self, group: &[usize], after: Option<&str>, before: Option<&str>) {
        // Inserting each after the same anchor reverses them: go backwards.
        let (order, place): (Vec<usize>, Place) = match (after, before) {
            (Some(a), _) => (
                group.iter().rev().copied().collect(),
                Place::After(a.into()),
            ),
            (None, Some(b)) => (group.to_vec(), Place::Before(b.into())),
            (None, None) => (group.to_vec(), Place::End),
        };
        let session = self.now.session.to_string();
        for u in order {
            let first = self.units[u][0];
            let pane = self.wants[first].pane.clone();
            if self.session_made {
                let place = place.clone();
                self.ops.push(Op::NewWindow {
                    session: session.clone(),
                    place,
                    pane,
                });
            } else {
                self.ops.push(Op::NewSession {
                    session: session.clone(),
                    pane,
                });
                self.ops.push(Op::SetSessionOption {
                    session: session.clone(),
                    key: "@agency-home".into(),
                    value: self.now.root.to_string(),
                });
                self.session_made = true;
            }
            self.op_slots.push(first);
        }
    }
}

/// Agents whose live pane was started in another folder than the one they
/// work in now (the project was set, or worktrees turned on or off, after
/// they started): the ones to restart there (a shell at its prompt loses
/// nothing; anything with `move_agents`), and the ones left as they are.
fn misplaced(
    wants: &[Want],
    live: &[Option<String>],
    panes: &[&PaneInfo],
    move_agents: bool,
) -> (Vec<usize>, Vec<Stale>) {
    let mut moves = Vec::new();
    let mut stale = Vec::new();
    for (i, w) in wants.iter().enumerate() {
        if !w.role.is_agent() || w.blocked {
            continue;
        }
        let Some(p) = live[i]
            .as_ref()
            .and_then(|id| panes.iter().find(|p| &p.pane_id == id && !p.dead))
        else {
            continue;
        };
        if p.start_path.is_empty() || Path::new(&p.start_path) == w.dir {
            continue;
        }
        if move_agents || SHELLS.contains(&p.current_command.as_str()) {
            moves.push(i);
        } else {
            stale.push(Stale {
                agent: w.name.clone(),
                running: p.current_command.clone(),
                from: p.start_path.clone(),
                to: w.dir.display().to_string(),
            });
        }
    }
    (moves, stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// coordinator, dev, qa (agents), then the tools window.
    fn wants() -> Vec<Want> {
        [
            ("coordinator", Role::Coordinator),
            ("dev", Role::Specialist),
            ("qa", Role::Specialist),
            ("tools", Role::Tools),
        ]
        .into_iter()
        .map(|(name, role)| Want {
            name: name.into(),
            role,
            window: name.into(),
            dir: PathBuf::from(format!("/w/{name}")),
            blocked: false,
            pane: PaneSpec {
                name: name.into(),
                dir: format!("/w/{name}"),
                env: Vec::new(),
                command: None,
                dead_note: None,
            },
        })
        .collect()
    }

    /// A pane `%id` alone in window `@id`, named `window`, running a shell
    /// started where `window`'s slot works.
    fn pane(id: u32, window: &str) -> PaneInfo {
        PaneInfo {
            session: "A".into(),
            window_index: id,
            window_name: window.into(),
            window_id: format!("@{id}"),
            pane_id: format!("%{id}"),
            dead: false,
            in_mode: false,
            current_command: "sh".into(),
            agency_home: "/ws".into(),
            pid: 1000 + id,
            tty: format!("/dev/pts/{id}"),
            start_path: format!("/w/{window}"),
        }
    }

    fn prior(rows: &[(&str, u32)]) -> HashMap<String, Option<String>> {
        rows.iter()
            .map(|(n, id)| (n.to_string(), Some(format!("%{id}"))))
            .collect()
    }

    fn now<'a>(
        panes: &'a [&'a PaneInfo],
        prior: &'a HashMap<String, Option<String>>,
        layout: Layout,
    ) -> Now<'a> {
        Now {
            session: "A",
            root: "/ws",
            layout,
            agents: 3,
            panes,
            prior,
            move_agents: false,
        }
    }

    /// The plan (`windows` layout) for a session where only `live` (pane
    /// and window number, slot name) are left, the registry knowing them.
    fn with_live(live: &[(u32, &str)]) -> Plan {
        let panes: Vec<PaneInfo> = live.iter().map(|(id, name)| pane(*id, name)).collect();
        let refs: Vec<&PaneInfo> = panes.iter().collect();
        let rows: Vec<(&str, u32)> = live.iter().map(|(id, name)| (*name, *id)).collect();
        let p = prior(&rows);
        plan(&wants(), &now(&refs, &p, Layout::Windows))
    }

    fn show(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                Op::NewSession { session, pane } => format!("new-session {session} {}", pane.name),
                Op::SetSessionOption { key, value, .. } => format!("set {key}={value}"),
                Op::NewWindow { place, pane, .. } => format!("new-window {place:?} {}", pane.name),
                Op::Respawn { pane, spec } => format!("respawn {pane} {}", spec.name),
                Op::SplitWindow { target, pane } => format!("split {target} {}", pane.name),
                Op::SelectLayout { target, layout } => format!("layout {target} {layout}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_new_agency_is_a_session_and_its_windows_in_order() {
        let (w, p) = (wants(), prior(&[]));
        let plan = plan(&w, &now(&[], &p, Layout::Windows));
        assert_eq!(
            show(&plan.ops),
            [
                "new-session A coordinator",
                "set @agency-home=/ws",
                "new-window End dev",
                "new-window End qa",
                "new-window End tools",
            ]
        );
        assert_eq!(plan.op_slots, [0, 1, 2, 3]);
        assert_eq!(plan.live, [None, None, None, None]);
        assert!(plan.respawn.is_empty() && plan.moves.is_empty() && plan.stale.is_empty());
    }

    #[test]
    fn missing_windows_go_back_in_their_place_among_the_live_ones() {
        // coordinator and qa live; dev between them, tools after qa.
        let plan = with_live(&[(1, "coordinator"), (3, "qa")]);
        assert_eq!(
            show(&plan.ops),
            [
                "new-window After(\"@1\") dev",
                "new-window After(\"@3\") tools"
            ]
        );
        assert_eq!(plan.op_slots, [1, 3]);
        assert_eq!(
            plan.live,
            [Some("%1".into()), None, Some("%3".into()), None]
        );
    }

    #[test]
    fn several_missing_after_one_window_are_made_backwards_and_land_in_order() {
        let plan = with_live(&[(1, "coordinator")]);
        assert_eq!(
            show(&plan.ops),
            [
                "new-window After(\"@1\") tools",
                "new-window After(\"@1\") qa",
                "new-window After(\"@1\") dev",
            ]
        );
        assert_eq!(plan.op_slots, [3, 2, 1]);
    }

    #[test]
    fn missing_before_the_first_live_window_go_before_it() {
        let plan = with_live(&[(4, "tools")]);
        assert_eq!(
            show(&plan.ops),
            [
                "new-window Before(\"@4\") coordinator",
                "new-window Before(\"@4\") dev",
                "new-window Before(\"@4\") qa",
            ]
        );
    }

    #[test]
    fn an_exited_agent_is_restarted_in_its_pane_and_a_failed_setup_is_not_started() {
        let (c, mut d, q, t) = (
            pane(1, "coordinator"),
            pane(2, "dev"),
            pane(3, "qa"),
            pane(4, "tools"),
        );
        d.dead = true;
        let panes = [&c, &d, &q, &t];
        let p = prior(&[("coordinator", 1), ("dev", 2), ("qa", 3), ("tools", 4)]);
        let plan = plan(&wants(), &now(&panes, &p, Layout::Windows));
        assert_eq!(show(&plan.ops), ["respawn %2 dev"]);
        assert_eq!(plan.respawn, [1]);
        // Its setup failed: neither made nor restarted.
        let mut w = wants();
        w[1].blocked = true;
        let plan = super::plan(&w, &now(&panes, &p, Layout::Windows));
        assert!(plan.ops.is_empty(), "{:?}", show(&plan.ops));
        let panes = [&c, &q, &t];
        let plan = super::plan(&w, &now(&panes, &p, Layout::Windows));
        assert!(plan.ops.is_empty(), "{:?}", show(&plan.ops));
    }

    #[test]
    fn without_registry_rows_windows_are_matched_by_name() {
        let (c, d) = (pane(7, "coordinator"), pane(8, "dev"));
        let panes = [&c, &d];
        let none = prior(&[]);
        let plan = plan(&wants(), &now(&panes, &none, Layout::Windows));
        assert_eq!(plan.live[..2], [Some("%7".into()), Some("%8".into())]);
        assert_eq!(
            show(&plan.ops),
            [
                "new-window After(\"@8\") tools",
                "new-window After(\"@8\") qa"
            ]
        );
        // With rows, a pane is ours only by its id: a window of the same
        // name is someone else's.
        let rows = prior(&[("coordinator", 7)]);
        let plan = super::plan(&wants(), &now(&panes, &rows, Layout::Windows));
        assert_eq!(plan.live[1], None);
    }

    #[test]
    fn the_panes_layout_splits_the_agents_into_the_first_window() {
        let (w, p) = (wants(), prior(&[]));
        let plan = plan(&w, &now(&[], &p, Layout::Panes));
        assert_eq!(
            show(&plan.ops),
            [
                "new-session A coordinator",
                "set @agency-home=/ws",
                "new-window End tools",
            ]
        );
        assert_eq!(plan.op_slots, [0, 3]);
        // Pass 2, once the session's first pane is there.
        let made = vec![Some("%1".into()), None, None, Some("%4".into())];
        let (ops, slots) = splits(&plan, &w, Layout::Panes, &made);
        assert_eq!(
            show(&ops),
            [
                "split %1 qa",
                "layout %1 tiled",
                "split %1 dev",
                "layout %1 tiled"
            ]
        );
        assert_eq!(slots, [2, 1]);
        // Nothing to split in the windows layout, or with every agent there.
        assert!(splits(&plan, &w, Layout::Windows, &made).0.is_empty());
        let all = vec![
            Some("%1".into()),
            Some("%2".into()),
            Some("%3".into()),
            None,
        ];
        assert!(splits(&plan, &w, Layout::Panes, &all).0.is_empty());
    }

    #[test]
    fn an_agent_started_elsewhere_moves_if_at_a_shell_and_is_reported_otherwise() {
        let (c, mut d, mut q) = (pane(1, "coordinator"), pane(2, "dev"), pane(3, "qa"));
        d.start_path = "/old/dev".into();
        q.start_path = "/old/qa".into();
        q.current_command = "claude".into();
        let t = pane(4, "tools");
        let panes = [&c, &d, &q, &t];
        let p = prior(&[("coordinator", 1), ("dev", 2), ("qa", 3), ("tools", 4)]);
        let plan = plan(&wants(), &now(&panes, &p, Layout::Windows));
        assert_eq!(plan.moves, [1]);
        assert_eq!(show(&plan.ops), ["respawn %2 dev"]);
        assert_eq!(plan.stale.len(), 1);
        assert_eq!(
            (plan.stale[0].agent.as_str(), plan.stale[0].from.as_str()),
            ("qa", "/old/qa")
        );
        assert_eq!(plan.stale[0].to, "/w/qa");
        // --move restarts it too.
        let mut moving = now(&panes, &p, Layout::Windows);
        moving.move_agents = true;
        let plan = super::plan(&wants(), &moving);
        assert_eq!(plan.moves, [1, 2]);
        assert!(plan.stale.is_empty());
    }
}
