//! `obra task import`: a backlog in YAML or as a Markdown checklist, parsed and validated as a whole before
//! anything is stored (docs/cli.md, "Importing a backlog").

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::state::BacklogTask;

/// The formats `obra task import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BacklogFormat {
    /// A YAML list of tasks (title, description, priority, depends_on, id, milestone, max_iterations).
    Yaml,
    /// A Markdown checklist: `- [ ] Title (after: Other title)`, an indented block under it as its description.
    Markdown,
}

impl BacklogFormat {
    /// The format of `text` read from `name`: by the file's extension, else a Markdown checklist when a line
    /// starts with `- [ ]`, else YAML.
    pub fn detect(name: &str, text: &str) -> BacklogFormat {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            return BacklogFormat::Yaml;
        }
        if lower.ends_with(".md") || lower.ends_with(".markdown") {
            return BacklogFormat::Markdown;
        }
        if text.lines().any(|l| checkbox(l).is_some()) { BacklogFormat::Markdown } else { BacklogFormat::Yaml }
    }
}

/// A dependency as the backlog names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepRef {
    /// A task already in the project, by id (`#3` in Markdown, an integer in YAML that names no entry).
    Existing(i64),
    /// A task of the backlog, by its local `id` or its title.
    Named(String),
}

/// One task of a parsed backlog, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The line (1-based) where the entry starts; 0 when unknown.
    pub line: usize,
    /// The local key other entries may name it by (YAML `id`).
    pub key: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Priority 1..=10.
    pub priority: i64,
    /// What it depends on.
    pub deps: Vec<DepRef>,
    /// Milestone.
    pub milestone: Option<String>,
    /// Iteration limit override.
    pub max_iterations: Option<u32>,
}

/// A parsed backlog: its entries, and (Markdown) the titles of the items already checked, which are skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Backlog {
    /// The tasks to create, in the file's order.
    pub entries: Vec<Entry>,
    /// Titles of checked (`- [x]`) items: not imported, and a dependency on one is already satisfied.
    pub done: Vec<String>,
}

/// Parse `text` (named `source` in errors) in `format`.
pub fn parse(text: &str, source: &str, format: BacklogFormat) -> Result<Backlog> {
    match format {
        BacklogFormat::Yaml => parse_yaml(text, source),
        BacklogFormat::Markdown => parse_markdown(text, source),
    }
}

const DEFAULT_PRIORITY: i64 = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlTask {
    id: Option<YamlKey>,
    title: Option<String>,
    #[serde(default)]
    description: String,
    priority: Option<i64>,
    #[serde(default)]
    depends_on: Vec<YamlKey>,
    milestone: Option<String>,
    max_iterations: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum YamlKey {
    Number(i64),
    Text(String),
}

impl YamlKey {
    fn text(&self) -> String {
        match self {
            YamlKey::Number(n) => n.to_string(),
            YamlKey::Text(s) => s.trim().to_string(),
        }
    }
}

fn parse_yaml(text: &str, source: &str) -> Result<Backlog> {
    if text.trim().is_empty() {
        bail!("{source}: the backlog is empty");
    }
    let tasks: Vec<YamlTask> = match serde_yaml::from_str(text) {
        Ok(tasks) => tasks,
        Err(e) => match e.location() {
            Some(at) => bail!("{source}:{}:{}: {e}", at.line(), at.column()),
            None => bail!("{source}: {e}"),
        },
    };
    // Each top-level list item starts on a line `- ...` at column 1; flow lists leave the lines unknown.
    let starts: Vec<usize> =
        text.lines().enumerate().filter(|(_, l)| *l == "-" || l.starts_with("- ")).map(|(n, _)| n + 1).collect();
    let count = tasks.len();
    let line_of = |n: usize| if starts.len() == count { starts[n] } else { 0 };
    let mut entries = Vec::with_capacity(tasks.len());
    for (n, t) in tasks.into_iter().enumerate() {
        let line = line_of(n);
        let at = location(source, line, n);
        let title = t.title.as_deref().map(str::trim).unwrap_or_default().to_string();
        if title.is_empty() {
            bail!("{at}: the task has no title (`title: ...`)");
        }
        let priority = t.priority.unwrap_or(DEFAULT_PRIORITY);
        if !(1..=10).contains(&priority) {
            bail!("{at}: priority {priority} of \"{title}\" is not from 1 to 10");
        }
        if t.max_iterations.is_some_and(|m| !(1..=100).contains(&m)) {
            bail!("{at}: max_iterations of \"{title}\" is not from 1 to 100");
        }
        let deps = t
            .depends_on
            .iter()
            .map(|d| match d {
                // An integer may be a local id; `resolve` falls back to an existing task's id.
                YamlKey::Number(n) => DepRef::Named(n.to_string()),
                YamlKey::Text(s) => DepRef::Named(s.trim().to_string()),
            })
            .collect();
        entries.push(Entry {
            line,
            key: t.id.as_ref().map(YamlKey::text).filter(|k| !k.is_empty()),
            title,
            description: t.description,
            priority,
            deps,
            milestone: t.milestone.map(|m| m.trim().to_string()).filter(|m| !m.is_empty()),
            max_iterations: t.max_iterations,
        });
    }
    if entries.is_empty() {
        bail!("{source}: the backlog has no tasks");
    }
    Ok(Backlog { entries, done: Vec::new() })
}

/// Where an entry is, for an error: `FILE:LINE`, or `FILE, task N` when the line is unknown.
pub fn location(source: &str, line: usize, index: usize) -> String {
    if line > 0 { format!("{source}:{line}") } else { format!("{source}, task {}", index + 1) }
}

/// `(checked, rest)` of a checklist item at column 1: `- [ ] rest`, `* [x] rest`.
fn checkbox(line: &str) -> Option<(bool, &str)> {
    let rest = line.strip_prefix("- [").or_else(|| line.strip_prefix("* ["))?;
    let mut chars = rest.chars();
    let mark = chars.next()?;
    let rest = chars.as_str().strip_prefix(']')?;
    let checked = match mark {
        ' ' => false,
        'x' | 'X' => true,
        _ => return None,
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((checked, rest.trim()))
}

/// The title of a checklist item without its `(after: ...)` and `(priority: N)` suffixes, and those.
fn split_suffixes(item: &str, at: &str) -> Result<(String, Vec<DepRef>, Option<i64>)> {
    let mut title = item.trim_end().to_string();
    let mut deps = Vec::new();
    let mut priority = None;
    while title.ends_with(')') {
        let Some(open) = title.rfind('(') else { break };
        let inner = title[open + 1..title.len() - 1].trim();
        let Some((key, value)) = inner.split_once(':') else { break };
        match key.trim().to_ascii_lowercase().as_str() {
            "after" | "depends on" | "depends_on" => {
                for name in value.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                    match name.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) {
                        Some(id) => deps.push(DepRef::Existing(id)),
                        None => deps.push(DepRef::Named(name.to_string())),
                    }
                }
            }
            "priority" | "p" => match value.trim().parse::<i64>() {
                Ok(p) if (1..=10).contains(&p) => priority = Some(p),
                _ => bail!("{at}: priority `{}` is not a number from 1 to 10", value.trim()),
            },
            _ => break,
        }
        title.truncate(open);
        title = title.trim_end().to_string();
    }
    deps.reverse();
    Ok((title, deps, priority))
}

fn parse_markdown(text: &str, source: &str) -> Result<Backlog> {
    struct Open {
        entry: Entry,
        body: Vec<String>,
    }
    fn close(open: Option<Open>, entries: &mut Vec<Entry>) {
        let Some(Open { mut entry, mut body }) = open else { return };
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        while body.first().is_some_and(|l| l.trim().is_empty()) {
            body.remove(0);
        }
        let indent = body.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
        let indent = indent.unwrap_or(0);
        let lines: Vec<&str> = body.iter().map(|l| if l.len() >= indent { &l[indent..] } else { "" }).collect();
        entry.description = lines.join("\n");
        entries.push(entry);
    }
    let mut backlog = Backlog::default();
    let mut open: Option<Open> = None;
    let mut milestone: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{source}:{}", n + 1);
        if let Some((checked, item)) = checkbox(line) {
            close(open.take(), &mut backlog.entries);
            let (title, deps, priority) = split_suffixes(item, &at)?;
            if title.is_empty() {
                bail!("{at}: the checklist item has no title");
            }
            if checked {
                backlog.done.push(title);
                continue;
            }
            let entry = Entry {
                line: n + 1,
                key: None,
                title,
                description: String::new(),
                priority: priority.unwrap_or(DEFAULT_PRIORITY),
                deps,
                milestone: milestone.clone(),
                max_iterations: None,
            };
            open = Some(Open { entry, body: Vec::new() });
        } else if line.trim().is_empty() || line.starts_with([' ', '\t']) {
            if let Some(o) = open.as_mut() {
                o.body.push(line.replace('\t', "    "));
            }
        } else if line.starts_with('#') {
            close(open.take(), &mut backlog.entries);
            let heading = line.trim_start_matches('#').trim();
            milestone = match heading.split_once(':') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("milestone") && !v.trim().is_empty() => {
                    Some(v.trim().to_string())
                }
                _ => None,
            };
        } else if line.starts_with("- [") || line.starts_with("* [") {
            bail!("{at}: `{}` is not a checklist item: write `- [ ] Title` (or `- [x]` for a done one)", line.trim());
        } else {
            // Prose at column 1 ends the item above; it is not part of any task.
            close(open.take(), &mut backlog.entries);
        }
    }
    close(open, &mut backlog.entries);
    if backlog.entries.is_empty() {
        bail!("{source}: no open checklist item (`- [ ] Title`) to import");
    }
    Ok(backlog)
}

/// Validate the backlog as a whole and turn it into the tasks the store creates: titles and local ids are
/// unique, every dependency names a task of the backlog (by id or title), a checked item, or an existing task
/// id, and the dependencies form no cycle. Errors name `source` and the entry's line.
pub fn resolve(backlog: &Backlog, source: &str) -> Result<Vec<BacklogTask>> {
    let entries = &backlog.entries;
    let at = |i: usize| location(source, entries[i].line, i);
    let mut by_title: HashMap<&str, usize> = HashMap::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(first) = by_title.insert(e.title.as_str(), i) {
            bail!("{}: the title \"{}\" is used twice (first at {}); titles must be unique", at(i), e.title, at(first));
        }
        if let Some(key) = e.key.as_deref()
            && let Some(first) = by_key.insert(key, i)
        {
            bail!("{}: the id `{key}` is used twice (first at {})", at(i), at(first));
        }
    }
    let find = |name: &str| by_key.get(name).or_else(|| by_title.get(name)).copied();
    let mut tasks = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let mut task = BacklogTask {
            title: e.title.clone(),
            description: e.description.clone(),
            priority: e.priority,
            milestone: e.milestone.clone(),
            max_iterations: e.max_iterations,
            ..BacklogTask::default()
        };
        for dep in &e.deps {
            let name = match dep {
                DepRef::Existing(id) => {
                    task.depends_on.push(*id);
                    continue;
                }
                DepRef::Named(name) => name.as_str(),
            };
            // A name is a whole title first; else, in a list written with commas, each part.
            let parts: Vec<&str> = if find(name).is_some() || backlog.done.iter().any(|d| d == name) {
                vec![name]
            } else {
                name.split(',').map(str::trim).filter(|p| !p.is_empty()).collect()
            };
            for part in parts {
                if let Some(j) = find(part) {
                    if j == i {
                        bail!("{}: \"{}\" depends on itself", at(i), e.title);
                    }
                    if !task.after.contains(&j) {
                        task.after.push(j);
                    }
                } else if backlog.done.iter().any(|d| d == part) {
                    // Already done: nothing to wait for.
                } else if let Ok(id) = part.parse::<i64>() {
                    task.depends_on.push(id);
                } else {
                    bail!(
                        "{}: \"{}\" depends on `{part}`, which is no title or id of this backlog (an existing \
                         task is named by its number: `#3` in Markdown, 3 in YAML)",
                        at(i),
                        e.title
                    );
                }
            }
        }
        tasks.push(task);
    }
    if let Some(cycle) = find_cycle(&tasks) {
        let names: Vec<String> = cycle.iter().map(|i| format!("\"{}\"", entries[*i].title)).collect();
        bail!("{}: the dependencies form a cycle: {}", at(cycle[0]), names.join(" → "));
    }
    Ok(tasks)
}

/// A cycle among the tasks' `after` edges, as indexes from a task back to it, if there is one.
fn find_cycle(tasks: &[BacklogTask]) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; tasks.len()];
    let mut path = Vec::new();
    fn visit(i: usize, tasks: &[BacklogTask], state: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<usize>> {
        state[i] = 1;
        path.push(i);
        for &j in &tasks[i].after {
            if state[j] == 1 {
                let from = path.iter().position(|p| *p == j).expect("on the path");
                let mut cycle = path[from..].to_vec();
                cycle.push(j);
                return Some(cycle);
            }
            if state[j] == 0
                && let Some(cycle) = visit(j, tasks, state, path)
            {
                return Some(cycle);
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    (0..tasks.len()).find_map(|i| if state[i] == 0 { visit(i, tasks, &mut state, &mut path) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(text: &str) -> Result<Vec<BacklogTask>> {
        let backlog = parse(text, "b.md", BacklogFormat::Markdown)?;
        resolve(&backlog, "b.md")
    }

    fn yaml(text: &str) -> Result<Vec<BacklogTask>> {
        let backlog = parse(text, "b.yaml", BacklogFormat::Yaml)?;
        resolve(&backlog, "b.yaml")
    }

    #[test]
    fn markdown_items_descriptions_suffixes_and_milestones() {
        let tasks = md("# Backlog\nIntro prose.\n\n## Milestone: v1\n- [ ] Add lexer (priority: 8)\n  Tokens:\n\n    - idents\n- [x] Set up CI\n- [ ] Add parser (after: Add lexer; Set up CI)\n## Later\n- [ ] Docs, all of them (after: Add parser, Add lexer) (p: 2)\nnot part of it\n")
            .unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[0].title, "Add lexer");
        assert_eq!(tasks[0].priority, 8);
        assert_eq!(tasks[0].description, "Tokens:\n\n  - idents");
        assert_eq!(tasks[0].milestone.as_deref(), Some("v1"));
        assert_eq!(tasks[1].after, vec![0]);
        assert_eq!(tasks[1].milestone.as_deref(), Some("v1"));
        assert_eq!(tasks[2].title, "Docs, all of them");
        assert_eq!(tasks[2].after, vec![1, 0]);
        assert_eq!(tasks[2].priority, 2);
        assert_eq!(tasks[2].milestone, None);
        assert_eq!(tasks[2].description, "");
    }

    #[test]
    fn markdown_errors_name_the_line() {
        let e = md("- [ ] A\n- [ ] B (after: C)\n").unwrap_err().to_string();
        assert!(e.starts_with("b.md:2: ") && e.contains("`C`"), "{e}");
        let e = md("- [ ] A\n  text\n- [ ] A\n").unwrap_err().to_string();
        assert!(e.starts_with("b.md:3: ") && e.contains("b.md:1"), "{e}");
        let e = md("- [ ] A\n-[ ] B\n- [?] C\n").unwrap_err().to_string();
        assert!(e.starts_with("b.md:3: "), "{e}");
        let e = md("- [ ] A (after: B)\n- [ ] B (after: A)\n").unwrap_err().to_string();
        assert!(e.starts_with("b.md:1: ") && e.contains("cycle"), "{e}");
        let e = md("- [ ] A (priority: 11)\n").unwrap_err().to_string();
        assert!(e.starts_with("b.md:1: "), "{e}");
    }

    #[test]
    fn markdown_existing_task_ids() {
        let tasks = md("- [ ] A (after: #3)\n").unwrap();
        assert_eq!(tasks[0].depends_on, vec![3]);
        assert!(tasks[0].after.is_empty());
    }

    #[test]
    fn yaml_ids_titles_and_existing_tasks() {
        let tasks = yaml(
            "- id: lex\n  title: Add lexer\n  description: |\n    long\n    text\n  priority: 9\n  milestone: v1\n\
             - title: Add parser\n  depends_on: [lex, 7]\n- title: Docs\n  depends_on: [\"Add parser\"]\n  max_iterations: 3\n",
        )
        .unwrap();
        assert_eq!(tasks[0].description, "long\ntext\n");
        assert_eq!(tasks[0].priority, 9);
        assert_eq!(tasks[0].milestone.as_deref(), Some("v1"));
        assert_eq!(tasks[1].after, vec![0]);
        assert_eq!(tasks[1].depends_on, vec![7]);
        assert_eq!(tasks[1].priority, DEFAULT_PRIORITY);
        assert_eq!(tasks[2].after, vec![1]);
        assert_eq!(tasks[2].max_iterations, Some(3));
    }

    #[test]
    fn yaml_errors_name_line_and_column() {
        let e = yaml("- title: A\n- title: B\n  dependz: [A]\n").unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:3:3: ") && e.contains("dependz"), "{e}");
        let e = yaml("- title: A\n- description: no title\n").unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:2: ") && e.contains("no title"), "{e}");
        let e = yaml("- title: A\n- title: A\n").unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:2: "), "{e}");
        let e = yaml("- title: A\n  depends_on: [B]\n- title: B\n  depends_on: [C]\n- title: C\n  depends_on: [A]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("b.yaml:1: ") && e.contains("\"A\" → \"B\" → \"C\" → \"A\""), "{e}");
        let e = yaml("- title: A\n  depends_on: [nope]\n").unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:1: ") && e.contains("`nope`"), "{e}");
        let e = yaml("- title: A\n  priority: 0\n").unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:1: "), "{e}");
    }

    #[test]
    fn format_detection() {
        assert_eq!(BacklogFormat::detect("x.yml", "- [ ] a"), BacklogFormat::Yaml);
        assert_eq!(BacklogFormat::detect("x.md", "- title: a"), BacklogFormat::Markdown);
        assert_eq!(BacklogFormat::detect("-", "text\n- [ ] a\n"), BacklogFormat::Markdown);
        assert_eq!(BacklogFormat::detect("-", "- title: a\n"), BacklogFormat::Yaml);
    }
}
