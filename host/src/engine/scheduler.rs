//! The backlog as a dependency graph: which tasks can run now, in what order, and which wait on a task that
//! will not complete by itself. Pure and in memory: the store gives it the tasks, it gives back ids.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::SystemTime;

use crate::state::{Task, TaskStatus};

/// What the scheduler needs of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Task id.
    pub id: i64,
    /// Priority, 1 (low) to 10 (high).
    pub priority: i64,
    /// Status.
    pub status: TaskStatus,
    /// The tasks it depends on.
    pub depends_on: Vec<i64>,
    /// Not handed out before this time: it waits for an agent's rate limit to reset.
    pub not_before: Option<SystemTime>,
}

impl From<&Task> for Node {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id,
            priority: task.priority,
            status: task.status(),
            depends_on: task.dependencies(),
            not_before: task.resume_after.as_deref().and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        }
    }
}

/// A task that cannot run until a human acts: a task it depends on (directly or not) failed or was
/// cancelled (the task is stored `blocked`), or waits at a breakpoint (it stays `pending`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocked {
    /// The waiting task.
    pub task_id: i64,
    /// The task in the way (the first one found, nearest first).
    pub waits_for: i64,
    /// Its status.
    pub dependency_status: String,
    /// The direct dependency the wait goes through (`waits_for` itself when it is a direct one).
    pub via: i64,
}

/// The dependency graph of a backlog.
#[derive(Debug, Clone)]
pub struct Schedule {
    nodes: BTreeMap<i64, Node>,
}

/// Ready tasks come out highest priority first, then oldest (lowest id).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Rank(i64, std::cmp::Reverse<i64>);

impl Schedule {
    /// The graph of `nodes`. Dependencies on ids that are not among them are treated as unmet.
    pub fn new(nodes: impl IntoIterator<Item = Node>) -> Self {
        Self { nodes: nodes.into_iter().map(|n| (n.id, n)).collect() }
    }

    /// The graph of a project's tasks.
    pub fn of_tasks(tasks: &[Task]) -> Self {
        Self::new(tasks.iter().map(Node::from))
    }

    fn completed(&self, id: i64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.status == TaskStatus::Completed)
    }

    /// Pending tasks whose dependencies are all completed and that wait for no rate limit to reset:
    /// highest priority first, then oldest.
    pub fn ready(&self) -> Vec<i64> {
        self.ready_at(SystemTime::now())
    }

    /// [`ready`](Self::ready) at the time `now`.
    pub fn ready_at(&self, now: SystemTime) -> Vec<i64> {
        let mut ready: Vec<&Node> = self.runnable().filter(|n| n.not_before.is_none_or(|t| t <= now)).collect();
        ready.sort_by_key(|n| (std::cmp::Reverse(n.priority), n.id));
        ready.into_iter().map(|n| n.id).collect()
    }

    /// Pending tasks whose dependencies are all completed, whatever their `not_before`.
    fn runnable(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .values()
            .filter(|n| n.status == TaskStatus::Pending && n.depends_on.iter().all(|d| self.completed(*d)))
    }

    /// The task that will be ready first among those waiting for a rate limit to reset after `now`, and
    /// when (the earliest reset; the lowest id on a tie).
    pub fn next_reset(&self, now: SystemTime) -> Option<(i64, SystemTime)> {
        self.runnable()
            .filter_map(|n| n.not_before.filter(|t| *t > now).map(|t| (n.id, t)))
            .min_by_key(|(id, t)| (*t, *id))
    }

    /// Every task in an order that puts each after the tasks it depends on; among tasks free to go, highest
    /// priority first, then oldest. A cycle is an error that names it, e.g. `1 → 2 → 3 → 1`.
    pub fn topological_order(&self) -> Result<Vec<i64>, String> {
        // Positions instead of ids: the graph is walked with plain vectors, no hashing.
        let ids: Vec<i64> = self.nodes.keys().copied().collect();
        let nodes: Vec<&Node> = self.nodes.values().collect();
        let position = |id: i64| ids.binary_search(&id).ok();
        let mut waiting = vec![0usize; ids.len()];
        let mut dependents: Vec<Vec<u32>> = vec![Vec::new(); ids.len()];
        for (i, node) in nodes.iter().enumerate() {
            for dep in node.depends_on.iter().filter_map(|d| position(*d)) {
                waiting[i] += 1;
                dependents[dep].push(i as u32);
            }
        }
        let rank = |i: usize| Rank(nodes[i].priority, std::cmp::Reverse(ids[i]));
        let mut free: BinaryHeap<(Rank, usize)> =
            (0..ids.len()).filter(|i| waiting[*i] == 0).map(|i| (rank(i), i)).collect();
        let mut order = Vec::with_capacity(ids.len());
        while let Some((_, i)) = free.pop() {
            order.push(ids[i]);
            for &dependent in &dependents[i] {
                let dependent = dependent as usize;
                waiting[dependent] -= 1;
                if waiting[dependent] == 0 {
                    free.push((rank(dependent), dependent));
                }
            }
        }
        if order.len() == ids.len() {
            Ok(order)
        } else {
            let stuck = ids[(0..ids.len()).find(|i| waiting[*i] > 0).expect("some task is left")];
            Err(format!("the tasks' dependencies form a cycle: {}", self.cycle_from(stuck)))
        }
    }

    /// Follow dependencies from `start` (a task left over by the topological sort, so on or behind a cycle)
    /// until a task repeats; the repeated stretch is the cycle.
    fn cycle_from(&self, start: i64) -> String {
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let mut path = Vec::new();
        let mut at = start;
        loop {
            if let Some(&first) = seen.get(&at) {
                let mut cycle: Vec<String> = path[first..].iter().map(|id: &i64| id.to_string()).collect();
                cycle.push(at.to_string());
                return cycle.join(" → ");
            }
            seen.insert(at, path.len());
            path.push(at);
            // A task left over by the sort has a dependency that was left over too.
            match self.nodes.get(&at).and_then(|n| n.depends_on.iter().copied().find(|d| self.nodes.contains_key(d))) {
                Some(next) => at = next,
                None => return format!("{start} (its dependencies could not be ordered)"),
            }
        }
    }

    /// The length of the longest dependency chain ending at each task (1 for a task with no dependency).
    /// Fails on a cycle, like [`topological_order`](Self::topological_order).
    pub fn depths(&self) -> Result<HashMap<i64, usize>, String> {
        let order = self.topological_order()?;
        let mut depth: HashMap<i64, usize> = HashMap::with_capacity(order.len());
        for id in order {
            let d = self.nodes[&id].depends_on.iter().filter_map(|dep| depth.get(dep)).max().copied().unwrap_or(0) + 1;
            depth.insert(id, d);
        }
        Ok(depth)
    }

    /// Blocked tasks, and pending tasks that wait, directly or through other pending or blocked tasks, on a
    /// task that failed, was cancelled, or is paused at a breakpoint (in dependency order; none when the
    /// graph has a cycle, which the store refuses to create).
    pub fn blocked(&self) -> Vec<Blocked> {
        let Ok(order) = self.topological_order() else { return Vec::new() };
        let mut found: HashMap<i64, Blocked> = HashMap::new();
        let mut out = Vec::new();
        for id in order {
            let node = &self.nodes[&id];
            if !matches!(node.status, TaskStatus::Pending | TaskStatus::Blocked) {
                continue;
            }
            let hit = node.depends_on.iter().find_map(|dep| match self.nodes.get(dep).map(|d| d.status) {
                Some(status @ (TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Paused)) => Some(Blocked {
                    task_id: id,
                    waits_for: *dep,
                    dependency_status: status.as_str().to_string(),
                    via: *dep,
                }),
                Some(TaskStatus::Pending | TaskStatus::Blocked) => {
                    found.get(dep).map(|b| Blocked { task_id: id, via: *dep, ..b.clone() })
                }
                _ => None,
            });
            if let Some(b) = hit {
                found.insert(id, b.clone());
                out.push(b);
            }
        }
        out
    }

    /// Why each task that is not done cannot run at `now`: paused at a breakpoint (`open` maps a task to its
    /// open breakpoint's id and rule), blocked by a task it depends on that has not completed (the task in the
    /// way as [`blocked`](Self::blocked) finds it, else the first unfinished dependency), or waiting for a rate
    /// limit to reset. Ready, running and finished tasks are not in it.
    pub fn waits(&self, now: SystemTime, open: &HashMap<i64, (i64, String)>) -> BTreeMap<i64, Wait> {
        let mut waits: BTreeMap<i64, Wait> = self
            .blocked()
            .into_iter()
            .map(|b| (b.task_id, Wait::BlockedBy { waits_for: b.waits_for, status: b.dependency_status, via: b.via }))
            .collect();
        for node in self.nodes.values() {
            if waits.contains_key(&node.id) {
                continue;
            }
            let wait = match node.status {
                TaskStatus::Paused => {
                    let (breakpoint_id, rule) = open.get(&node.id).cloned().unzip();
                    Some(Wait::Paused { breakpoint_id, rule })
                }
                TaskStatus::Pending | TaskStatus::Blocked => {
                    match node.depends_on.iter().find(|d| !self.completed(**d)) {
                        Some(dep) => Some(Wait::BlockedBy {
                            waits_for: *dep,
                            status: self.nodes.get(dep).map_or("missing", |d| d.status.as_str()).to_string(),
                            via: *dep,
                        }),
                        None => node
                            .not_before
                            .filter(|t| *t > now)
                            .map(|t| Wait::RateLimited { until: humantime::format_rfc3339_millis(t).to_string() }),
                    }
                }
                _ => None,
            };
            if let Some(wait) = wait {
                waits.insert(node.id, wait);
            }
        }
        waits
    }
}

/// Why a task cannot run now (`obra status`, `obra task list`, the end of `obra run`). In JSON, an object with
/// `kind` (`rate_limited`, `blocked_by`, `paused`) and the fields of that kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Wait {
    /// The agent's rate limit (or quota) resets at `until` (RFC 3339 with milliseconds, UTC, as the task's
    /// `resume_after`); the task is handed out then.
    RateLimited {
        /// When the task is handed out again.
        until: String,
    },
    /// A task it depends on has not completed.
    BlockedBy {
        /// The task in the way: the one that failed, was cancelled or is paused when there is one along the
        /// chain, else the first unfinished direct dependency.
        waits_for: i64,
        /// That task's status.
        status: String,
        /// The direct dependency the wait goes through (`waits_for` itself when it is a direct one).
        via: i64,
    },
    /// Paused at a breakpoint until a human resolves it.
    Paused {
        /// The open breakpoint (none when the store has no open one for the task).
        breakpoint_id: Option<i64>,
        /// The rule that opened it.
        rule: Option<String>,
    },
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wait::RateLimited { until } => {
                // 2025-01-02T03:04:05.678Z -> 2025-01-02 03:04:05 UTC
                let seconds = until.trim_end_matches('Z').split('.').next().unwrap_or(until);
                let shown = seconds.replacen('T', " ", 1);
                write!(f, "rate-limited until {shown} UTC")
            }
            Wait::BlockedBy { waits_for, status, via } if via == waits_for => {
                write!(f, "blocked by task {waits_for} ({status})")
            }
            Wait::BlockedBy { waits_for, status, via } => {
                write!(f, "blocked by task {waits_for} ({status}, through task {via})")
            }
            Wait::Paused { breakpoint_id: Some(id), rule } => {
                write!(f, "paused at breakpoint {id} ({})", rule.as_deref().unwrap_or("?"))
            }
            Wait::Paused { breakpoint_id: None, .. } => write!(f, "paused (no open breakpoint)"),
        }
    }
}

/// A task and why it waits, for JSON lists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskWait {
    /// The waiting task.
    pub task_id: i64,
    /// Why.
    #[serde(flatten)]
    pub wait: Wait,
}

/// Why each of `tasks` that is not done cannot run now, given the project's `open` breakpoints.
pub fn waits_of(tasks: &[Task], open: &[crate::state::Breakpoint]) -> BTreeMap<i64, Wait> {
    let open: HashMap<i64, (i64, String)> =
        open.iter().filter(|b| b.status == "open").map(|b| (b.task_id, (b.id, b.rule.clone()))).collect();
    Schedule::of_tasks(tasks).waits(SystemTime::now(), &open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, priority: i64, status: TaskStatus, deps: &[i64]) -> Node {
        Node { id, priority, status, depends_on: deps.to_vec(), not_before: None }
    }

    use TaskStatus::{Blocked as StoredBlocked, Cancelled, Completed, Failed, Paused, Pending};

    #[test]
    fn a_task_waiting_for_a_rate_limit_is_not_ready_before_its_reset() {
        let now = SystemTime::now();
        let later = now + std::time::Duration::from_secs(60);
        let mut waiting = node(1, 9, Pending, &[]);
        waiting.not_before = Some(later);
        let mut past = node(3, 1, Pending, &[]);
        past.not_before = Some(now - std::time::Duration::from_secs(1));
        let s = Schedule::new([waiting, node(2, 5, Pending, &[]), past]);
        assert_eq!(s.ready_at(now), vec![2, 3]);
        assert_eq!(s.next_reset(now), Some((1, later)));
        assert_eq!(s.ready_at(later), vec![1, 2, 3]);
        assert_eq!(s.next_reset(later), None);
    }

    #[test]
    fn stored_blocked_tasks_are_reported_with_the_task_in_the_way() {
        let s = Schedule::new([
            node(1, 5, Failed, &[]),
            node(2, 5, StoredBlocked, &[1]),
            node(3, 5, StoredBlocked, &[2]),
            node(4, 5, Pending, &[3]),
        ]);
        assert!(s.ready().is_empty());
        let summary: Vec<(i64, i64, i64)> = s.blocked().iter().map(|b| (b.task_id, b.waits_for, b.via)).collect();
        assert_eq!(summary, vec![(2, 1, 1), (3, 1, 2), (4, 1, 3)]);
    }

    #[test]
    fn ready_tasks_have_every_dependency_completed_and_come_by_priority_then_age() {
        let s = Schedule::new([
            node(1, 5, Completed, &[]),
            node(2, 3, Pending, &[1]),
            node(3, 9, Pending, &[2]),
            node(4, 3, Pending, &[]),
            node(5, 8, Pending, &[99]),
        ]);
        assert_eq!(s.ready(), vec![2, 4], "3 waits for 2; 5 waits for a task that is not there");
    }

    #[test]
    fn topological_order_respects_dependencies_then_priority() {
        let s = Schedule::new([
            node(1, 1, Pending, &[]),
            node(2, 10, Pending, &[1]),
            node(3, 5, Pending, &[]),
            node(4, 5, Pending, &[2, 3]),
        ]);
        assert_eq!(s.topological_order().unwrap(), vec![3, 1, 2, 4]);
        let depths = s.depths().unwrap();
        assert_eq!((depths[&1], depths[&2], depths[&3], depths[&4]), (1, 2, 1, 3));
    }

    #[test]
    fn a_cycle_is_named() {
        let s = Schedule::new([
            node(1, 5, Pending, &[3]),
            node(2, 5, Pending, &[1]),
            node(3, 5, Pending, &[2]),
            node(4, 5, Pending, &[]),
            node(5, 5, Pending, &[1]),
        ]);
        let err = s.topological_order().unwrap_err();
        assert!(err.contains("1 → 3 → 2 → 1"), "{err}");
        assert!(s.depths().is_err());
    }

    #[test]
    fn blocked_follows_pending_chains_to_the_task_in_the_way() {
        let s = Schedule::new([
            node(1, 5, Failed, &[]),
            node(2, 5, Pending, &[1]),
            node(3, 5, Pending, &[2]),
            node(4, 5, Cancelled, &[]),
            node(5, 5, Pending, &[4]),
            node(6, 5, Paused, &[]),
            node(7, 5, Pending, &[6]),
            node(8, 5, Pending, &[]),
        ]);
        let mut blocked = s.blocked();
        blocked.sort_by_key(|b| b.task_id);
        let summary: Vec<(i64, i64, &str, i64)> =
            blocked.iter().map(|b| (b.task_id, b.waits_for, b.dependency_status.as_str(), b.via)).collect();
        assert_eq!(
            summary,
            vec![(2, 1, "failed", 1), (3, 1, "failed", 2), (5, 4, "cancelled", 4), (7, 6, "paused", 6)]
        );
    }

    #[test]
    fn a_large_chain_does_not_overflow_or_slow_down_the_sort() {
        let mut chain: Vec<Node> = (1..=50_000).map(|i| node(i, 5, Pending, &[])).collect();
        for (i, n) in chain.iter_mut().enumerate().skip(1) {
            n.depends_on = vec![i as i64];
        }
        let s = Schedule::new(chain);
        let order = s.topological_order().unwrap();
        assert_eq!(order.first(), Some(&1));
        assert_eq!(order.last(), Some(&50_000));
        assert_eq!(s.depths().unwrap()[&50_000], 50_000);
        // The whole chain behind a failed head is blocked, without recursion.
        let mut nodes: Vec<Node> = s.nodes.values().cloned().collect();
        nodes[0].status = Failed;
        let blocked = Schedule::new(nodes).blocked();
        assert_eq!(blocked.len(), 49_999);
        assert!(blocked.iter().all(|b| b.waits_for == 1));
    }

    #[test]
    fn each_waiting_task_says_why() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let mut limited = node(1, 5, Pending, &[]);
        limited.not_before = Some(now + std::time::Duration::from_secs(90));
        let mut reset_passed = node(7, 5, Pending, &[]);
        reset_passed.not_before = Some(now - std::time::Duration::from_secs(1));
        let s = Schedule::new([
            limited,
            node(2, 5, Paused, &[]),
            node(3, 5, Pending, &[2]),
            node(4, 5, Pending, &[3]),
            node(5, 5, Pending, &[6]),
            node(6, 5, Pending, &[]),
            reset_passed,
            node(8, 5, Completed, &[]),
        ]);
        let open = HashMap::from([(2, (11, "max-iterations".to_string()))]);
        let waits = s.waits(now, &open);
        let shown: Vec<(i64, String)> = waits.iter().map(|(id, w)| (*id, w.to_string())).collect();
        assert_eq!(
            shown,
            vec![
                (1, "rate-limited until 2023-11-14 22:14:50 UTC".to_string()),
                (2, "paused at breakpoint 11 (max-iterations)".to_string()),
                (3, "blocked by task 2 (paused)".to_string()),
                (4, "blocked by task 2 (paused, through task 3)".to_string()),
                (5, "blocked by task 6 (pending)".to_string()),
            ]
        );
        let json = serde_json::to_value(TaskWait { task_id: 1, wait: waits[&1].clone() }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "task_id": 1, "kind": "rate_limited", "until": "2023-11-14T22:14:50.000Z" })
        );
        let json = serde_json::to_value(TaskWait { task_id: 4, wait: waits[&4].clone() }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "task_id": 4, "kind": "blocked_by", "waits_for": 2, "status": "paused", "via": 3 })
        );
    }
}
