//! Prompts in the seeds' hybrid format: a JSON `<METADATA>` block plus `<INSTRUCTION>` text, rendered with
//! minijinja from templates embedded from `config/templates/`, each overridable per project by
//! `.obra/templates/<name>.j2`, with the prompt rules of [`super::prompt_rules`] injected. docs/prompts.md
//! lists the templates and their variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Value, json};

use super::gates::GateCommand;
use super::prompt_context::PromptContext;
use super::prompt_rules::{PromptRules, PromptType};
use crate::contract::FileChange;
use crate::state::{GateRecord, Project, Task};

/// The built-in templates, by prompt type.
const BUILTIN: [(PromptType, &str); 5] = [
    (PromptType::TaskExecution, include_str!("../../../config/templates/task_execution.j2")),
    (PromptType::Validation, include_str!("../../../config/templates/validation.j2")),
    (PromptType::Decision, include_str!("../../../config/templates/decision.j2")),
    (PromptType::ErrorAnalysis, include_str!("../../../config/templates/error_analysis.j2")),
    (PromptType::CommitMessage, include_str!("../../../config/templates/commit_message.j2")),
];

/// The JSON schema of the LLM's opinion (validation prompt).
pub const OPINION_SCHEMA: &str = r#"{"type":"object","properties":{"confidence":{"type":"number","minimum":0,"maximum":1},"reasoning":{"type":"string"},"concerns":{"type":"array","items":{"type":"string"}}},"required":["confidence","reasoning"]}"#;
/// The JSON schema of the LLM's error analysis.
pub const ERROR_ANALYSIS_SCHEMA: &str = r#"{"type":"object","properties":{"diagnosis":{"type":"string","minLength":1},"suggested_fixes":{"type":"array","items":{"type":"string"}}},"required":["diagnosis","suggested_fixes"]}"#;
/// The JSON schema of the LLM's clarification request (decision prompt).
pub const DECISION_SCHEMA: &str = r#"{"type":"object","properties":{"clarification":{"type":"string","minLength":1},"questions":{"type":"array","items":{"type":"string"}}},"required":["clarification"]}"#;
/// The JSON schema of the LLM's commit message.
pub const COMMIT_MESSAGE_SCHEMA: &str = r#"{"type":"object","properties":{"subject":{"type":"string","minLength":1},"body":{"type":"string"}},"required":["subject"]}"#;

/// Renders the loop's prompts.
pub struct PromptRenderer {
    env: Environment<'static>,
    /// Where each template came from, for error messages: the override's path or the built-in file.
    origins: BTreeMap<&'static str, String>,
    rules: PromptRules,
}

impl Default for PromptRenderer {
    fn default() -> Self {
        Self::new()
    }
}

/// What the task-execution prompt is made of.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPromptInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// The task.
    pub task: &'a Task,
    /// Iteration number, from 1.
    pub iteration: u32,
    /// Iteration limit.
    pub max_iterations: u32,
    /// Findings and explanations from the previous iteration, one per item.
    pub feedback: &'a [String],
    /// Feedback a human gave when resolving a breakpoint.
    pub human_feedback: Option<&'a str>,
    /// History, dependencies, project and milestone, selected to fit the token budget.
    pub context: &'a PromptContext,
    /// The commands the enabled gates run (tests, lint), which the agent is told to check its work with.
    pub checks: &'a [GateCommand],
}

/// What the validation prompt (the LLM's opinion) is made of.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationPromptInput<'a> {
    /// The task.
    pub task: &'a Task,
    /// The agent's outcome.
    pub outcome: &'a str,
    /// The agent's final message.
    pub summary: &'a str,
    /// Files changed.
    pub changes: &'a [FileChange],
    /// Gate results.
    pub gates: &'a [GateRecord],
}

/// What the decision prompt (the LLM writes a CLARIFY request) is made of.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionPromptInput<'a> {
    /// The task.
    pub task: &'a Task,
    /// Iteration number, from 1.
    pub iteration: u32,
    /// Iteration limit.
    pub max_iterations: u32,
    /// The combined confidence.
    pub confidence: f32,
    /// The decision's explanation.
    pub explanation: &'a str,
    /// The agent's final message.
    pub summary: &'a str,
    /// The LLM reviewer's concerns.
    pub concerns: &'a [String],
    /// Gate results.
    pub gates: &'a [GateRecord],
}

/// What the error-analysis prompt is made of.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorAnalysisPromptInput<'a> {
    /// The task.
    pub task: &'a Task,
    /// Iteration number, from 1.
    pub iteration: u32,
    /// The agent's outcome (`could-not-run` when it did not run).
    pub outcome: &'a str,
    /// The agent's final message or error.
    pub summary: &'a str,
    /// Files changed.
    pub changes: &'a [FileChange],
    /// What failed: gates with their findings, response problems, one per item.
    pub failures: &'a [String],
}

/// What the commit-message prompt (and its fallback) is made of.
#[derive(Debug, Clone, Serialize)]
pub struct CommitPromptInput<'a> {
    /// The project.
    pub project: &'a Project,
    /// The task.
    pub task: &'a Task,
    /// The agent's final summary.
    pub summary: &'a str,
    /// Files changed.
    pub changes: &'a [FileChange],
}

fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).build().expect("trim_blocks is a valid syntax config"));
    // A typo in an override (`{{ task.titel }}`) is an error, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// A minijinja error as "ORIGIN, line N: what" (the line when minijinja knows it).
fn describe(origin: &str, e: &minijinja::Error) -> String {
    let line = e.line().map(|l| format!(", line {l}")).unwrap_or_default();
    let mut what = e.kind().to_string();
    if let Some(detail) = e.detail() {
        what.push_str(": ");
        what.push_str(detail);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        what.push_str(&format!(": {s}"));
        source = s.source();
    }
    format!("{origin}{line}: {what}")
}

impl PromptRenderer {
    /// A renderer with the built-in templates and rules.
    pub fn new() -> Self {
        let mut env = new_env();
        let mut origins = BTreeMap::new();
        for (ty, source) in BUILTIN {
            env.add_template(ty.as_str(), source)
                .unwrap_or_else(|e| panic!("built-in template {}.j2 does not parse: {e}", ty.as_str()));
            origins.insert(ty.as_str(), format!("config/templates/{}.j2 (built in)", ty.as_str()));
        }
        Self { env, origins, rules: PromptRules::builtin() }
    }

    /// A renderer for the project at `project_root` (the directory holding `.obra/`): its
    /// `.obra/templates/<name>.j2` replace the built-in templates and its `.obra/prompt_rules.yaml` extends
    /// the rules. An override that does not parse, an unknown template file or a bad rules file is an error
    /// naming the file and line; every template is also rendered once with sample data, so a template
    /// that fails at render time is caught here too.
    pub fn for_project(project_root: &Path) -> Result<Self> {
        let mut renderer = Self::new();
        renderer.rules = PromptRules::for_project(project_root).map_err(|e| anyhow!(e))?;
        let dir = project_root.join(".obra").join("templates");
        let mut overrides: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(anyhow!("cannot read {}: {e}", dir.display())),
        };
        overrides.sort();
        for path in overrides {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let known = PromptType::parse(stem).filter(|_| path.extension().is_some_and(|e| e == "j2"));
            let Some(ty) = known else {
                let names: Vec<String> = PromptType::ALL.iter().map(|t| format!("{}.j2", t.as_str())).collect();
                return Err(anyhow!(
                    "{}: not a template Obra knows; the files in {} must be named {}",
                    path.display(),
                    dir.display(),
                    names.join(", ")
                ));
            };
            let source = std::fs::read_to_string(&path).map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
            let origin = path.display().to_string();
            renderer.env.add_template_owned(ty.as_str(), source).map_err(|e| anyhow!(describe(&origin, &e)))?;
            renderer.origins.insert(ty.as_str(), origin);
        }
        renderer.check()?;
        Ok(renderer)
    }

    /// Render every template once with sample data; the first failure names the file and line.
    pub fn check(&self) -> Result<()> {
        let project = sample::project();
        let task = sample::task();
        let changes =
            vec![FileChange { path: "src/lib.rs".into(), kind: crate::contract::ChangeKind::Modified, size: Some(10) }];
        let gates = vec![sample::gate()];
        let strings = vec!["an item".to_string()];
        let context = PromptContext::sample();
        self.task_prompt(&TaskPromptInput {
            project: &project,
            task: &task,
            iteration: 2,
            max_iterations: 3,
            feedback: &strings,
            human_feedback: Some("a human's note"),
            context: &context,
            checks: &[GateCommand { name: "tests".into(), command: "make test".into(), cwd: Some("sub".into()) }],
        })?;
        let validation = ValidationPromptInput {
            task: &task,
            outcome: "success",
            summary: "done",
            changes: &changes,
            gates: &gates,
        };
        self.validation_prompt(&validation)?;
        self.decision_prompt(&DecisionPromptInput {
            task: &task,
            iteration: 1,
            max_iterations: 3,
            confidence: 0.7,
            explanation: "why",
            summary: "done",
            concerns: &strings,
            gates: &gates,
        })?;
        self.error_analysis_prompt(&ErrorAnalysisPromptInput {
            task: &task,
            iteration: 1,
            outcome: "success",
            summary: "done",
            changes: &changes,
            failures: &strings,
        })?;
        self.commit_message_prompt(&CommitPromptInput {
            project: &project,
            task: &task,
            summary: "done",
            changes: &changes,
        })?;
        Ok(())
    }

    /// The rules in force.
    pub fn rules(&self) -> &PromptRules {
        &self.rules
    }

    /// Render `ty` with `metadata` (the rules are added to it) and the template variables `vars`.
    fn render(&self, ty: PromptType, mut metadata: Value, vars: Value) -> Result<String> {
        let rules = self.rules.for_prompt(ty);
        metadata["prompt_type"] = json!(ty.as_str());
        metadata["rules"] = json!(
            rules.iter().map(|r| json!({"id": r.id, "severity": r.severity, "text": r.text})).collect::<Vec<_>>()
        );
        let mut vars = vars;
        vars["metadata"] = json!(serde_json::to_string_pretty(&metadata)?);
        vars["rules"] = serde_json::to_value(&rules)?;
        let origin = self.origins.get(ty.as_str()).map(String::as_str).unwrap_or("template");
        let template = self.env.get_template(ty.as_str()).map_err(|e| anyhow!(describe(origin, &e)))?;
        template
            .render(Serde(vars))
            .map_err(|e| anyhow!("cannot render the {} prompt: {}", ty.as_str(), describe(origin, &e)))
    }

    /// The prompt that asks the agent to do (or redo) the task.
    pub fn task_prompt(&self, input: &TaskPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "project": input.project.name,
            "task_id": input.task.id,
            "iteration": input.iteration,
            "max_iterations": input.max_iterations,
            "has_feedback": !input.feedback.is_empty() || input.human_feedback.is_some(),
            "context": {
                "budget_tokens": input.context.budget_tokens,
                "estimated_tokens": input.context.estimated_tokens,
                "omitted": input.context.omitted,
            },
            "expectations": {
                "summary": "end with a short summary of the changes",
                "tests": "leave the project's tests passing",
            },
            "checks": input.checks,
        });
        let vars = json!({
            "project": input.project,
            "task": input.task,
            "iteration": input.iteration,
            "max_iterations": input.max_iterations,
            "feedback": input.feedback,
            "human_feedback": input.human_feedback,
            "context": input.context,
            "checks": input.checks,
        });
        self.render(PromptType::TaskExecution, metadata, vars)
    }

    /// The prompt that asks the LLM for its opinion of an iteration (answer: [`OPINION_SCHEMA`]).
    pub fn validation_prompt(&self, input: &ValidationPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "task_id": input.task.id,
            "response_schema": "confidence (0..1), reasoning, concerns[]",
        });
        let vars = json!({
            "task": input.task,
            "outcome": input.outcome,
            "summary": input.summary,
            "changes": input.changes,
            "gates": input.gates,
        });
        self.render(PromptType::Validation, metadata, vars)
    }

    /// The prompt that asks the LLM to write a CLARIFY request to the agent (answer: [`DECISION_SCHEMA`]).
    pub fn decision_prompt(&self, input: &DecisionPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "task_id": input.task.id,
            "decision": "clarify",
            "confidence": input.confidence,
            "response_schema": "clarification, questions[]",
        });
        self.render(PromptType::Decision, metadata, serde_json::to_value(input)?)
    }

    /// The prompt that asks the LLM why an iteration failed (answer: [`ERROR_ANALYSIS_SCHEMA`]).
    pub fn error_analysis_prompt(&self, input: &ErrorAnalysisPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "task_id": input.task.id,
            "iteration": input.iteration,
            "outcome": input.outcome,
            "response_schema": "diagnosis, suggested_fixes[]",
        });
        self.render(PromptType::ErrorAnalysis, metadata, serde_json::to_value(input)?)
    }

    /// The prompt that asks the LLM for a commit message (answer: [`COMMIT_MESSAGE_SCHEMA`]; turn the answer
    /// into text with [`commit_message_from_reply`], or use [`PromptRenderer::fallback_commit_message`]
    /// without an LLM).
    pub fn commit_message_prompt(&self, input: &CommitPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "task_id": input.task.id,
            "files_changed": input.changes.len(),
            "response_schema": "subject, body",
        });
        self.render(PromptType::CommitMessage, metadata, serde_json::to_value(input)?)
    }

    /// A conventional commit message written without an LLM: `fix:` when the title says fix/bug, `feat:`
    /// otherwise; the subject is the title (cut to 72 characters), the body the agent's summary and the files.
    pub fn fallback_commit_message(&self, input: &CommitPromptInput<'_>) -> String {
        let title = input.task.title.trim();
        let lower = title.to_lowercase();
        let kind =
            if ["fix", "bug", "repair", "correct"].iter().any(|w| lower.starts_with(w)) { "fix" } else { "feat" };
        // "Fix the parser" reads "fix: the parser", not "fix: fix the parser".
        let title = match title.split_once(' ') {
            Some((verb, rest))
                if kind == "fix" && ["fix", "fixes", "fixed"].contains(&verb.to_lowercase().as_str()) =>
            {
                rest.trim_start()
            }
            _ => title,
        };
        let mut first: String = title.chars().next().map(|c| c.to_lowercase().collect()).unwrap_or_default();
        first.extend(title.chars().skip(1));
        let mut subject = format!("{kind}: {}", first.trim_end_matches('.'));
        if subject.chars().count() > 72 {
            subject = subject.chars().take(69).collect::<String>() + "...";
        }
        let mut message = subject;
        let summary = input.summary.trim();
        if !summary.is_empty() {
            message.push_str("\n\n");
            message.push_str(&wrap(summary, 72));
        }
        if !input.changes.is_empty() {
            message.push_str("\n\nFiles:\n");
            for c in input.changes {
                message.push_str(&format!("- {} {}\n", c.kind.as_str(), c.path));
            }
            message.truncate(message.trim_end().len());
        }
        message.push_str(&format!("\n\nObra-Task: {}", input.task.id));
        message
    }
}

/// The commit message text of an LLM's [`COMMIT_MESSAGE_SCHEMA`] answer: subject, blank line, body.
pub fn commit_message_from_reply(subject: &str, body: &str, task_id: i64) -> String {
    let subject: String = subject.lines().next().unwrap_or_default().trim().chars().take(72).collect();
    let body = body.trim();
    let mut message = subject;
    if !body.is_empty() {
        message.push_str("\n\n");
        message.push_str(body);
    }
    message.push_str(&format!("\n\nObra-Task: {task_id}"));
    message
}

/// Wrap `text` at `width` characters on word boundaries, keeping its line breaks.
fn wrap(text: &str, width: usize) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split_whitespace() {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push(current);
    }
    out.join("\n")
}

/// Sample data for [`PromptRenderer::check`] and the tests.
pub(crate) mod sample {
    use crate::state::{GateRecord, Project, Task};

    /// A project.
    pub fn project() -> Project {
        Project {
            id: 1,
            name: "demo".into(),
            workspace: "/w".into(),
            created_at: String::new(),
            description: "A demo project.".into(),
            profile: None,
        }
    }

    /// A pending task.
    pub fn task() -> Task {
        Task {
            id: 7,
            project_id: 1,
            title: "Add a greeting".into(),
            description: "Write greet.sh".into(),
            priority: 5,
            status: crate::state::TaskStatus::Pending,
            status_reason: None,
            depends_on: vec![],
            attempts: 0,
            max_iterations: None,
            session_id: None,
            created_at: String::new(),
            updated_at: String::new(),
            profile: None,
            git_branch: None,
            git_base_commit: None,
            git_commit: None,
            resume_after: None,
            milestone: None,
        }
    }

    /// A failed tests gate.
    pub fn gate() -> GateRecord {
        GateRecord {
            gate: "tests".into(),
            passed: false,
            score: 0.0,
            summary: "1 test failed".into(),
            findings: vec![],
            error: None,
            duration_ms: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sample::{project, task};
    use super::*;

    fn metadata(text: &str) -> Value {
        let meta = text.split("<METADATA>").nth(1).unwrap().split("</METADATA>").next().unwrap();
        serde_json::from_str(meta).unwrap()
    }

    fn task_input<'a>(
        project: &'a Project,
        task: &'a Task,
        feedback: &'a [String],
        context: &'a PromptContext,
    ) -> TaskPromptInput<'a> {
        TaskPromptInput {
            project,
            task,
            iteration: 2,
            max_iterations: 3,
            feedback,
            human_feedback: None,
            context,
            checks: &[],
        }
    }

    #[test]
    fn task_prompt_has_metadata_rules_instruction_and_feedback() {
        let r = PromptRenderer::new();
        let feedback = vec!["tests failed: expected hello".to_string()];
        let ctx = PromptContext::default();
        let text = r.task_prompt(&task_input(&project(), &task(), &feedback, &ctx)).unwrap();
        let meta = metadata(&text);
        assert_eq!(meta["task_id"], 7);
        assert_eq!(meta["iteration"], 2);
        assert_eq!(meta["prompt_type"], "task_execution");
        let ids: Vec<&str> = meta["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"stay_in_scope") && !ids.contains(&"json_only"), "{ids:?}");
        assert!(text.contains("<INSTRUCTION>") && text.contains("Add a greeting") && text.contains("Write greet.sh"));
        assert!(text.contains("[critical] Never write credentials"), "{text}");
        assert!(text.contains("attempt 2 of 3"));
        assert!(text.contains("- tests failed: expected hello"));
    }

    #[test]
    fn the_prompt_names_the_gates_commands_and_asks_for_no_tests_when_there_are_none() {
        let r = PromptRenderer::new();
        let ctx = PromptContext::default();
        let (p, t) = (project(), task());
        let checks = [
            GateCommand { name: "tests".into(), command: "python3 -m pytest -x -q".into(), cwd: None },
            GateCommand { name: "lint".into(), command: "ruff check .".into(), cwd: Some("src".into()) },
        ];
        let mut input = task_input(&p, &t, &[], &ctx);
        input.checks = &checks;
        let text = r.task_prompt(&input).unwrap();
        assert!(text.contains("check them with the project's commands below"), "{text}");
        assert!(text.contains("- tests: `python3 -m pytest -x -q`\n"), "{text}");
        assert!(text.contains("- lint: `ruff check .` (in `src/`)\n"), "{text}");
        assert_eq!(metadata(&text)["checks"][0]["command"], "python3 -m pytest -x -q");

        input.checks = &[];
        let text = r.task_prompt(&input).unwrap();
        let instruction = text.split("<INSTRUCTION>").nth(1).unwrap();
        assert!(!instruction.contains("check them") && !instruction.contains("run them"), "none asked: {instruction}");
        assert!(text.contains("Make the changes the task needs, and\nfinish with a short summary"), "{text}");
    }

    #[test]
    fn first_attempt_has_no_feedback_section_and_context_sections_render() {
        let r = PromptRenderer::new();
        let ctx = PromptContext::sample();
        let (p, t) = (project(), task());
        let mut input = task_input(&p, &t, &[], &ctx);
        input.iteration = 1;
        let text = r.task_prompt(&input).unwrap();
        assert!(!text.contains("Feedback on the previous attempt"));
        assert!(!text.contains("attempt 1 of"));
        for s in &ctx.sections {
            assert!(text.contains(&s.title) && text.contains(&s.body), "{text}");
        }
        assert!(text.contains("Left out to fit the context budget"));
        assert_eq!(metadata(&text)["context"]["omitted"], json!(ctx.omitted));
    }

    #[test]
    fn every_llm_prompt_carries_its_rules_and_inputs() {
        let r = PromptRenderer::new();
        let (p, t) = (project(), task());
        let gates = vec![sample::gate()];
        let fixes = vec!["tests gate failed: 1 test failed".to_string()];
        let text = r
            .error_analysis_prompt(&ErrorAnalysisPromptInput {
                task: &t,
                iteration: 2,
                outcome: "success",
                summary: "done",
                changes: &[],
                failures: &fixes,
            })
            .unwrap();
        assert_eq!(metadata(&text)["prompt_type"], "error_analysis");
        assert!(text.contains("tests gate failed") && text.contains("Answer only with one JSON object"), "{text}");
        let text = r
            .decision_prompt(&DecisionPromptInput {
                task: &t,
                iteration: 1,
                max_iterations: 3,
                confidence: 0.72,
                explanation: "quality 0.5",
                summary: "done",
                concerns: &["no test".into()],
                gates: &gates,
            })
            .unwrap();
        assert!(text.contains("confidence 0.72") && text.contains("- no test") && text.contains("tests: FAILED"));
        let commit = CommitPromptInput { project: &p, task: &t, summary: "Added greet.sh.", changes: &[] };
        let text = r.commit_message_prompt(&commit).unwrap();
        assert!(text.contains("conventional commit") && text.contains("Never write credentials"), "{text}");
    }

    #[test]
    fn the_fallback_commit_message_is_conventional_and_names_files() {
        let r = PromptRenderer::new();
        let (p, mut t) = (project(), task());
        let changes =
            vec![FileChange { path: "greet.sh".into(), kind: crate::contract::ChangeKind::Created, size: None }];
        let msg = r.fallback_commit_message(&CommitPromptInput {
            project: &p,
            task: &t,
            summary: "Added greet.sh.",
            changes: &changes,
        });
        assert_eq!(msg, "feat: add a greeting\n\nAdded greet.sh.\n\nFiles:\n- created greet.sh\n\nObra-Task: 7");
        t.title = format!("Fix the {} parser", "very ".repeat(20));
        let msg = r.fallback_commit_message(&CommitPromptInput { project: &p, task: &t, summary: "", changes: &[] });
        let subject = msg.lines().next().unwrap();
        assert!(subject.starts_with("fix: the very") && subject.chars().count() == 72, "{subject}");
        assert_eq!(commit_message_from_reply("feat: x\nmore", " body ", 3), "feat: x\n\nbody\n\nObra-Task: 3");
    }

    #[test]
    fn project_overrides_replace_templates_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join(".obra/templates");
        std::fs::create_dir_all(&templates).unwrap();
        std::fs::write(templates.join("task_execution.j2"), "CUSTOM {{ task.title }} {{ rules | length }}").unwrap();
        let r = PromptRenderer::for_project(dir.path()).unwrap();
        let ctx = PromptContext::default();
        let text = r.task_prompt(&task_input(&project(), &task(), &[], &ctx)).unwrap();
        assert!(text.starts_with("CUSTOM Add a greeting "), "{text}");

        std::fs::write(templates.join("decision.j2"), "line one\n{% if %}\n").unwrap();
        let e = PromptRenderer::for_project(dir.path()).err().unwrap().to_string();
        assert!(e.contains("decision.j2, line 2") && e.contains("syntax error"), "{e}");

        std::fs::write(templates.join("decision.j2"), "ok\n\n{{ task.titel }}\n").unwrap();
        let e = PromptRenderer::for_project(dir.path()).err().unwrap().to_string();
        assert!(e.contains("decision.j2, line 3") && e.contains("undefined"), "{e}");

        std::fs::remove_file(templates.join("decision.j2")).unwrap();
        std::fs::write(templates.join("review.j2"), "x").unwrap();
        let e = PromptRenderer::for_project(dir.path()).err().unwrap().to_string();
        assert!(e.contains("review.j2: not a template Obra knows") && e.contains("commit_message.j2"), "{e}");
    }

    #[test]
    fn the_built_in_templates_pass_the_check_and_schemas_are_in_the_supported_subset() {
        PromptRenderer::new().check().unwrap();
        for s in [OPINION_SCHEMA, ERROR_ANALYSIS_SCHEMA, DECISION_SCHEMA, COMMIT_MESSAGE_SCHEMA] {
            super::super::structured::Schema::parse(s).unwrap();
        }
    }
}
