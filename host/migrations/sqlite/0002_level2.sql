-- Obra's store, level 2: project descriptions and profiles, task profiles and git metadata, the `cancelled`
-- task status, file changes as rows (replacing interactions.changes_json), agent sessions and checkpoints.
-- Upgrades a level-1 database in place: the changes recorded as JSON are copied into file_changes first.

ALTER TABLE projects ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN profile TEXT;

ALTER TABLE tasks ADD COLUMN profile TEXT;
ALTER TABLE tasks ADD COLUMN git_branch TEXT;
ALTER TABLE tasks ADD COLUMN git_base_commit TEXT;
ALTER TABLE tasks ADD COLUMN git_commit TEXT;
-- `obra task list`: a project's tasks by priority, without a sort step.
CREATE INDEX tasks_project_priority ON tasks(project_id, priority DESC, id);

CREATE TABLE file_changes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    path            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    size            INTEGER,
    hash_before     TEXT,
    hash_after      TEXT
);
CREATE INDEX file_changes_interaction ON file_changes(interaction_id);

INSERT INTO file_changes (interaction_id, path, kind, size)
SELECT i.id, json_extract(c.value, '$.path'), json_extract(c.value, '$.kind'), json_extract(c.value, '$.size')
FROM interactions i, json_each(i.changes_json) c
WHERE json_valid(i.changes_json)
ORDER BY i.id, c.key;

ALTER TABLE interactions DROP COLUMN changes_json;

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
CREATE INDEX checkpoints_project ON checkpoints(project_id, id);
CREATE INDEX checkpoints_task ON checkpoints(task_id, id);
