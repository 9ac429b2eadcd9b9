//! The dependency graph of a project's tasks, rendered as a text tree, Graphviz DOT or a Mermaid flowchart.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

use crate::state::Task;

/// One task of the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Task id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Status.
    pub status: String,
    /// The tasks it depends on.
    pub depends_on: Vec<i64>,
}

/// The graph: tasks by id, each with its dependencies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// The tasks, by id.
    pub nodes: BTreeMap<i64, Node>,
}

impl Graph {
    /// The graph of `tasks`; with `only`, just that task and what it depends on, directly or not.
    pub fn new(tasks: &[Task], only: Option<i64>) -> Self {
        let nodes = tasks.iter().map(|t| Node {
            id: t.id,
            title: t.title.clone(),
            status: t.status.to_string(),
            depends_on: t.dependencies(),
        });
        Self::from_nodes(nodes, only)
    }

    /// The graph of `nodes`; with `only`, just that node and what it depends on, directly or not.
    pub fn from_nodes(nodes: impl IntoIterator<Item = Node>, only: Option<i64>) -> Self {
        let all: BTreeMap<i64, Node> = nodes.into_iter().map(|n| (n.id, n)).collect();
        let Some(root) = only else { return Self { nodes: all } };
        let mut keep = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if keep.insert(id)
                && let Some(node) = all.get(&id)
            {
                stack.extend(node.depends_on.iter().copied());
            }
        }
        Self { nodes: all.into_iter().filter(|(id, _)| keep.contains(id)).collect() }
    }

    /// Edges as (dependency, dependent): the first must complete before the second can run.
    pub fn edges(&self) -> Vec<(i64, i64)> {
        let mut edges: Vec<(i64, i64)> = self
            .nodes
            .values()
            .flat_map(|n| n.depends_on.iter().filter(|d| self.nodes.contains_key(d)).map(move |d| (*d, n.id)))
            .collect();
        edges.sort_unstable();
        edges
    }

    /// Tasks no other task (of the graph) depends on: the ends of the chains.
    fn roots(&self) -> Vec<i64> {
        let depended: BTreeSet<i64> = self.edges().into_iter().map(|(dep, _)| dep).collect();
        self.nodes.keys().copied().filter(|id| !depended.contains(id)).collect()
    }

    fn label(&self, id: i64) -> String {
        match self.nodes.get(&id) {
            Some(n) => format!("{}: {} [{}]", n.id, n.title, n.status),
            None => format!("{id}: (not in this project)"),
        }
    }

    /// An indented tree: each task with what it depends on under it. A task reached a second time is
    /// shown once more by name only, marked "(see above)".
    pub fn tree(&self) -> String {
        if self.nodes.is_empty() {
            return "No tasks.\n".to_string();
        }
        let mut out = String::new();
        let mut shown = BTreeSet::new();
        let mut roots = self.roots();
        // A cycle (which the store refuses to create) would leave no root; show every task then.
        if roots.is_empty() {
            roots = self.nodes.keys().copied().collect();
        }
        for root in roots {
            self.tree_node(root, "", "", &mut shown, &mut Vec::new(), &mut out);
        }
        out
    }

    fn tree_node(
        &self,
        id: i64,
        first_prefix: &str,
        rest_prefix: &str,
        shown: &mut BTreeSet<i64>,
        path: &mut Vec<i64>,
        out: &mut String,
    ) {
        if path.contains(&id) {
            let _ = writeln!(out, "{first_prefix}{} (cycle!)", self.label(id));
            return;
        }
        let deps: Vec<i64> = self.nodes.get(&id).map(|n| n.depends_on.clone()).unwrap_or_default();
        if !shown.insert(id) && !deps.is_empty() {
            let _ = writeln!(out, "{first_prefix}{} (see above)", self.label(id));
            return;
        }
        let _ = writeln!(out, "{first_prefix}{}", self.label(id));
        path.push(id);
        for (i, dep) in deps.iter().enumerate() {
            let last = i + 1 == deps.len();
            let (branch, cont) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
            self.tree_node(*dep, &format!("{rest_prefix}{branch}"), &format!("{rest_prefix}{cont}"), shown, path, out);
        }
        path.pop();
    }

    /// Graphviz DOT: an arrow from each task to the tasks that wait for it.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph obra_tasks {\n  rankdir=LR;\n  node [shape=box];\n");
        for n in self.nodes.values() {
            let label = format!("{}: {}\\n({})", n.id, dot_escape(&n.title), n.status);
            let _ = writeln!(out, "  t{} [label=\"{label}\"{}];", n.id, dot_style(&n.status));
        }
        for (dep, task) in self.edges() {
            let _ = writeln!(out, "  t{dep} -> t{task};");
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart: an arrow from each task to the tasks that wait for it.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for n in self.nodes.values() {
            let _ = writeln!(out, "  t{}[\"{}: {} ({})\"]", n.id, n.id, mermaid_escape(&n.title), n.status);
        }
        for (dep, task) in self.edges() {
            let _ = writeln!(out, "  t{dep} --> t{task}");
        }
        out
    }
}

fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")
}

fn dot_style(status: &str) -> &'static str {
    match status {
        "completed" => ", style=filled, fillcolor=palegreen",
        "failed" => ", style=filled, fillcolor=lightpink",
        "paused" => ", style=filled, fillcolor=lightyellow",
        "running" => ", style=filled, fillcolor=lightblue",
        "cancelled" => ", style=dashed",
        "blocked" => ", style=\"filled,dashed\", fillcolor=lightgrey",
        _ => "",
    }
}

/// Mermaid labels in quotes take entity codes for characters that would end or break them.
fn mermaid_escape(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', " ").replace('[', "#91;").replace(']', "#93;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: i64, title: &str, status: &str, deps: &[i64]) -> Node {
        Node { id, title: title.into(), status: status.into(), depends_on: deps.to_vec() }
    }

    fn sample() -> Vec<Node> {
        vec![
            task(1, "Build", "completed", &[]),
            task(2, "Test \"all\"", "pending", &[1]),
            task(3, "Deploy", "pending", &[1, 2]),
            task(4, "Docs", "pending", &[]),
        ]
    }

    #[test]
    fn tree_puts_dependencies_under_the_tasks_that_wait_for_them() {
        let tree = Graph::from_nodes(sample(), None).tree();
        assert_eq!(
            tree,
            "3: Deploy [pending]\n├── 1: Build [completed]\n└── 2: Test \"all\" [pending]\n    └── 1: Build [completed]\n4: Docs [pending]\n"
        );
    }

    #[test]
    fn a_shared_subtree_is_shown_once() {
        let tasks = vec![
            task(1, "a", "pending", &[]),
            task(2, "b", "pending", &[1]),
            task(3, "c", "pending", &[2]),
            task(4, "d", "pending", &[2]),
        ];
        let tree = Graph::from_nodes(tasks, None).tree();
        assert!(tree.contains("2: b [pending] (see above)"), "{tree}");
        assert_eq!(tree.matches("1: a").count(), 1, "{tree}");
    }

    #[test]
    fn only_keeps_the_task_and_its_transitive_dependencies() {
        let graph = Graph::from_nodes(sample(), Some(2));
        assert_eq!(graph.nodes.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(graph.edges(), vec![(1, 2)]);
    }

    #[test]
    fn dot_and_mermaid_escape_titles_and_list_every_edge() {
        let graph = Graph::from_nodes(sample(), None);
        let dot = graph.dot();
        assert!(dot.starts_with("digraph obra_tasks {"));
        assert!(dot.contains("t2 [label=\"2: Test \\\"all\\\"\\n(pending)\"];"), "{dot}");
        for edge in ["t1 -> t2;", "t1 -> t3;", "t2 -> t3;"] {
            assert!(dot.contains(edge), "{edge} missing from {dot}");
        }
        let mermaid = graph.mermaid();
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert!(mermaid.contains("t2[\"2: Test #quot;all#quot; (pending)\"]"), "{mermaid}");
        assert!(mermaid.contains("t2 --> t3"));
        assert!(!mermaid.contains("t4 -->"));
    }

    #[test]
    fn a_cycle_is_marked_not_followed_forever() {
        let tasks = vec![task(1, "a", "pending", &[2]), task(2, "b", "pending", &[1])];
        let tree = Graph::from_nodes(tasks, None).tree();
        assert!(tree.contains("(cycle!)"), "{tree}");
    }
}
