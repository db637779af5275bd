//! Benchmark: frame render time of the approval screen with 10,000 items,
//! scrolling through the list. Run with `cargo bench --bench tui`.

// Benchmarks start the programs they measure.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime};

use agency::store::ApprovalRow;
use agency::tui::app::{Action, App, Filter};
use agency::tui::draw::draw;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const ITEMS: i64 = 10_000;
const FRAMES: usize = 2_000;

fn item(id: i64) -> ApprovalRow {
    ApprovalRow {
        id,
        agency: format!("Agency{}", id % 5),
        task: format!("task {id}"),
        title: format!("Change number {id} with a reasonably long title"),
        branch: format!("feature/change-{id}"),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        base_branch: "main".into(),
        status: agency::model::ApprovalStatus::Pending,
        tests_passed: Some(100 + id % 7),
        tests_failed: Some(id % 3),
        coverage: Some(80.0),
        test_command: "cargo test".into(),
        test_exit_code: Some(0),
        test_seconds: 3.0,
        test_log: "x.log".into(),
        files_changed: id % 40,
        insertions: id % 500,
        deletions: id % 90,
        demo: Some("http://localhost/demo".into()),
        feedback: None,
        decided_by: None,
        decision_note: None,
        merge_commit: None,
        previous_id: None,
        created_at: "2026-11-22T12:00:00.000Z".into(),
        decided_at: None,
    }
}

fn main() {
    println!("approval screen, {ITEMS} items, {FRAMES} frames while scrolling");
    println!(
        "{:>9} {:>10} {:>10} {:>10}",
        "size", "mean ms", "p99 ms", "max ms"
    );
    for (w, h) in [(80u16, 24u16), (200, 50)] {
        let mut app = App::new(Filter::Pending, SystemTime::now());
        app.update(Action::Loaded(
            (1..=ITEMS).map(item).collect(),
            ITEMS as usize,
        ));
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        let mut times: Vec<Duration> = Vec::with_capacity(FRAMES);
        for n in 0..FRAMES {
            // Down through the list in page jumps and single steps.
            app.update(Action::Move(if n % 10 == 0 { 10 } else { 1 }));
            let t = Instant::now();
            term.draw(|f| draw(&app, f)).unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
        println!(
            "{:>9} {:>10.3} {:>10.3} {:>10.3}",
            format!("{w}x{h}"),
            mean,
            ms(times[times.len() * 99 / 100]),
            ms(times[times.len() - 1])
        );
    }
}
