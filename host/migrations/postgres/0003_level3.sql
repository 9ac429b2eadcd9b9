-- Obra's store on PostgreSQL, level 3: the same changes as migrations/sqlite/0003_level3.sql.

ALTER TABLE tasks ADD COLUMN resume_after TEXT;
ALTER TABLE tasks ADD COLUMN milestone TEXT;

ALTER TABLE decisions ADD COLUMN outcome TEXT;
ALTER TABLE decisions ADD COLUMN outcome_at TEXT;
CREATE INDEX decisions_outcome ON decisions(outcome);

ALTER TABLE agent_sessions ADD COLUMN ended_reason TEXT;
ALTER TABLE agent_sessions ADD COLUMN summary TEXT;
