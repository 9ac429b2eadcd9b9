//! Scheduling a large backlog in memory: the topological order, the ready set and the blocked set of a
//! 100,000-task dependency graph (each task depends on up to three earlier ones, a fifth of them completed).
//!
//! Run: `cargo bench -p obra --bench scheduler` (prints median and p95 of each).

use std::time::{Duration, Instant};

use obra::engine::scheduler::{Node, Schedule};
use obra::state::TaskStatus;

mod support;

const TASKS: i64 = 100_000;

fn backlog() -> Vec<Node> {
    // A fixed pseudo-random graph (xorshift), so every run schedules the same backlog.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (1..=TASKS)
        .map(|id| {
            let deps = (0..(next() % 4)).filter(|_| id > 1).map(|_| 1 + (next() % (id as u64 - 1)) as i64).collect();
            let status = if id <= TASKS / 5 { TaskStatus::Completed } else { TaskStatus::Pending };
            let status = if id % 997 == 0 { TaskStatus::Failed } else { status };
            Node { id, priority: 1 + (next() % 10) as i64, status, depends_on: deps, not_before: None }
        })
        .collect()
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let value = f();
    (started.elapsed(), value)
}

fn main() {
    let nodes = backlog();
    let (mut build, mut order, mut ready, mut blocked) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let (t, schedule) = time(|| Schedule::new(nodes.clone()));
        build.push(t);
        let (t, sorted) = time(|| schedule.topological_order().expect("the generated graph has no cycle"));
        assert_eq!(sorted.len(), TASKS as usize);
        order.push(t);
        let (t, ready_set) = time(|| schedule.ready());
        assert!(!ready_set.is_empty());
        ready.push(t);
        let (t, blocked_set) = time(|| schedule.blocked());
        assert!(!blocked_set.is_empty());
        blocked.push(t);
    }
    support::report("build the graph of 100,000 tasks", &mut build, 1);
    support::report("topological order of 100,000 tasks", &mut order, 1);
    support::report("ready set of 100,000 tasks", &mut ready, 1);
    support::report("blocked set of 100,000 tasks (failed tasks among them)", &mut blocked, 1);
}
