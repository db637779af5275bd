//! Ctrl-C, SIGTERM and SIGHUP during a sandbox run: while a guard is held
//! they are only noted, so the run can stop its tests and remove its
//! worktree; at any other time they act as they always do.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Once};

use rustix::process::Signal;

const SIGNALS: [Signal; 3] = [Signal::INT, Signal::TERM, Signal::HUP];

/// The last signal that arrived while guarded (0: none).
static PENDING: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));
/// True while no guard is held: a signal then does what it does by default.
static UNGUARDED: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(true)));
static INSTALL: Once = Once::new();

/// Holds the signals off (noted, not acted on) until dropped.
pub struct Guard(());

impl Guard {
    pub fn new() -> Guard {
        INSTALL.call_once(|| {
            for sig in SIGNALS.map(Signal::as_raw) {
                // Both run on each signal, in this order: note it, then end
                // the process unless a guard is held.
                let _ = signal_hook::flag::register_usize(sig, PENDING.clone(), sig as usize);
                let _ = signal_hook::flag::register_conditional_default(sig, UNGUARDED.clone());
            }
        });
        PENDING.store(0, Ordering::SeqCst);
        UNGUARDED.store(false, Ordering::SeqCst);
        Guard(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        UNGUARDED.store(true, Ordering::SeqCst);
    }
}

/// The signal that arrived while guarded, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// A signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match Signal::from_named_raw(sig) {
        Some(Signal::INT) => "SIGINT (Ctrl-C)",
        Some(Signal::TERM) => "SIGTERM",
        Some(Signal::HUP) => "SIGHUP",
        _ => "a signal",
    }
}
