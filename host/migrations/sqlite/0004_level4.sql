-- Obra's store, level 4: claims checked against evidence (issue 14, ADR 0033).
-- * failed_actions: what failed inside the agent's own tools during one agent run (an edit its CLI refused,
--   a command that exited non-zero, a permission refusal), one bounded line each, in the order reported.
-- * decisions.verified_by: what verified the iteration's work when it was decided: the names of the enabled
--   verifying gates that passed and/or "LLM opinion"; '' when nothing did (the work is "unverified");
--   NULL for decisions recorded before this level.

CREATE TABLE failed_actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    interaction_id  INTEGER NOT NULL REFERENCES interactions(id),
    action          TEXT    NOT NULL
);
CREATE INDEX failed_actions_interaction ON failed_actions(interaction_id);

ALTER TABLE decisions ADD COLUMN verified_by TEXT;
