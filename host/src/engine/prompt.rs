//! Prompts in the seeds' hybrid format: a JSON `<METADATA>` block plus `<INSTRUCTION>` text, rendered with
//! minijinja from templates embedded from `config/templates/`.

use anyhow::{Context, Result};
use minijinja::Environment;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use serde::Serialize;
use serde_json::json;

use crate::contract::FileChange;
use crate::state::{GateRecord, Project, Task};

const TASK_EXECUTION: &str = include_str!("../../../config/templates/task_execution.j2");
const VALIDATION: &str = include_str!("../../../config/templates/validation.j2");

/// Renders the loop's prompts.
pub struct PromptRenderer {
    env: Environment<'static>,
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

impl PromptRenderer {
    /// A renderer with the built-in templates.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder().trim_blocks(true).build().expect("trim_blocks is a valid syntax config"),
        );
        env.add_template("task_execution", TASK_EXECUTION).expect("built-in template task_execution.j2 parses");
        env.add_template("validation", VALIDATION).expect("built-in template validation.j2 parses");
        Self { env }
    }

    /// The prompt that asks the agent to do (or redo) the task.
    pub fn task_prompt(&self, input: &TaskPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "prompt_type": "task_execution",
            "project": input.project.name,
            "task_id": input.task.id,
            "iteration": input.iteration,
            "max_iterations": input.max_iterations,
            "has_feedback": !input.feedback.is_empty() || input.human_feedback.is_some(),
            "expectations": {
                "summary": "end with a short summary of the changes",
                "tests": "leave the project's tests passing",
            },
        });
        let ctx = minijinja::context! {
            metadata => serde_json::to_string_pretty(&metadata)?,
            project => Serde(input.project),
            task => Serde(input.task),
            iteration => input.iteration,
            max_iterations => input.max_iterations,
            feedback => Serde(input.feedback),
            human_feedback => input.human_feedback,
        };
        self.env.get_template("task_execution")?.render(ctx).context("cannot render the task prompt")
    }

    /// The prompt that asks the LLM for its opinion of an iteration.
    pub fn validation_prompt(&self, input: &ValidationPromptInput<'_>) -> Result<String> {
        let metadata = json!({
            "prompt_type": "validation",
            "task_id": input.task.id,
            "response_schema": "confidence (0..1), reasoning, concerns[]",
        });
        let ctx = minijinja::context! {
            metadata => serde_json::to_string_pretty(&metadata)?,
            task => Serde(input.task),
            outcome => input.outcome,
            summary => input.summary,
            changes => Serde(input.changes),
            gates => Serde(input.gates),
        };
        self.env.get_template("validation")?.render(ctx).context("cannot render the validation prompt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project {
            id: 1,
            name: "demo".into(),
            workspace: "/w".into(),
            created_at: String::new(),
            description: String::new(),
            profile: None,
        }
    }

    fn task() -> Task {
        Task {
            id: 7,
            project_id: 1,
            title: "Add a greeting".into(),
            description: "Write greet.sh".into(),
            priority: 5,
            status: "pending".into(),
            status_reason: None,
            depends_on: "[]".into(),
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

    #[test]
    fn task_prompt_has_metadata_instruction_and_feedback() {
        let r = PromptRenderer::new();
        let feedback = vec!["tests failed: expected hello".to_string()];
        let text = r
            .task_prompt(&TaskPromptInput {
                project: &project(),
                task: &task(),
                iteration: 2,
                max_iterations: 3,
                feedback: &feedback,
                human_feedback: None,
            })
            .unwrap();
        let meta = text.split("<METADATA>").nth(1).unwrap().split("</METADATA>").next().unwrap();
        let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
        assert_eq!(meta["task_id"], 7);
        assert_eq!(meta["iteration"], 2);
        assert!(text.contains("<INSTRUCTION>") && text.contains("Add a greeting") && text.contains("Write greet.sh"));
        assert!(text.contains("attempt 2 of 3"));
        assert!(text.contains("- tests failed: expected hello"));
    }

    #[test]
    fn first_attempt_has_no_feedback_section() {
        let r = PromptRenderer::new();
        let text = r
            .task_prompt(&TaskPromptInput {
                project: &project(),
                task: &task(),
                iteration: 1,
                max_iterations: 3,
                feedback: &[],
                human_feedback: None,
            })
            .unwrap();
        assert!(!text.contains("Feedback on the previous attempt"));
        assert!(!text.contains("attempt 1 of"));
    }
}
