//! `destructive-change`: pause when an iteration deleted more than `max_deleted_files` files, changed more than
//! `max_changed_files` files (a sweeping rewrite a task rarely asks for), or changed (created, modified or
//! deleted) any file matching a `protected` glob.

use serde::Deserialize;

use super::{how_to_resolve, some_paths};
use crate::contract::{ChangeKind, FileChange, Verdict};

/// The rule's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Pause when more files than this were deleted in one iteration.
    #[serde(default = "default_max_deleted")]
    pub max_deleted_files: u32,
    /// Pause when more files than this changed (created, modified or deleted) in one iteration; 0 for no limit.
    #[serde(default = "default_max_changed")]
    pub max_changed_files: u32,
    /// Globs of paths (relative to the workspace, `/`-separated) no change may touch: `*` within one path
    /// segment, `**` across segments, `?` one character.
    #[serde(default)]
    pub protected: Vec<String>,
}

fn default_max_deleted() -> u32 {
    10
}

fn default_max_changed() -> u32 {
    25
}

/// How the globs match: `*` stays within a path segment, a leading dot needs no literal dot.
const MATCH: glob::MatchOptions =
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

impl Config {
    /// Check the globs compile.
    pub(super) fn checked(self) -> Result<Self, String> {
        for (i, pattern) in self.protected.iter().enumerate() {
            glob::Pattern::new(pattern).map_err(|e| format!("protected[{i}]: {pattern:?} is not a valid glob: {e}"))?;
        }
        Ok(self)
    }

    /// Judge one iteration's changes.
    pub(super) fn evaluate(&self, changes: &[FileChange], key: &str) -> Verdict {
        let patterns: Vec<glob::Pattern> = self.protected.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
        let touched: Vec<&FileChange> =
            changes.iter().filter(|c| patterns.iter().any(|p| p.matches_with(&c.path, MATCH))).collect();
        if !touched.is_empty() {
            let list = some_paths(touched.iter().map(|c| c.path.as_str()), 5);
            let kinds: Vec<String> =
                touched.iter().take(5).map(|c| format!("{} {}", c.path, c.kind.as_str())).collect();
            return Verdict::Pause(format!(
                "the agent changed {} protected path(s): {} ({}; protected by {key}.protected). {}",
                touched.len(),
                list,
                kinds.join(", "),
                how_to_resolve(
                    "Check the change (`obra checkpoint rollback` restores the workspace from before the run). "
                )
            ));
        }
        let deleted: Vec<&str> =
            changes.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| c.path.as_str()).collect();
        if deleted.len() > self.max_deleted_files as usize {
            return Verdict::Pause(format!(
                "the agent deleted {} files in this iteration, more than {key}.max_deleted_files ({}): {}. {}",
                deleted.len(),
                self.max_deleted_files,
                some_paths(deleted.iter().copied(), 5),
                how_to_resolve(
                    "Check the deletions (`obra checkpoint rollback` restores the workspace from before the run). "
                )
            ));
        }
        if self.max_changed_files > 0 && changes.len() > self.max_changed_files as usize {
            return Verdict::Pause(format!(
                "the agent changed {} files in this iteration, more than {key}.max_changed_files ({}): {}. {}",
                changes.len(),
                self.max_changed_files,
                some_paths(changes.iter().map(|c| c.path.as_str()), 5),
                how_to_resolve(
                    "Check that the task needed all of it (`obra checkpoint diff` shows it; `obra checkpoint \
                     rollback` restores the workspace from before the run). "
                )
            ));
        }
        Verdict::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, kind: ChangeKind) -> FileChange {
        FileChange { path: path.into(), kind, size: None }
    }

    fn cfg(max: u32, protected: &[&str]) -> Config {
        Config {
            max_deleted_files: max,
            max_changed_files: 25,
            protected: protected.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_sweeping_rewrite_pauses_above_the_changed_files_limit() {
        let c = cfg(10, &[]);
        let many: Vec<_> = (0..26).map(|i| change(&format!("src/m{i}.py"), ChangeKind::Modified)).collect();
        let Verdict::Pause(reason) = c.evaluate(&many, "rules[2].config") else { panic!("no pause") };
        assert!(reason.contains("changed 26 files") && reason.contains("max_changed_files (25)"), "{reason}");
        assert_eq!(c.evaluate(&many[..25], "rules[2].config"), Verdict::Proceed);
        let unlimited = Config { max_changed_files: 0, ..c };
        assert_eq!(unlimited.evaluate(&many, "rules[2].config"), Verdict::Proceed);
    }

    #[test]
    fn more_deletions_than_the_limit_pause() {
        let c = cfg(2, &[]);
        let two: Vec<_> = (0..2).map(|i| change(&format!("f{i}"), ChangeKind::Deleted)).collect();
        assert_eq!(c.evaluate(&two, "rules[0].config"), Verdict::Proceed);
        let mut three = two.clone();
        three.push(change("f2", ChangeKind::Deleted));
        three.push(change("new", ChangeKind::Created));
        let Verdict::Pause(reason) = c.evaluate(&three, "rules[0].config") else { panic!("no pause") };
        assert!(reason.contains("deleted 3 files"), "{reason}");
        assert!(reason.contains("rules[0].config.max_deleted_files (2)"), "{reason}");
        assert!(reason.contains("f0, f1, f2") && reason.contains("--feedback"), "{reason}");
    }

    #[test]
    fn any_change_to_a_protected_path_pauses() {
        let c = cfg(10, &[".git/**", ".env", ".env.*", "secrets/*.key"]);
        for path in [".env", ".env.local", ".git/config", ".git/refs/heads/main", "secrets/a.key"] {
            let v = c.evaluate(&[change(path, ChangeKind::Modified)], "rules[1].config");
            let Verdict::Pause(reason) = v else { panic!("{path} is protected") };
            assert!(reason.contains(path) && reason.contains("rules[1].config.protected"), "{reason}");
        }
        for path in ["src/.env", "env", "secrets/sub/a.key", "a.env"] {
            assert_eq!(c.evaluate(&[change(path, ChangeKind::Created)], "k"), Verdict::Proceed, "{path}");
        }
        assert!(cfg(1, &["[a"]).checked().unwrap_err().contains("protected[0]"));
    }
}
