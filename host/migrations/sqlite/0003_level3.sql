-- Obra's store, level 3: the complete loop (issue 4).
-- * tasks.resume_after: a task waiting for an agent's rate limit to reset is not handed out before this
--   time (RFC 3339, UTC); its session is kept so the same agent session resumes.
-- * tasks.milestone: tasks of one milestone share agent-session continuity.
-- * decisions.outcome: what became of the iteration's work, filled in when it is known (accepted,
--   superseded, rejected, failed, rolled-back), so `obra report` can compare confidence with reality.
-- * agent_sessions: why a session ended (context refresh, ...) and the summary that carried it over.
-- * llm_calls: every attempt of every call the loop made to the LLM (opinion, error analysis, ...).

ALTER TABLE tasks ADD COLUMN resume_after TEXT;
ALTER TABLE tasks ADD COLUMN milestone TEXT;

ALTER TABLE decisions ADD COLUMN outcome TEXT;
ALTER TABLE decisions ADD COLUMN outcome_at TEXT;
CREATE INDEX decisions_outcome ON decisions(outcome);

ALTER TABLE agent_sessions ADD COLUMN ended_reason TEXT;
ALTER TABLE agent_sessions ADD COLUMN summary TEXT;

CREATE TABLE llm_calls (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id         INTEGER NOT NULL REFERENCES tasks(id),
    interaction_id  INTEGER REFERENCES interactions(id),
    purpose         TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      TEXT    NOT NULL,
    duration_ms     INTEGER NOT NULL,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    error           TEXT
);
CREATE INDEX llm_calls_task ON llm_calls(task_id, id);
