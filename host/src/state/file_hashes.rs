//! Content hashes of the recorded file changes (`file_changes.hash_before` / `hash_after`), filled by the file
//! watcher (ADR 0025).

use anyhow::Result;

use super::{DbResult, StateManager};
use crate::workspace::TrackedChange;

impl StateManager {
    /// Store the content hashes of an interaction's recorded changes, matched by path; paths not recorded for the
    /// interaction are skipped.
    pub async fn record_change_hashes(&self, interaction_id: i64, changes: &[TrackedChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for change in changes {
            sqlx::query(
                "UPDATE file_changes SET hash_before = $1, hash_after = $2 WHERE interaction_id = $3 AND path = $4",
            )
            .bind(change.hash_before.as_deref())
            .bind(change.hash_after.as_deref())
            .bind(interaction_id)
            .bind(&change.change.path)
            .execute(&mut *tx)
            .await
            .db(self)?;
        }
        tx.commit().await.db(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use obra_testkit::postgres::TestDatabase;

    use crate::contract::{ChangeKind, FileChange, Outcome, RunResult, Usage};
    use crate::state::{NewProject, NewTask, StateManager};
    use crate::workspace::TrackedChange;

    async fn hashes_are_stored_by_path(state: StateManager) {
        let project = NewProject {
            name: "demo".into(),
            workspace: PathBuf::from("/tmp/ws"),
            description: String::new(),
            profile: None,
        };
        let p = state.create_project(&project).await.unwrap();
        let task = NewTask {
            project_id: p.id,
            title: "t".into(),
            description: "d".into(),
            priority: 5,
            depends_on: vec![],
            max_iterations: None,
            profile: None,
        };
        let t = state.create_task(&task).await.unwrap();
        let id = state.begin_interaction(t.id, 1, "echo", "p").await.unwrap();
        let changes = vec![
            FileChange { path: "a.rs".into(), kind: ChangeKind::Modified, size: Some(3) },
            FileChange { path: "b.rs".into(), kind: ChangeKind::Created, size: Some(1) },
        ];
        let result = RunResult {
            outcome: Outcome::Success,
            summary: "done".into(),
            session_id: None,
            turns: 1,
            usage: Usage::default(),
            duration_ms: 1,
            api_status: None,
            retry_after_ms: None,
            permission_denials: vec![],
            exit_code: Some(0),
            failed_actions: vec![],
        };
        state.finish_interaction(id, Ok(&result), &changes, Duration::ZERO).await.unwrap();
        let tracked =
            TrackedChange { change: changes[0].clone(), hash_before: Some("aa".into()), hash_after: Some("bb".into()) };
        state.record_change_hashes(id, &[tracked]).await.unwrap();
        let rows = state.file_changes(id).await.unwrap();
        assert_eq!((rows[0].hash_before.as_deref(), rows[0].hash_after.as_deref()), (Some("aa"), Some("bb")));
        assert_eq!((rows[1].hash_before.as_deref(), rows[1].hash_after.as_deref()), (None, None));
    }

    #[tokio::test]
    async fn hashes_are_stored_by_path_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        hashes_are_stored_by_path(StateManager::open(&dir.path().join("obra.db")).await.unwrap()).await;
    }

    #[tokio::test]
    async fn hashes_are_stored_by_path_postgres() {
        if let Some(pg) = TestDatabase::create().await {
            hashes_are_stored_by_path(StateManager::connect(pg.url()).await.unwrap()).await;
        }
    }
}
