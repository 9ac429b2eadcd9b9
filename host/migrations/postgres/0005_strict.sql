-- Obra's store on PostgreSQL, level 5: the same CHECK constraints as migrations/sqlite/0005_strict.sql
-- (ADR 0040). The foreign keys are those of levels 1 to 4, unchanged. Adding a constraint checks every stored
-- row; before this migration runs, obra checks the rows itself and refuses the upgrade naming any row that
-- breaks a rule (nothing changed). Should one slip through, the ALTER fails and the migration is rolled back.
--
-- The JSON columns stay TEXT (sqlx's Any driver reads no json/jsonb), checked by obra_json_type: the JSON
-- type of a text ('array', 'object', ...), or 'malformed' when it is not JSON (a cast in a CHECK would raise
-- an error instead of failing the check, and `IS JSON` needs PostgreSQL 16).

CREATE FUNCTION obra_json_type(doc TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN json_typeof(doc::json);
EXCEPTION WHEN data_exception THEN
    RETURN 'malformed';
END
$$;

ALTER TABLE tasks
    ADD CONSTRAINT tasks_status_known
        CHECK (status IN ('pending', 'running', 'completed', 'paused', 'failed', 'cancelled', 'blocked')),
    ADD CONSTRAINT tasks_depends_on_json CHECK (obra_json_type(depends_on) = 'array');

ALTER TABLE interactions
    ADD CONSTRAINT interactions_status_known CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
    ADD CONSTRAINT interactions_outcome_known CHECK (outcome IS NULL OR outcome IN ('success', 'max-turns',
        'api-error', 'rate-limited', 'permission-denied', 'timeout', 'crashed', 'unparseable')),
    ADD CONSTRAINT interactions_result_json CHECK (result_json IS NULL OR obra_json_type(result_json) = 'object');

ALTER TABLE gate_results
    ADD CONSTRAINT gate_results_passed_flag CHECK (passed IN (0, 1)),
    ADD CONSTRAINT gate_results_findings_json CHECK (obra_json_type(findings_json) = 'array');

ALTER TABLE decisions
    ADD CONSTRAINT decisions_action_known CHECK (action IN ('proceed', 'clarify', 'retry', 'escalate')),
    ADD CONSTRAINT decisions_outcome_known
        CHECK (outcome IS NULL OR outcome IN ('accepted', 'superseded', 'rejected', 'failed', 'rolled-back'));

ALTER TABLE breakpoints
    ADD CONSTRAINT breakpoints_status_known CHECK (status IN ('open', 'resolved')),
    ADD CONSTRAINT breakpoints_resolution_known
        CHECK (resolution IS NULL OR resolution IN ('approve', 'reject', 'feedback', 'retry', 'cancelled'));

ALTER TABLE file_changes
    ADD CONSTRAINT file_changes_kind_known CHECK (kind IN ('created', 'modified', 'deleted'));
