//! `llm-review`: a quality gate that asks the LLM Obra is configured with (through the host's `llm` import,
//! never directly) to review the agent's work, with a JSON schema for the reply:
//! `{"score": 0..1, "passed": bool, "findings": [{"severity", "path", "line", "message"}]}`.
//!
//! The request holds the task, the agent's summary and the changed files: the contents of created and
//! modified files read through the workspace import, and the names of deleted ones, within `max_bytes` in
//! all (a file over what is left is cut, later files are only named). The gate passes when the reviewer says
//! `passed` and its score is at least `min_score`. With no LLM configured (or one that does not answer) the
//! check is an error that says so, and the engine records the gate as failed.
//!
//! Config: `min_score` (default 0.7), `max_bytes` (default 60000), `instructions` (extra text for the
//! reviewer, e.g. the project's conventions; default none), `max_tokens` (reply limit, default 2048).

use obra_plugin_sdk::llm;
use obra_plugin_sdk::quality_gate::{ChangeKind, FileChange, Finding, GateInput, GateResult, QualityGate, Severity};
use obra_plugin_sdk::{
    CompletionRequest, Message, PluginError, ResultExt, TaskInfo, config, export_quality_gate, workspace,
};
use serde::Deserialize;

/// The gate's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Lowest reviewer score that passes.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Most bytes of file contents put in the request.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Extra instructions for the reviewer.
    #[serde(default)]
    pub instructions: String,
    /// Token limit of the reply.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_min_score() -> f32 {
    0.7
}

fn default_max_bytes() -> usize {
    60_000
}

fn default_max_tokens() -> u32 {
    2048
}

impl Config {
    fn parse(json: &str) -> Result<Self, PluginError> {
        let cfg: Config = config(json)?;
        if !(0.0..=1.0).contains(&cfg.min_score) {
            return Err(PluginError::fatal(format!(
                "invalid config: at `min_score`: {} is outside 0.0..=1.0",
                cfg.min_score
            )));
        }
        Ok(cfg)
    }
}

/// The JSON schema of the reviewer's reply.
pub const SCHEMA: &str = r#"{"type":"object","properties":{"score":{"type":"number","minimum":0,"maximum":1},"passed":{"type":"boolean"},"findings":{"type":"array","items":{"type":"object","properties":{"severity":{"type":"string","enum":["info","warning","error"]},"path":{"type":["string","null"]},"line":{"type":["integer","null"]},"message":{"type":"string"}},"required":["severity","message"]}}},"required":["score","passed","findings"]}"#;

/// The reviewer's reply.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Review {
    /// 0 (unacceptable) to 1 (excellent).
    pub score: f32,
    /// Whether the work is acceptable.
    pub passed: bool,
    /// What the reviewer found.
    #[serde(default)]
    pub findings: Vec<ReviewFinding>,
}

/// One finding of the reviewer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ReviewFinding {
    /// `info`, `warning` or `error` (anything else counts as a warning).
    #[serde(default)]
    pub severity: String,
    /// The file concerned.
    #[serde(default)]
    pub path: Option<String>,
    /// The line concerned.
    #[serde(default)]
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// A changed file as the reviewer sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FileView {
    /// Its contents, cut when `cut`.
    Text { path: String, kind: &'static str, text: String, cut: bool },
    /// Named only: deleted, binary, unreadable, or no room left.
    Named { path: String, why: String },
}

/// Read the changed files within `max_bytes` in all, with `read` (the workspace import in the plugin).
pub fn collect_files(
    changes: &[FileChange],
    max_bytes: usize,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, PluginError>,
) -> Vec<FileView> {
    let mut left = max_bytes;
    let mut out = Vec::new();
    for c in changes {
        let kind = match c.kind {
            ChangeKind::Deleted => {
                out.push(FileView::Named { path: c.path.clone(), why: "deleted".into() });
                continue;
            }
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
        };
        if left == 0 {
            out.push(FileView::Named { path: c.path.clone(), why: format!("{kind}; not shown: max_bytes reached") });
            continue;
        }
        match read(&c.path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(mut text) => {
                    let cut = text.len() > left;
                    if cut {
                        let mut end = left;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                    }
                    left -= text.len();
                    out.push(FileView::Text { path: c.path.clone(), kind, text, cut });
                }
                Err(_) => out.push(FileView::Named { path: c.path.clone(), why: format!("{kind}; binary") }),
            },
            Err(e) => {
                out.push(FileView::Named { path: c.path.clone(), why: format!("{kind}; unreadable: {}", e.message()) })
            }
        }
    }
    out
}

/// The messages sent to the reviewer.
pub fn messages(cfg: &Config, task: &TaskInfo, summary: &str, files: &[FileView]) -> Vec<Message> {
    let mut system = String::from(
        "You are a careful code reviewer. Judge whether the changes accomplish the task correctly and safely. \
         Answer with JSON only: score (0 to 1), passed (whether the work is acceptable), and findings, each with \
         severity (info, warning or error), path and line when known, and a message the author can act on.",
    );
    if !cfg.instructions.trim().is_empty() {
        system.push_str("\n\nProject instructions:\n");
        system.push_str(cfg.instructions.trim());
    }
    let mut user = format!(
        "# Task\n{}\n\n{}\n\n# The agent's summary\n{}\n\n# Changed files\n",
        task.title,
        task.description,
        summary.trim()
    );
    if files.is_empty() {
        user.push_str("(none)\n");
    }
    for f in files {
        match f {
            FileView::Text { path, kind, text, cut } => {
                let note = if *cut { " (cut at max_bytes)" } else { "" };
                user.push_str(&format!("\n## {path} ({kind}){note}\n```\n{text}\n```\n"));
            }
            FileView::Named { path, why } => user.push_str(&format!("\n## {path} ({why})\n")),
        }
    }
    vec![Message::system(system), Message::user(user)]
}

/// The verdict from the reviewer's reply.
pub fn judge(cfg: &Config, review: Review) -> GateResult {
    let score = if review.score.is_nan() { 0.0 } else { review.score.clamp(0.0, 1.0) };
    let findings: Vec<Finding> = review
        .findings
        .into_iter()
        .map(|f| {
            let severity = match f.severity.to_ascii_lowercase().as_str() {
                "error" => Severity::Error,
                "info" => Severity::Info,
                _ => Severity::Warning,
            };
            Finding { severity, message: f.message, path: f.path.filter(|p| !p.is_empty()), line: f.line }
        })
        .collect();
    let passed = review.passed && score >= cfg.min_score;
    let summary = format!(
        "LLM review: score {score:.2} (min_score {:.2}), {}, {} finding(s)",
        cfg.min_score,
        if review.passed { "acceptable" } else { "not acceptable" },
        findings.len()
    );
    GateResult { passed, score, findings, summary }
}

/// The gate.
pub struct LlmReview;

impl QualityGate for LlmReview {
    fn describe() -> String {
        "Asks the configured LLM to review the task's changes; passes on an acceptable verdict above min_score".into()
    }

    fn check(input: GateInput) -> Result<GateResult, PluginError> {
        let cfg = Config::parse(&input.config)?;
        let files = collect_files(&input.changes, cfg.max_bytes, &mut |p: &str| workspace::read(p));
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is valid JSON");
        let request = CompletionRequest::new(messages(&cfg, &input.task, &input.agent_result.summary, &files))
            .json_schema(&schema)
            .max_tokens(cfg.max_tokens);
        let reply = llm::complete(&request).context(
            "llm-review could not ask the LLM (it needs one: configure llm.provider and make sure it answers, or disable this gate)",
        )?;
        let review: Review = llm::parse_json_reply(&reply.text).context("llm-review")?;
        Ok(judge(&cfg, review))
    }
}

export_quality_gate!(LlmReview);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(r#"{"min_score": 0.6, "max_bytes": 10, "instructions": "Use tabs."}"#).unwrap()
    }

    fn change(path: &str, kind: ChangeKind) -> FileChange {
        FileChange { path: path.into(), kind, size: None }
    }

    #[test]
    fn files_are_read_within_the_byte_cap() {
        let changes = [
            change("a.txt", ChangeKind::Created),
            change("gone.txt", ChangeKind::Deleted),
            change("b.txt", ChangeKind::Modified),
            change("c.bin", ChangeKind::Modified),
            change("d.txt", ChangeKind::Modified),
        ];
        let mut read = |p: &str| -> Result<Vec<u8>, PluginError> {
            match p {
                "a.txt" => Ok(b"123456".to_vec()),
                "b.txt" => Ok(b"abcdefgh".to_vec()),
                _ => Ok(vec![0xff, 0xfe]),
            }
        };
        let files = collect_files(&changes, 10, &mut read);
        assert_eq!(
            files[0],
            FileView::Text { path: "a.txt".into(), kind: "created", text: "123456".into(), cut: false }
        );
        assert_eq!(files[1], FileView::Named { path: "gone.txt".into(), why: "deleted".into() });
        assert_eq!(files[2], FileView::Text { path: "b.txt".into(), kind: "modified", text: "abcd".into(), cut: true });
        assert!(matches!(&files[3], FileView::Named { why, .. } if why.contains("max_bytes")));
        let task = TaskInfo {
            id: 1,
            title: "Add greet".into(),
            description: "say hello".into(),
            iteration: 1,
            max_iterations: 3,
        };
        let m = messages(&cfg(), &task, "done", &files);
        assert!(m[0].content.contains("Use tabs."));
        for part in [
            "Add greet",
            "say hello",
            "done",
            "## a.txt (created)",
            "123456",
            "(cut at max_bytes)",
            "## gone.txt (deleted)",
        ] {
            assert!(m[1].content.contains(part), "{part}: {}", m[1].content);
        }
    }

    #[test]
    fn the_verdict_needs_passed_and_the_minimum_score() {
        let reply = r#"{"score": 0.9, "passed": true, "findings": [{"severity": "info", "message": "fine"}]}"#;
        let g = judge(&cfg(), llm::parse_json_reply(reply).unwrap());
        assert!(g.passed);
        assert_eq!(g.summary, "LLM review: score 0.90 (min_score 0.60), acceptable, 1 finding(s)");
        let reply = r#"{"score": 0.3, "passed": false, "findings": [{"severity": "error", "path": "a.rs", "line": 4, "message": "off by one"}]}"#;
        let g = judge(&cfg(), llm::parse_json_reply(reply).unwrap());
        assert!(!g.passed);
        assert_eq!(g.findings[0].severity, Severity::Error);
        assert_eq!((g.findings[0].path.as_deref(), g.findings[0].line), (Some("a.rs"), Some(4)));
        let g = judge(&cfg(), Review { score: 0.5, passed: true, findings: vec![] });
        assert!(!g.passed, "below min_score");
        assert!(Config::parse(r#"{"min_score": 2}"#).unwrap_err().message().contains("min_score"));
        let _: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    }
}
