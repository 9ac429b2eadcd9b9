//! The application's task operations that change a task outside the loop: cancel and retry. Each is one
//! call for every face (CLI, REPL, and the server and workers to come): it checks the task belongs to the
//! project, makes the change in the store (one transaction there), and records the user's input in the
//! production log. Printing is the caller's.

use anyhow::Result;
use serde::Serialize;

use super::Orchestrator;
use crate::state::{Task, TaskFilter, TaskStatus};

/// What a cancel did.
#[derive(Debug, Clone, Serialize)]
pub struct Cancelled {
    /// The task, now `cancelled`.
    pub task: Task,
    /// Whether it was running: its loop (in this or another `obra`) stops at its next step, and its agent
    /// within [`crate::engine::CANCEL_POLL`].
    pub was_running: bool,
}

/// What a retry did.
#[derive(Debug, Clone, Serialize)]
pub struct Retried {
    /// The task: `pending`, or `blocked` when something it depends on failed or was cancelled.
    pub task: Task,
    /// Dependents that were blocked behind it and are pending again.
    pub unblocked: Vec<i64>,
}

impl Orchestrator {
    /// Cancel a task: it becomes `cancelled` with `reason`, its open breakpoints are resolved as cancelled and
    /// its pending dependents become blocked. A running task stops at its loop's next step, and no later write
    /// of that loop brings it back (the store refuses them).
    pub async fn cancel_task(&self, id: i64, reason: &str) -> Result<Cancelled> {
        let before = self.task(id).await?;
        let task = self.state().cancel_task(id, reason).await?;
        self.log_user_input("task_cancelled", serde_json::json!({ "task_id": id, "reason": reason }));
        Ok(Cancelled { task, was_running: before.status() == TaskStatus::Running })
    }

    /// Make a failed or cancelled task pending again (blocked if it still waits behind a failed or cancelled
    /// dependency); the dependents it blocked become pending with it.
    pub async fn retry_task(&self, id: i64) -> Result<Retried> {
        self.task(id).await?;
        let task = self.state().retry_task(id).await?;
        self.log_user_input("task_retried", serde_json::json!({ "task_id": id }));
        let marker = format!("unblocked: task {id} was retried");
        let unblocked = self
            .state()
            .list_tasks(&TaskFilter {
                project_id: self.project().id,
                statuses: vec![TaskStatus::Pending],
                ..TaskFilter::default()
            })
            .await?
            .into_iter()
            .filter(|t| t.status_reason.as_deref() == Some(marker.as_str()))
            .map(|t| t.id)
            .collect();
        Ok(Retried { task, unblocked })
    }
}

impl Orchestrator {
    /// Add a task to the backlog, in `milestone` when given, and log the user's input.
    pub async fn create_task_in(&self, new: crate::state::NewTask, milestone: Option<&str>) -> Result<Task> {
        let task = self.state().create_task(&new).await?;
        let task = match milestone {
            Some(milestone) => {
                self.state().set_task_milestone(task.id, Some(milestone)).await?;
                self.state().require_task(task.id).await?
            }
            None => task,
        };
        self.log_user_input(
            "task_created",
            serde_json::json!({ "task_id": task.id, "title": task.title, "description": task.description,
                                "priority": task.priority, "depends_on": Task::ids_text(&task.depends_on) }),
        );
        Ok(task)
    }

    /// Change a task's fields (those `update` names) and its milestone (when given); dependencies are checked
    /// for cycles and depth by the store. Fails when there is nothing to change.
    pub async fn update_task(
        &self,
        id: i64,
        update: crate::state::TaskUpdate,
        milestone: Option<&str>,
    ) -> Result<Task> {
        let fields_unchanged = update.title.is_none()
            && update.description.is_none()
            && update.priority.is_none()
            && update.depends_on.is_none();
        if fields_unchanged && milestone.is_none() {
            anyhow::bail!(
                "nothing to change: give --title, --description, --priority, --depends-on, --no-deps or --milestone"
            );
        }
        // Not `self.task`: dependencies given here replace stored ones that cannot be read.
        self.require_own_task(id).await?;
        if let Some(milestone) = milestone {
            self.state().set_task_milestone(id, Some(milestone)).await?;
        }
        let task = if fields_unchanged {
            self.state().require_task(id).await?
        } else {
            self.state().update_task(id, &update).await?
        };
        self.log_user_input(
            "task_updated",
            serde_json::json!({ "task_id": id, "title": update.title, "description": update.description,
                                "priority": update.priority, "depends_on": update.depends_on,
                                "milestone": milestone }),
        );
        Ok(task)
    }
}
