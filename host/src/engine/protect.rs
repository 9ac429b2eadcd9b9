//! Gates that the agent cannot weaken. Each gate has protected paths: its `protect` globs and, for a gate that
//! runs a command, the workspace scripts that command runs (`./check.sh`, `sh scripts/test.sh`, a Makefile).
//! The `tests` gate without `protect` also guards the usual test file layouts. When an agent run modified or deleted a protected path (a new test file is fine), the path is
//! put back as it was before the run (from the iteration's checkpoint) before any gate runs, so the gate
//! judges the real checks; the change becomes a finding of that gate, and the task stops for a human, who sees
//! the agent's version as a diff.

use std::path::Path;

use crate::config::GateConfig;
use crate::contract::{ChangeKind, FileChange};

/// Where tests usually live, guarded by the `tests` gate when its `protect` is not set.
pub const DEFAULT_TEST_GLOBS: &[&str] = &[
    "tests/**",
    "test/**",
    "**/tests/**",
    "**/test_*.py",
    "**/*_test.py",
    "**/conftest.py",
    "**/*_test.go",
    "**/*.test.js",
    "**/*.test.ts",
    "**/*.spec.js",
    "**/*.spec.ts",
];

/// How the globs match (as the destructive-change rule's): `*` within a segment, `**` across segments.
const MATCH: glob::MatchOptions =
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

/// One gate's protected paths.
#[derive(Debug, Clone)]
pub struct GateGuard {
    /// The gate's name (as its results are stored).
    pub gate: String,
    /// Scripts its command runs: even creating one counts.
    named: Vec<String>,
    /// Globs: modifying or deleting a match counts.
    patterns: Vec<glob::Pattern>,
}

/// A protected path an agent run changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedChange {
    /// The gate that depends on it.
    pub gate: String,
    /// The path, relative to the workspace.
    pub path: String,
    /// What the agent did.
    pub kind: ChangeKind,
    /// The agent's version against the one before the run.
    pub diff: String,
    /// Whether the pre-run version was put back.
    pub restored: bool,
}

/// The guards of the enabled gates.
pub fn guards(gates: &[GateConfig], workspace: &Path) -> Vec<GateGuard> {
    gates
        .iter()
        .filter(|g| g.enabled)
        .map(|g| {
            let command = g.config.get("command").and_then(|c| c.as_str()).unwrap_or("");
            let named = named_by_command(command, workspace);
            let mut globs: Vec<String> = Vec::new();
            match &g.protect {
                Some(list) => globs.extend(list.iter().cloned()),
                None if g.plugin == "tests" => globs.extend(DEFAULT_TEST_GLOBS.iter().map(|s| s.to_string())),
                None => {}
            }
            GateGuard {
                gate: g.display_name().to_string(),
                named,
                patterns: globs.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect(),
            }
        })
        .filter(|g| !g.named.is_empty() || !g.patterns.is_empty())
        .collect()
}

/// Interpreters whose first operand is the script they run.
const INTERPRETERS: &[&str] =
    &["sh", "bash", "dash", "zsh", "ksh", "python", "python3", "node", "ruby", "perl", "php", "deno", "bun", "tclsh"];

/// The workspace files a shell command runs: the program of each simple command when it is a workspace file
/// (`./check.sh`), the script an interpreter runs (`sh scripts/test.sh`, `python3 run_tests.py`), and `make`'s
/// makefile. Files the command only reads (`grep -q 42 answer.txt`) are not among them.
pub fn named_by_command(command: &str, workspace: &Path) -> Vec<String> {
    let Ok(root) = workspace.canonicalize() else { return Vec::new() };
    let mut files = Vec::new();
    let mut add = |word: &str| {
        let Ok(resolved) = root.join(word).canonicalize() else { return };
        let Ok(relative) = resolved.strip_prefix(&root) else { return };
        let relative = relative.to_string_lossy().replace('\\', "/");
        let inside_obra = relative.starts_with(".obra") || relative.starts_with(".git");
        if resolved.is_file() && !relative.is_empty() && !inside_obra && !files.contains(&relative) {
            files.push(relative);
        }
    };
    for simple in command.split([';', '&', '|', '(', ')', '\n']) {
        let mut words = simple
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .filter(|w| !w.is_empty());
        let Some(program) = words.next() else { continue };
        let name = program.rsplit('/').next().unwrap_or(program);
        if name == "make" || name == "gmake" {
            for makefile in ["GNUmakefile", "makefile", "Makefile"] {
                add(makefile);
            }
        } else if INTERPRETERS.contains(&name) || name.starts_with("python3.") {
            // The first operand, unless an option says the code comes from elsewhere (`sh -c`, `python -m`,
            // `node -e`, ...).
            let inline: &[&str] = match name {
                "sh" | "bash" | "dash" | "zsh" | "ksh" => &["-c", "-"],
                "node" | "deno" | "bun" => &["-e", "--eval", "-p", "--print", "-"],
                "ruby" | "perl" | "php" | "tclsh" => &["-e", "-r", "-"],
                _ => &["-c", "-m", "-"],
            };
            for word in words.by_ref() {
                if inline.contains(&word) {
                    break;
                }
                if !word.starts_with('-') {
                    add(word);
                    break;
                }
            }
        } else if !program.contains('$') {
            add(program);
        }
    }
    files
}

impl GateGuard {
    /// Whether this change touches the gate's protected paths.
    pub fn covers(&self, change: &FileChange) -> bool {
        if self.named.contains(&change.path) {
            return true;
        }
        change.kind != ChangeKind::Created && self.patterns.iter().any(|p| p.matches_with(&change.path, MATCH))
    }

    /// The protected paths, for `obra doctor` and messages.
    pub fn describe(&self) -> String {
        let mut all: Vec<String> = self.named.clone();
        all.extend(self.patterns.iter().map(|p| p.as_str().to_string()));
        all.join(", ")
    }
}

/// The changes of an agent run that touch a gate's protected paths, each put back to `before(path)` (its
/// content before the run; none when unknown or it did not exist) when that is known.
pub fn check_and_restore(
    guards: &[GateGuard],
    changes: &[FileChange],
    workspace: &Path,
    before: &dyn Fn(&str) -> Option<Option<Vec<u8>>>,
) -> Vec<ProtectedChange> {
    let mut out = Vec::new();
    for change in changes {
        let Some(guard) = guards.iter().find(|g| g.covers(change)) else { continue };
        let path = workspace.join(&change.path);
        let agents = std::fs::read(&path).ok();
        let (restored, diff) = match before(&change.path) {
            Some(previous) => {
                let restored = match &previous {
                    Some(bytes) => {
                        path.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok())
                            && std::fs::write(&path, bytes).is_ok()
                    }
                    None => std::fs::remove_file(&path).is_ok(),
                };
                (restored, diff(previous.as_deref(), agents.as_deref()))
            }
            None => (false, diff(None, agents.as_deref())),
        };
        out.push(ProtectedChange {
            gate: guard.gate.clone(),
            path: change.path.clone(),
            kind: change.kind,
            diff,
            restored,
        });
    }
    out
}

/// A short line diff (at most 30 lines) of the version before the run against the agent's.
fn diff(before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let text = crate::sandbox::integrity::line_diff(before.unwrap_or_default(), after.unwrap_or_default(), 30);
    match after {
        Some(_) => text,
        None if text.is_empty() => "(the agent deleted the file)".into(),
        None => format!("{text}\n(the agent deleted the file)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind) -> FileChange {
        FileChange { path: path.into(), kind, size: None }
    }

    fn gate(command: &str, protect: Option<Vec<String>>) -> GateConfig {
        let mut g: GateConfig = serde_yaml::from_str("plugin: tests\nenabled: true\n").unwrap();
        g.config = serde_json::json!({ "command": command });
        g.protect = protect;
        g
    }

    #[test]
    fn the_scripts_a_command_runs_are_protected_but_not_the_files_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["check.sh", "run_tests.py", "answer.txt", "Makefile"] {
            std::fs::write(dir.path().join(file), "x\n").unwrap();
        }
        let named = |command: &str| named_by_command(command, dir.path());
        assert_eq!(named("./check.sh && pytest -q tests --maxfail=1"), ["check.sh"]);
        assert_eq!(named("CI=1 sh -e check.sh; python3 -u run_tests.py"), ["check.sh", "run_tests.py"]);
        assert_eq!(named("make test"), ["Makefile"]);
        assert!(named("grep -qx 42 answer.txt").is_empty(), "a file the gate only reads is the agent's to write");
        assert!(named("python3 -m pytest -q; sh -c 'exit 0'").is_empty());
        assert!(named("sh '../outside.sh'; cargo test").is_empty());
    }

    #[test]
    fn modifying_or_deleting_a_protected_file_counts_but_adding_a_test_does_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("check.sh"), "exit 0\n").unwrap();
        let guards = guards(&[gate("./check.sh", None)], dir.path());
        assert_eq!(guards.len(), 1);
        let g = &guards[0];
        assert!(g.covers(&change("check.sh", ChangeKind::Modified)));
        assert!(g.covers(&change("tests/test_calc.py", ChangeKind::Modified)));
        assert!(g.covers(&change("pkg/test_calc.py", ChangeKind::Deleted)));
        assert!(!g.covers(&change("tests/test_new.py", ChangeKind::Created)));
        assert!(!g.covers(&change("calc.py", ChangeKind::Modified)));
        // An explicit list replaces the default test globs (the script stays).
        let only = super::guards(&[gate("./check.sh", Some(vec!["golden/*.txt".into()]))], dir.path());
        assert!(!only[0].covers(&change("tests/test_calc.py", ChangeKind::Modified)));
        assert!(only[0].covers(&change("golden/a.txt", ChangeKind::Modified)));
        assert!(only[0].covers(&change("check.sh", ChangeKind::Modified)));
    }

    #[test]
    fn a_changed_protected_file_is_put_back_and_the_agents_version_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("check.sh"), "exit 0\n").unwrap();
        let guards = guards(&[gate("./check.sh", None)], dir.path());
        let found = check_and_restore(
            &guards,
            &[change("check.sh", ChangeKind::Modified), change("calc.py", ChangeKind::Modified)],
            dir.path(),
            &|path| (path == "check.sh").then(|| Some(b"python3 -m unittest\n".to_vec())),
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].restored);
        assert_eq!(std::fs::read_to_string(dir.path().join("check.sh")).unwrap(), "python3 -m unittest\n");
        assert_eq!(found[0].diff, "-python3 -m unittest\n+exit 0");
    }
}
