//! `expected-files`: a deterministic quality gate on which files the run produced.
//!
//! Config (each a list of globs over workspace paths, `/`-separated: `*` within a segment, `**` across
//! segments, `?` one character; all optional):
//! - `must_exist`: each pattern matches at least one file in the workspace after the run;
//! - `must_change`: each pattern matches at least one file the run created, modified or deleted;
//! - `must_not_change`: no file the run changed matches any of these patterns.
//!
//! Each pattern is one check; the score is the share of checks that pass and the gate passes when all do.
//! Every failed check is an `error` finding naming the pattern (and the offending file), written as feedback
//! for the agent. The workspace walk for `must_exist` skips `.git/` and `.obra/` and stops after
//! `max_entries` entries (default 20000).

use obra_plugin_sdk::quality_gate::{FileChange, Finding, GateInput, GateResult, QualityGate};
use obra_plugin_sdk::workspace::DirEntry;
use obra_plugin_sdk::{PluginError, config, export_quality_gate, glob_match, workspace};
use serde::Deserialize;

/// The gate's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Patterns that must each match an existing file.
    #[serde(default)]
    pub must_exist: Vec<String>,
    /// Patterns that must each match a changed file.
    #[serde(default)]
    pub must_change: Vec<String>,
    /// Patterns no changed file may match.
    #[serde(default)]
    pub must_not_change: Vec<String>,
    /// Most directory entries the `must_exist` walk reads.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

fn default_max_entries() -> usize {
    20_000
}

/// Directories the walk never enters.
const SKIPPED: &[&str] = &[".git", ".obra"];

/// Whether any file matches `pattern`, listing directories with `list` (relative paths, `""` the root). Only
/// the part of the tree under the pattern's literal prefix is walked; `budget` bounds the entries read.
pub fn any_file_matches(
    pattern: &str,
    list: &mut dyn FnMut(&str) -> Result<Vec<DirEntry>, PluginError>,
    budget: &mut usize,
) -> Result<bool, PluginError> {
    let pattern = pattern.trim_start_matches("./");
    let literal: Vec<&str> = pattern.split('/').take_while(|s| !s.contains(['*', '?', '['])).collect::<Vec<_>>();
    let segments = pattern.split('/').count();
    // A pattern without wildcards names one file: look for it in its directory.
    let start = if literal.len() == segments { literal[..literal.len() - 1].join("/") } else { literal.join("/") };
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match list(&dir) {
            Ok(e) => e,
            Err(e @ PluginError::Denied(_)) => return Err(e),
            Err(_) => continue, // a directory that does not exist holds no match
        };
        for entry in entries {
            if *budget == 0 {
                return Err(PluginError::fatal(format!(
                    "the workspace has more entries than max_entries allows while looking for `{pattern}`; raise max_entries or make the pattern more specific"
                )));
            }
            *budget -= 1;
            let path = if dir.is_empty() { entry.name.clone() } else { format!("{dir}/{}", entry.name) };
            if entry.is_dir {
                if !SKIPPED.contains(&entry.name.as_str()) || !dir.is_empty() {
                    stack.push(path);
                }
            } else if glob_match(pattern, &path) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Judge the run: `exists` answers `must_exist` patterns.
pub fn evaluate(
    cfg: &Config,
    changes: &[FileChange],
    exists: &mut dyn FnMut(&str) -> Result<bool, PluginError>,
) -> Result<GateResult, PluginError> {
    let mut findings = Vec::new();
    let checks = cfg.must_exist.len() + cfg.must_change.len() + cfg.must_not_change.len();
    let mut failed = 0usize;
    for pattern in &cfg.must_exist {
        if !exists(pattern)? {
            failed += 1;
            findings.push(Finding::error(format!("No file matching `{pattern}` exists; the task expects one.")));
        }
    }
    for pattern in &cfg.must_change {
        if !changes.iter().any(|c| glob_match(pattern, &c.path)) {
            failed += 1;
            findings.push(Finding::error(format!(
                "No file matching `{pattern}` was created, modified or deleted in this run; the task expects a change there."
            )));
        }
    }
    for pattern in &cfg.must_not_change {
        let touched: Vec<&FileChange> = changes.iter().filter(|c| glob_match(pattern, &c.path)).collect();
        if !touched.is_empty() {
            failed += 1;
        }
        for c in touched {
            let message =
                format!("{} was {} but files matching `{pattern}` must not change; restore it.", c.path, kind_word(c));
            findings.push(Finding::error(message).at(c.path.clone(), None));
        }
    }
    if checks == 0 {
        return Ok(GateResult::pass("no expected files configured"));
    }
    Ok(if failed == 0 {
        GateResult::pass(format!("all {checks} file expectation(s) met"))
    } else {
        GateResult::fail(format!("{failed} of {checks} file expectation(s) not met"), findings)
            .with_score((checks - failed) as f32 / checks as f32)
    })
}

fn kind_word(c: &FileChange) -> &'static str {
    match c.kind {
        obra_plugin_sdk::ChangeKind::Created => "created",
        obra_plugin_sdk::ChangeKind::Modified => "modified",
        obra_plugin_sdk::ChangeKind::Deleted => "deleted",
    }
}

/// The gate.
pub struct ExpectedFiles;

impl QualityGate for ExpectedFiles {
    fn describe() -> String {
        "Checks files that must exist, must change or must not change (glob lists)".into()
    }

    fn check(input: GateInput) -> Result<GateResult, PluginError> {
        let cfg: Config = config(&input.config)?;
        let mut budget = cfg.max_entries;
        let mut list = |dir: &str| workspace::list_dir(dir);
        let mut exists = |pattern: &str| any_file_matches(pattern, &mut list, &mut budget);
        evaluate(&cfg, &input.changes, &mut exists)
    }
}

export_quality_gate!(ExpectedFiles);

#[cfg(test)]
mod tests {
    use super::*;
    use obra_plugin_sdk::ChangeKind;

    fn tree(files: &'static [&'static str]) -> impl FnMut(&str) -> Result<Vec<DirEntry>, PluginError> {
        move |dir: &str| {
            let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
            let mut names: Vec<DirEntry> = Vec::new();
            let mut found = dir.is_empty();
            for f in files {
                if let Some(rest) = f.strip_prefix(&prefix) {
                    found = true;
                    let (name, is_dir) = match rest.split_once('/') {
                        Some((d, _)) => (d, true),
                        None => (rest, false),
                    };
                    if !names.iter().any(|e| e.name == name) {
                        names.push(DirEntry { name: name.into(), is_dir, size: 1 });
                    }
                }
            }
            if found { Ok(names) } else { Err(PluginError::fatal("no such directory")) }
        }
    }

    fn change(path: &str, kind: ChangeKind) -> FileChange {
        FileChange { path: path.into(), kind, size: None }
    }

    #[test]
    fn the_walk_finds_globs_and_literals_and_skips_git() {
        let mut list = tree(&["src/a.rs", "src/deep/b.rs", ".git/x.rs", "README.md"]);
        let mut budget = 100;
        let mut m = |p: &str| any_file_matches(p, &mut list, &mut budget).unwrap();
        assert!(m("README.md"));
        assert!(m("src/**/*.rs"));
        assert!(m("src/deep/b.rs"));
        assert!(!m("**/x.rs"), ".git is skipped");
        assert!(!m("docs/*.md"));
        assert!(!m("src/*.md"));
        let mut list = tree(&["a/1", "a/2", "a/3"]);
        let mut budget = 2;
        assert!(any_file_matches("a/none", &mut list, &mut budget).unwrap_err().message().contains("max_entries"));
    }

    #[test]
    fn expectations_fail_then_pass() {
        let cfg: Config =
            config(r#"{"must_exist": ["docs/*.md"], "must_change": ["src/**"], "must_not_change": ["*.lock"]}"#)
                .unwrap();
        let mut missing = |_: &str| Ok(false);
        let g = evaluate(&cfg, &[change("Cargo.lock", ChangeKind::Modified)], &mut missing).unwrap();
        assert!(!g.passed);
        assert_eq!(g.score, 0.0);
        assert_eq!(g.summary, "3 of 3 file expectation(s) not met");
        assert_eq!(g.findings.len(), 3);
        assert!(g.findings[0].message.contains("`docs/*.md`"));
        assert!(g.findings[1].message.contains("`src/**`"));
        assert_eq!(g.findings[2].path.as_deref(), Some("Cargo.lock"));
        assert!(g.findings[2].message.contains("was modified"), "{}", g.findings[2].message);

        let mut present = |_: &str| Ok(true);
        let g = evaluate(&cfg, &[change("src/lib.rs", ChangeKind::Created)], &mut present).unwrap();
        assert!(g.passed, "{g:?}");
        assert_eq!(g.score, 1.0);
        let g = evaluate(&Config::default(), &[], &mut present).unwrap();
        assert!(g.passed);
        assert!(config::<Config>(r#"{"must_exists": []}"#).is_err());
    }
}
