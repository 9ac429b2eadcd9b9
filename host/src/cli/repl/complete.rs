//! Tab completion: command and subcommand names and flags from the clap command tree (so new commands
//! complete without being listed here), task and breakpoint ids and project names from the watcher's
//! [`Snapshot`] of the store (refreshed every second, so a Tab press never waits for the database).

use std::borrow::Cow;
use std::sync::Arc;

use clap::CommandFactory;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::Shared;
use super::watch::Snapshot;
use crate::cli::Cli;

/// Words the REPL understands itself, besides the clap commands.
const BUILTINS: [&str; 4] = ["use", "execute", "exit", "quit"];
/// `task` subcommands whose first argument is a task id.
const TASK_ID_COMMANDS: [&str; 6] = ["show", "execute", "cancel", "retry", "update", "deps"];
/// `breakpoint` subcommands whose first argument is an open breakpoint id.
const BREAKPOINT_ID_COMMANDS: [&str; 2] = ["show", "resolve"];

/// The rustyline helper: completion only.
pub(crate) struct ReplHelper {
    shared: Arc<Shared>,
    cmd: clap::Command,
}

impl ReplHelper {
    /// A completer over the full `obra` command tree and the session's snapshot of the store.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, cmd: command_tree() }
    }
}

/// The `obra` command, built (so global flags, `--help` and the `help` subcommand are in every subcommand).
pub(crate) fn command_tree() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let snapshot = self.shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(candidates(&self.cmd, &snapshot, line, pos))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// The words of `text` before the last one, unquoted, and where the last (the one being typed) starts.
/// Tolerates an unclosed quote (the word being typed may be inside one).
pub(crate) fn split_for_completion(text: &str) -> (Vec<String>, usize, String) {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let mut in_word = false;
    let (mut single, mut double, mut escaped) = (false, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            c if c.is_whitespace() && !single && !double => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
                start = i + c.len_utf8();
                continue;
            }
            c => current.push(c),
        }
        in_word = true;
    }
    (words, start, current)
}

/// What the word at the cursor completes to: the byte offset where the word starts, and the candidates.
pub(crate) fn candidates(root: &clap::Command, snapshot: &Snapshot, line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let pos = pos.min(line.len());
    let (words, start, partial) = split_for_completion(&line[..pos]);
    let mut node = root;
    let mut path: Vec<String> = Vec::new();
    let mut positionals = 0;
    let mut value_of: Option<&clap::Arg> = None;
    for (i, word) in words.iter().enumerate() {
        if value_of.take().is_some() {
            continue;
        }
        if i == 0 && word == "use" {
            path.push("use".into());
            continue;
        }
        if i == 0 && word == "execute" {
            path = vec!["task".into(), "execute".into()];
            node = node.find_subcommand("task").and_then(|t| t.find_subcommand("execute")).unwrap_or(node);
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') {
                value_of = node.get_arguments().find(|a| a.get_long() == Some(long)).filter(|a| takes_value(a));
            }
        } else if word.len() == 2 && word.starts_with('-') {
            let short = word.chars().nth(1);
            value_of = node.get_arguments().find(|a| a.get_short() == short).filter(|a| takes_value(a));
        } else if word.starts_with('-') {
            // Combined short flags or a short flag with its value attached: nothing to skip.
        } else if positionals == 0
            && let Some(sub) = node.find_subcommand(word)
        {
            node = sub;
            path.push(sub.get_name().to_string());
        } else {
            positionals += 1;
        }
    }
    let matching = |items: Vec<(String, String)>| -> Vec<Pair> {
        items
            .into_iter()
            .filter(|(word, _)| word.starts_with(&partial))
            .map(|(word, display)| Pair { display, replacement: format!("{} ", shell_words::quote(&word)) })
            .collect()
    };
    let projects = || snapshot.projects.iter().map(|p| (p.name.clone(), p.name.clone())).collect::<Vec<_>>();
    if let Some(arg) = value_of {
        if arg.get_id() == "project" {
            return (start, matching(projects()));
        }
        let values =
            arg.get_possible_values().iter().map(|v| (v.get_name().to_string(), v.get_name().to_string())).collect();
        return (start, matching(values));
    }
    if partial.starts_with('-') {
        let flags = node
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .map(|l| (format!("--{l}"), format!("--{l}")));
        return (start, matching(flags.collect()));
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let items = match (path.as_slice(), positionals) {
        (["use"], 0) => projects(),
        (["task", sub], 0) if TASK_ID_COMMANDS.contains(sub) => {
            snapshot.tasks.iter().map(|(id, title)| (id.to_string(), format!("{id}  {title}"))).collect()
        }
        (["breakpoint", sub], 0) if BREAKPOINT_ID_COMMANDS.contains(sub) => {
            snapshot.breakpoints.iter().map(|(id, task)| (id.to_string(), format!("{id}  (task {task})"))).collect()
        }
        (["use"], _) => Vec::new(),
        (_, 0) => {
            let mut names: Vec<String> =
                node.get_subcommands().filter(|s| !s.is_hide_set()).map(|s| s.get_name().to_string()).collect();
            if path.is_empty() {
                names.extend(BUILTINS.iter().map(|b| b.to_string()));
                names.sort();
                names.dedup();
            }
            names.into_iter().map(|n| (n.clone(), n)).collect()
        }
        _ => Vec::new(),
    };
    (start, matching(items))
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values()) || arg.get_action().takes_values()
}

#[cfg(test)]
mod tests {
    use super::super::ProjectRef;
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            projects: vec![
                ProjectRef { id: 1, name: "scratch".into() },
                ProjectRef { id: 2, name: "Demo Project".into() },
            ],
            tasks: vec![(1, "Write hello".into()), (12, "Add tests".into()), (2, "Docs".into())],
            breakpoints: vec![(5, 12)],
        }
    }

    /// The replacements offered with the cursor at the end of `line`, and where the word starts.
    fn complete(line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = candidates(&command_tree(), &snapshot(), line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement.trim_end().to_string()).collect())
    }

    #[test]
    fn the_word_being_typed_is_found_even_inside_an_open_quote() {
        assert_eq!(
            split_for_completion("task create \"a b\" -"),
            (vec!["task".into(), "create".into(), "a b".into()], 18, "-".into())
        );
        assert_eq!(split_for_completion("use \"Demo Pr"), (vec!["use".into()], 4, "Demo Pr".into()));
        assert_eq!(split_for_completion(""), (vec![], 0, String::new()));
        assert_eq!(split_for_completion("task "), (vec!["task".into()], 5, String::new()));
    }

    #[test]
    fn commands_come_from_the_clap_tree_plus_the_builtins() {
        assert_eq!(complete("ta"), (0, vec!["task".to_string()]));
        let (_, all) = complete("");
        for name in ["init", "task", "status", "breakpoint", "plugin", "demo", "interactive", "use", "execute", "exit"]
        {
            assert!(all.contains(&name.to_string()), "{name} missing from {all:?}");
        }
        let (start, subs) = complete("task ");
        assert_eq!(start, 5);
        for name in ["create", "execute", "show", "list"] {
            assert!(subs.contains(&name.to_string()), "{name} missing from {subs:?}");
        }
        assert_eq!(complete("breakpoint re").1, ["resolve"]);
    }

    #[test]
    fn long_flags_include_the_global_ones() {
        let (start, flags) = complete("task create x --");
        assert_eq!(start, 14);
        for flag in ["--description", "--priority", "--depends-on", "--json", "--project", "--set", "--help"] {
            assert!(flags.contains(&flag.to_string()), "{flag} missing from {flags:?}");
        }
        assert_eq!(complete("task create x --desc").1, ["--description", "--description-file"]);
        assert_eq!(complete("task create x --pri").1, ["--priority"]);
    }

    #[test]
    fn ids_and_project_names_come_from_the_snapshot() {
        assert_eq!(complete("task show ").1, ["1", "12", "2"]);
        assert_eq!(complete("task execute 1").1, ["1", "12"]);
        assert_eq!(complete("execute ").1, ["1", "12", "2"]);
        assert!(complete("task show 1 ").1.is_empty(), "no second id");
        assert_eq!(complete("breakpoint resolve ").1, ["5"]);
        assert_eq!(complete("use ").1, ["scratch", "'Demo Project'"]);
        assert_eq!(complete("use De").1, ["'Demo Project'"]);
        assert_eq!(complete("status --project s").1, ["scratch"]);
        assert_eq!(complete("task list --project ").1.len(), 2);
        // A flag's value is not taken for a subcommand or an id.
        assert_eq!(complete("--project scratch ta").1, ["task"]);
    }

    #[test]
    fn task_titles_are_shown_as_hints() {
        let (_, pairs) = candidates(&command_tree(), &snapshot(), "task show 1", 11);
        let shown: Vec<&str> = pairs.iter().map(|p| p.display.as_str()).collect();
        assert_eq!(shown, ["1  Write hello", "12  Add tests"]);
    }
}
