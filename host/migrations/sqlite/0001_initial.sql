-- Obra's store, level 1: projects, tasks, interactions, gate results, decisions, breakpoints, plugin key-value.
-- Only host/src/state runs SQL against these tables.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    workspace   TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

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
    updated_at      TEXT    NOT NULL
);
CREATE INDEX tasks_project_status ON tasks(project_id, status);

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
    changes_json    TEXT    NOT NULL DEFAULT '[]',
    started_at      TEXT    NOT NULL,
    finished_at     TEXT,
    duration_ms     INTEGER
);
CREATE INDEX interactions_task ON interactions(task_id, iteration);

CREATE TABLE gate_results (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    gate            TEXT    NOT NULL,
    passed          INTEGER NOT NULL,
    score           REAL    NOT NULL,
    summary         TEXT    NOT NULL,
    findings_json   TEXT    NOT NULL DEFAULT '[]',
    error           TEXT,
    duration_ms     INTEGER NOT NULL
);
CREATE INDEX gate_results_interaction ON gate_results(interaction_id);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    action          TEXT    NOT NULL,
    confidence      REAL    NOT NULL,
    heuristic_score REAL    NOT NULL,
    llm_score       REAL,
    llm_reasoning   TEXT,
    explanation     TEXT    NOT NULL,
    created_at      TEXT    NOT NULL
);
CREATE INDEX decisions_interaction ON decisions(interaction_id);

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
    resolved_at     TEXT
);
CREATE INDEX breakpoints_task_status ON breakpoints(task_id, status);

CREATE TABLE plugin_kv (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);
