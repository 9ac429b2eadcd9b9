-- Obra's store, level 5: a strict data model (ADR 0040). Every enum-like column holds only the names the code
-- writes, every JSON column holds well-formed JSON of the right type, and the foreign keys stay as they were
-- (host/src/state/strict.rs has the same rules, and names a row that breaks them when it is read).
--
-- SQLite cannot add a CHECK constraint to a table, so the tables are rebuilt. The steps of
-- https://www.sqlite.org/lang_altertable.html#otheralter turn foreign keys off around the rebuild, which
-- cannot be done inside a transaction, and this migration runs in one (with its record in _sqlx_migrations):
-- so the rebuild keeps foreign keys on and rebuilds the whole set of tables that refer to each other at once.
-- 1. The old tables are renamed to *_old: their references to each other follow them (only *_old tables
--    refer to *_old tables), and nothing else refers to them (no views or triggers exist).
-- 2. The new tables are created under the old names, with the same columns in the same order and the CHECK
--    constraints; their foreign keys name the new tables.
-- 3. The rows are copied, referred-to tables first, so every foreign key is checked as each row arrives.
--    Before this migration runs, obra checks the rows against these rules and refuses the upgrade naming
--    any row that breaks one (nothing changed); should one slip through, the copy fails and the whole
--    migration is rolled back.
-- 4. AUTOINCREMENT counters are carried over, so ids of rows deleted by hand are never handed out again.
-- 5. The old tables are dropped, referring tables first, and the indexes are created again as they were.
-- projects and plugin_kv are not rebuilt: they gain no constraint and refer to nothing rebuilt.

ALTER TABLE tasks RENAME TO tasks_old;
ALTER TABLE interactions RENAME TO interactions_old;
ALTER TABLE gate_results RENAME TO gate_results_old;
ALTER TABLE decisions RENAME TO decisions_old;
ALTER TABLE breakpoints RENAME TO breakpoints_old;
ALTER TABLE file_changes RENAME TO file_changes_old;
ALTER TABLE agent_sessions RENAME TO agent_sessions_old;
ALTER TABLE checkpoints RENAME TO checkpoints_old;
ALTER TABLE llm_calls RENAME TO llm_calls_old;
ALTER TABLE failed_actions RENAME TO failed_actions_old;

CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    title           TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    priority        INTEGER NOT NULL DEFAULT 5,
    status          TEXT    NOT NULL DEFAULT 'pending',
    status_reason   TEXT,
    depends_on      TEXT    NOT NULL DEFAULT '[]',
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_iterations  INTEGER,
    session_id      TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    profile         TEXT,
    git_branch      TEXT,
    git_base_commit TEXT,
    git_commit      TEXT,
    resume_after    TEXT,
    milestone       TEXT,
    CONSTRAINT tasks_status_known
        CHECK (status IN ('pending', 'running', 'completed', 'paused', 'failed', 'cancelled', 'blocked')),
    CONSTRAINT tasks_depends_on_json
        CHECK (CASE WHEN json_valid(depends_on) THEN json_type(depends_on) = 'array' ELSE 0 END)
);

CREATE TABLE interactions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id         INTEGER NOT NULL REFERENCES tasks(id),
    iteration       INTEGER NOT NULL,
    agent           TEXT    NOT NULL,
    prompt          TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'running',
    outcome         TEXT,
    summary         TEXT,
    session_id      TEXT,
    turns           INTEGER,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    cost_usd        REAL,
    api_status      INTEGER,
    exit_code       INTEGER,
    error           TEXT,
    result_json     TEXT,
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    duration_ms     INTEGER,
    CONSTRAINT interactions_status_known CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    CONSTRAINT interactions_outcome_known CHECK (outcome IS NULL OR outcome IN ('success', 'max-turns', 'api-error',
        'rate-limited', 'permission-denied', 'timeout', 'crashed', 'unparseable')),
    CONSTRAINT interactions_result_json
        CHECK (result_json IS NULL OR CASE WHEN json_valid(result_json) THEN json_type(result_json) = 'object' ELSE 0 END)
);

CREATE TABLE gate_results (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    gate            TEXT    NOT NULL,
    passed          INTEGER NOT NULL,
    score           REAL    NOT NULL,
    summary         TEXT    NOT NULL,
    findings_json   TEXT    NOT NULL DEFAULT '[]',
    error           TEXT,
    duration_ms     INTEGER NOT NULL,
    CONSTRAINT gate_results_passed_flag CHECK (passed IN (0, 1)),
    CONSTRAINT gate_results_findings_json
        CHECK (CASE WHEN json_valid(findings_json) THEN json_type(findings_json) = 'array' ELSE 0 END)
);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    action          TEXT    NOT NULL,
    confidence      REAL    NOT NULL,
    heuristic_score REAL    NOT NULL,
    llm_score       REAL,
    llm_reasoning   TEXT,
    explanation     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    outcome         TEXT,
    outcome_at      TEXT,
    verified_by     TEXT,
    CONSTRAINT decisions_action_known CHECK (action IN ('proceed', 'clarify', 'retry', 'escalate')),
    CONSTRAINT decisions_outcome_known
        CHECK (outcome IS NULL OR outcome IN ('accepted', 'superseded', 'rejected', 'failed', 'rolled-back'))
);

CREATE TABLE breakpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id         INTEGER NOT NULL REFERENCES tasks(id),
    interaction_id  INTEGER REFERENCES interactions(id),
    rule            TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'open',
    resolution      TEXT,
    feedback        TEXT,
    resolved_by     TEXT,
    created_at      TEXT    NOT NULL,
    resolved_at     TEXT,
    CONSTRAINT breakpoints_status_known CHECK (status IN ('open', 'resolved')),
    CONSTRAINT breakpoints_resolution_known
        CHECK (resolution IS NULL OR resolution IN ('approve', 'reject', 'feedback', 'retry', 'cancelled'))
);

CREATE TABLE file_changes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    path            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    size            INTEGER,
    hash_before     TEXT,
    hash_after      TEXT,
    CONSTRAINT file_changes_kind_known CHECK (kind IN ('created', 'modified', 'deleted'))
);

CREATE TABLE agent_sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id         INTEGER NOT NULL REFERENCES tasks(id),
    agent           TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    started_at      TEXT    NOT NULL,
    last_used_at    TEXT    NOT NULL,
    interactions    INTEGER NOT NULL DEFAULT 0,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd        REAL    NOT NULL DEFAULT 0,
    ended_reason    TEXT,
    summary         TEXT,
    UNIQUE (task_id, agent, session_id)
);

CREATE TABLE checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    task_id         INTEGER REFERENCES tasks(id),
    interaction_id  INTEGER REFERENCES interactions(id),
    label           TEXT    NOT NULL,
    git_ref         TEXT    NOT NULL,
    commit_sha      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    rolled_back_at  TEXT
);

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

CREATE TABLE failed_actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    action          TEXT    NOT NULL
);

INSERT INTO tasks (id, project_id, title, description, priority, status, status_reason, depends_on, attempts,
                   max_iterations, session_id, created_at, updated_at, profile, git_branch, git_base_commit,
                   git_commit, resume_after, milestone)
SELECT id, project_id, title, description, priority, status, status_reason, depends_on, attempts,
       max_iterations, session_id, created_at, updated_at, profile, git_branch, git_base_commit,
       git_commit, resume_after, milestone
FROM tasks_old ORDER BY id;

INSERT INTO interactions (id, task_id, iteration, agent, prompt, status, outcome, summary, session_id, turns,
                          input_tokens, output_tokens, cost_usd, api_status, exit_code, error, result_json,
                          started_at, finished_at, duration_ms)
SELECT id, task_id, iteration, agent, prompt, status, outcome, summary, session_id, turns,
       input_tokens, output_tokens, cost_usd, api_status, exit_code, error, result_json,
       started_at, finished_at, duration_ms
FROM interactions_old ORDER BY id;

INSERT INTO gate_results (id, interaction_id, gate, passed, score, summary, findings_json, error, duration_ms)
SELECT id, interaction_id, gate, passed, score, summary, findings_json, error, duration_ms
FROM gate_results_old ORDER BY id;

INSERT INTO decisions (id, interaction_id, action, confidence, heuristic_score, llm_score, llm_reasoning,
                       explanation, created_at, outcome, outcome_at, verified_by)
SELECT id, interaction_id, action, confidence, heuristic_score, llm_score, llm_reasoning,
       explanation, created_at, outcome, outcome_at, verified_by
FROM decisions_old ORDER BY id;

INSERT INTO breakpoints (id, task_id, interaction_id, rule, reason, status, resolution, feedback, resolved_by,
                         created_at, resolved_at)
SELECT id, task_id, interaction_id, rule, reason, status, resolution, feedback, resolved_by,
       created_at, resolved_at
FROM breakpoints_old ORDER BY id;

INSERT INTO file_changes (id, interaction_id, path, kind, size, hash_before, hash_after)
SELECT id, interaction_id, path, kind, size, hash_before, hash_after
FROM file_changes_old ORDER BY id;

INSERT INTO agent_sessions (id, task_id, agent, session_id, started_at, last_used_at, interactions, input_tokens,
                            output_tokens, cost_usd, ended_reason, summary)
SELECT id, task_id, agent, session_id, started_at, last_used_at, interactions, input_tokens,
       output_tokens, cost_usd, ended_reason, summary
FROM agent_sessions_old ORDER BY id;

INSERT INTO checkpoints (id, project_id, task_id, interaction_id, label, git_ref, commit_sha, created_at,
                         rolled_back_at)
SELECT id, project_id, task_id, interaction_id, label, git_ref, commit_sha, created_at, rolled_back_at
FROM checkpoints_old ORDER BY id;

INSERT INTO llm_calls (id, task_id, interaction_id, purpose, provider, attempt, started_at, duration_ms,
                       input_tokens, output_tokens, error)
SELECT id, task_id, interaction_id, purpose, provider, attempt, started_at, duration_ms,
       input_tokens, output_tokens, error
FROM llm_calls_old ORDER BY id;

INSERT INTO failed_actions (id, interaction_id, action)
SELECT id, interaction_id, action
FROM failed_actions_old ORDER BY id;

-- The counters of the old tables (renamed with them) become the new tables' counters.
DELETE FROM sqlite_sequence WHERE name IN ('tasks', 'interactions', 'gate_results', 'decisions', 'breakpoints',
    'file_changes', 'agent_sessions', 'checkpoints', 'llm_calls', 'failed_actions');
UPDATE sqlite_sequence SET name = substr(name, 1, length(name) - 4)
WHERE name IN ('tasks_old', 'interactions_old', 'gate_results_old', 'decisions_old', 'breakpoints_old',
    'file_changes_old', 'agent_sessions_old', 'checkpoints_old', 'llm_calls_old', 'failed_actions_old');

DROP TABLE failed_actions_old;
DROP TABLE llm_calls_old;
DROP TABLE checkpoints_old;
DROP TABLE agent_sessions_old;
DROP TABLE file_changes_old;
DROP TABLE breakpoints_old;
DROP TABLE decisions_old;
DROP TABLE gate_results_old;
DROP TABLE interactions_old;
DROP TABLE tasks_old;

CREATE INDEX tasks_project_status ON tasks(project_id, status);
CREATE INDEX tasks_project_priority ON tasks(project_id, priority DESC, id);
CREATE INDEX interactions_task ON interactions(task_id, iteration);
CREATE INDEX gate_results_interaction ON gate_results(interaction_id);
CREATE INDEX decisions_interaction ON decisions(interaction_id);
CREATE INDEX decisions_outcome ON decisions(outcome);
CREATE INDEX breakpoints_task_status ON breakpoints(task_id, status);
CREATE INDEX file_changes_interaction ON file_changes(interaction_id);
CREATE INDEX checkpoints_project ON checkpoints(project_id, id);
CREATE INDEX checkpoints_task ON checkpoints(task_id, id);
CREATE INDEX llm_calls_task ON llm_calls(task_id, id);
CREATE INDEX failed_actions_interaction ON failed_actions(interaction_id);
