//! Gates that the agent cannot weaken. Each gate has protected paths: its `protect` globs and, for a gate that
//! runs a command, the workspace files and directories that command names (the script `./check.sh` runs, the
//! `tests` directory `pytest tests` collects). The `tests` gate without `protect` also guards the usual test
//! file layouts. When an agent run modified or deleted a protected path (a new test file is fine), the path is
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
    /// Files its command names: even creating one counts.
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
            let (named, mut globs) = named_by_command(command, workspace);
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

/// The workspace files (and, as `dir/**` globs, directories) a shell command names, e.g. `./check.sh`,
/// `sh scripts/test.sh`, `pytest tests`; and `make`'s makefile.
pub fn named_by_command(command: &str, workspace: &Path) -> (Vec<String>, Vec<String>) {
    let Ok(root) = workspace.canonicalize() else { return (Vec::new(), Vec::new()) };
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let words = command
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '<' | '>'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
        .filter(|w| !w.is_empty() && !w.starts_with('-') && !w.contains('=') && !w.contains('$'));
    let mut first = true;
    for word in words {
        if first && word == "make" {
            for makefile in ["GNUmakefile", "makefile", "Makefile"] {
                if root.join(makefile).is_file() {
                    files.push(makefile.to_string());
                }
            }
        }
        first = false;
        let candidate = root.join(word);
        let Ok(resolved) = candidate.canonicalize() else { continue };
        let Ok(relative) = resolved.strip_prefix(&root) else { continue };
        let relative = relative.to_string_lossy().replace('\\', "/");
        if relative.is_empty() || relative.starts_with(".obra") || relative.starts_with(".git") {
            continue;
        }
        if resolved.is_file() && !files.contains(&relative) {
            files.push(relative);
        } else if resolved.is_dir() && !dirs.contains(&format!("{relative}/**")) {
            dirs.push(format!("{relative}/**"));
        }
    }
    (files, dirs)
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
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let (old, new) = (text(before), text(after));
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut lines: Vec<String> = old.iter().filter(|l| !new.contains(l)).map(|l| format!("-{l}")).collect();
    lines.extend(new.iter().filter(|l| !old.contains(l)).map(|l| format!("+{l}")));
    if after.is_none() {
        lines.push("(the agent deleted the file)".into());
    }
    let total = lines.len();
    lines.truncate(30);
    if total > 30 {
        lines.push(format!("... {} more line(s)", total - 30));
    }
    lines.join("\n")
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
    fn the_script_a_command_runs_and_the_directories_it_names_are_protected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("check.sh"), "exit 1\n").unwrap();
        std::fs::create_dir_all(dir.path().join("spec/unit")).unwrap();
        std::fs::write(dir.path().join("Makefile"), "test:\n").unwrap();
        let (files, dirs) = named_by_command("./check.sh && pytest -q spec --maxfail=1", dir.path());
        assert_eq!((files, dirs), (vec!["check.sh".to_string()], vec!["spec/**".to_string()]));
        assert_eq!(named_by_command("make test", dir.path()).0, ["Makefile"]);
        assert_eq!(named_by_command("sh '../outside.sh'; cargo test", dir.path()), (vec![], vec![]));
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
