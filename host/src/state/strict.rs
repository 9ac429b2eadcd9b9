//! The store's data model, read strictly (ADR 0040): which values each enum-like text column may hold, what
//! shape each JSON column must have, and the error that names a row holding anything else.
//!
//! Schema level 5 puts the same rules into both databases as CHECK constraints (and keeps the foreign keys),
//! so a row that breaks them cannot be written. A row that breaks them all the same (a database edited by
//! hand with the checks switched off, or restored from elsewhere) is not read as something else: every read
//! fails with a [`CorruptRow`] that names the table, the row, the value and the command that repairs it.
//! Before a database is upgraded to level 5, [`precheck`] looks for such rows (and for rows whose foreign
//! key points nowhere) and refuses the upgrade, naming them, while the database is still unchanged.

use std::fmt;

use sqlx::AssertSqlSafe;

use super::Backend;
use crate::contract::{ChangeKind, Finding};
use crate::state::TaskStatus;

/// The schema level that brought the CHECK constraints.
pub(super) const STRICT_LEVEL: i64 = 5;

/// The longest excerpt of a bad value quoted in a message.
const SHOWN_VALUE_CHARS: usize = 80;

/// The most problems one refused upgrade lists.
const LISTED_PROBLEMS: usize = 20;

/// The statuses a task may have (`tasks.status`).
pub const TASK_STATUSES: &[&str] = &["pending", "running", "completed", "paused", "failed", "cancelled", "blocked"];
/// The statuses an agent run may have (`interactions.status`): `interrupted` is a run a killed process left.
pub const INTERACTION_STATUSES: &[&str] = &["running", "finished", "failed", "interrupted"];
/// The normalised outcomes of an agent run (`interactions.outcome`, [`crate::contract::Outcome`]).
pub const AGENT_OUTCOMES: &[&str] =
    &["success", "max-turns", "api-error", "rate-limited", "permission-denied", "timeout", "crashed", "unparseable"];
/// The engine's actions (`decisions.action`, [`crate::state::Action`]).
pub const DECISION_ACTIONS: &[&str] = &["proceed", "clarify", "retry", "escalate"];
/// What became of a decision's work (`decisions.outcome`, [`crate::state::DecisionOutcome`]).
pub const DECISION_OUTCOMES: &[&str] = &["accepted", "superseded", "rejected", "failed", "rolled-back"];
/// The statuses of a breakpoint (`breakpoints.status`).
pub const BREAKPOINT_STATUSES: &[&str] = &["open", "resolved"];
/// How a breakpoint was resolved (`breakpoints.resolution`): by a human, or `cancelled` with its task.
pub const BREAKPOINT_RESOLUTIONS: &[&str] = &["approve", "reject", "feedback", "retry", "cancelled"];
/// What happened to a file (`file_changes.kind`, [`crate::contract::ChangeKind`]).
pub const CHANGE_KINDS: &[&str] = &["created", "modified", "deleted"];
/// A stored boolean (`gate_results.passed`).
const FLAG: &[&str] = &["0", "1"];

/// What a column may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One of these names.
    OneOf(&'static [&'static str]),
    /// A JSON list of task ids.
    TaskIds,
    /// A JSON list of gate findings.
    Findings,
    /// A JSON object.
    JsonObject,
}

/// A column whose values the store checks when it reads a row.
#[derive(Debug, PartialEq)]
pub(crate) struct Column {
    /// The table.
    pub table: &'static str,
    /// What one row of the table is called in messages.
    pub row: &'static str,
    /// The column.
    pub name: &'static str,
    /// What the value is called in messages.
    pub what: &'static str,
    /// What it may hold.
    pub shape: Shape,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The SQL value that repairs a bad one, and what that value means.
    pub repair: (&'static str, &'static str),
}

/// `tasks.status`.
pub(crate) const TASK_STATUS: Column = Column {
    table: "tasks",
    row: "task",
    name: "status",
    what: "status",
    shape: Shape::OneOf(TASK_STATUSES),
    nullable: false,
    repair: ("'pending'", "the task runs again"),
};
/// `tasks.depends_on`.
pub(crate) const TASK_DEPENDS_ON: Column = Column {
    table: "tasks",
    row: "task",
    name: "depends_on",
    what: "dependencies",
    shape: Shape::TaskIds,
    nullable: false,
    repair: ("'[]'", "the task depends on nothing"),
};
/// `interactions.status`.
pub(crate) const INTERACTION_STATUS: Column = Column {
    table: "interactions",
    row: "interaction",
    name: "status",
    what: "status",
    shape: Shape::OneOf(INTERACTION_STATUSES),
    nullable: false,
    repair: ("'interrupted'", "the run counts as interrupted"),
};
/// `interactions.outcome`.
pub(crate) const INTERACTION_OUTCOME: Column = Column {
    table: "interactions",
    row: "interaction",
    name: "outcome",
    what: "outcome",
    shape: Shape::OneOf(AGENT_OUTCOMES),
    nullable: true,
    repair: ("NULL", "no outcome is recorded for the run"),
};
/// `interactions.result_json`.
pub(crate) const INTERACTION_RESULT: Column = Column {
    table: "interactions",
    row: "interaction",
    name: "result_json",
    what: "agent result",
    shape: Shape::JsonObject,
    nullable: true,
    repair: ("NULL", "the run's full result is forgotten; its columns stay"),
};
/// `gate_results.passed`.
pub(crate) const GATE_PASSED: Column = Column {
    table: "gate_results",
    row: "gate result",
    name: "passed",
    what: "passed flag",
    shape: Shape::OneOf(FLAG),
    nullable: false,
    repair: ("0", "the gate counts as failed"),
};
/// `gate_results.findings_json`.
pub(crate) const GATE_FINDINGS: Column = Column {
    table: "gate_results",
    row: "gate result",
    name: "findings_json",
    what: "findings",
    shape: Shape::Findings,
    nullable: false,
    repair: ("'[]'", "the gate's findings are forgotten"),
};
/// `decisions.action`.
pub(crate) const DECISION_ACTION: Column = Column {
    table: "decisions",
    row: "decision",
    name: "action",
    what: "action",
    shape: Shape::OneOf(DECISION_ACTIONS),
    nullable: false,
    repair: ("'escalate'", "the decision reads as one that asked a human"),
};
/// `decisions.outcome`.
pub(crate) const DECISION_OUTCOME: Column = Column {
    table: "decisions",
    row: "decision",
    name: "outcome",
    what: "outcome",
    shape: Shape::OneOf(DECISION_OUTCOMES),
    nullable: true,
    repair: ("NULL", "the decision's outcome is not settled"),
};
/// `breakpoints.status`.
pub(crate) const BREAKPOINT_STATUS: Column = Column {
    table: "breakpoints",
    row: "breakpoint",
    name: "status",
    what: "status",
    shape: Shape::OneOf(BREAKPOINT_STATUSES),
    nullable: false,
    repair: ("'open'", "a human answers the breakpoint again"),
};
/// `breakpoints.resolution`.
pub(crate) const BREAKPOINT_RESOLUTION: Column = Column {
    table: "breakpoints",
    row: "breakpoint",
    name: "resolution",
    what: "resolution",
    shape: Shape::OneOf(BREAKPOINT_RESOLUTIONS),
    nullable: true,
    repair: ("NULL", "no resolution is recorded"),
};
/// `file_changes.kind`.
pub(crate) const FILE_CHANGE_KIND: Column = Column {
    table: "file_changes",
    row: "file change",
    name: "kind",
    what: "kind",
    shape: Shape::OneOf(CHANGE_KINDS),
    nullable: false,
    repair: ("'modified'", "the file counts as modified"),
};

/// Every checked column, in the order the upgrade checks them.
pub(crate) const COLUMNS: &[&Column] = &[
    &TASK_STATUS,
    &TASK_DEPENDS_ON,
    &INTERACTION_STATUS,
    &INTERACTION_OUTCOME,
    &INTERACTION_RESULT,
    &GATE_PASSED,
    &GATE_FINDINGS,
    &DECISION_ACTION,
    &DECISION_OUTCOME,
    &BREAKPOINT_STATUS,
    &BREAKPOINT_RESOLUTION,
    &FILE_CHANGE_KIND,
];

/// A foreign key: `table.column` names a row of `parent` (by id).
#[derive(Debug)]
pub(crate) struct ForeignKey {
    /// The referring table.
    pub table: &'static str,
    /// What one of its rows is called.
    pub row: &'static str,
    /// The referring column.
    pub column: &'static str,
    /// The table referred to.
    pub parent: &'static str,
    /// What one of its rows is called.
    pub parent_row: &'static str,
    /// Whether the column may be NULL (then NULL repairs it; otherwise the row must go).
    pub nullable: bool,
}

/// Every foreign key of the schema.
pub(crate) const FOREIGN_KEYS: &[ForeignKey] = &[
    fk("tasks", "task", "project_id", "projects", "project", false),
    fk("interactions", "interaction", "task_id", "tasks", "task", false),
    fk("gate_results", "gate result", "interaction_id", "interactions", "interaction", false),
    fk("decisions", "decision", "interaction_id", "interactions", "interaction", false),
    fk("breakpoints", "breakpoint", "task_id", "tasks", "task", false),
    fk("breakpoints", "breakpoint", "interaction_id", "interactions", "interaction", true),
    fk("file_changes", "file change", "interaction_id", "interactions", "interaction", false),
    fk("agent_sessions", "agent session", "task_id", "tasks", "task", false),
    fk("checkpoints", "checkpoint", "project_id", "projects", "project", false),
    fk("checkpoints", "checkpoint", "task_id", "tasks", "task", true),
    fk("checkpoints", "checkpoint", "interaction_id", "interactions", "interaction", true),
    fk("llm_calls", "LLM call", "task_id", "tasks", "task", false),
    fk("llm_calls", "LLM call", "interaction_id", "interactions", "interaction", true),
    fk("failed_actions", "failed action", "interaction_id", "interactions", "interaction", false),
];

const fn fk(
    table: &'static str,
    row: &'static str,
    column: &'static str,
    parent: &'static str,
    parent_row: &'static str,
    nullable: bool,
) -> ForeignKey {
    ForeignKey { table, row, column, parent, parent_row, nullable }
}

/// A stored row the store will not read as it is: its value breaks the data model.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptRow {
    /// The column that holds the bad value.
    column: &'static Column,
    /// The row's id.
    id: i64,
    /// The value as stored (an excerpt), or none for NULL.
    value: Option<String>,
    /// What is wrong with it ("the unknown status", "malformed dependencies").
    problem: String,
    /// Why, and what the column holds (the allowed values, or what the JSON parser said).
    detail: String,
}

impl fmt::Display for CorruptRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match &self.value {
            Some(v) => format!("{:?}", excerpt(v)),
            None => "NULL".into(),
        };
        write!(f, "{} {} has {} {shown} ({})", self.column.row, self.id, self.problem, self.detail)
    }
}

impl std::error::Error for CorruptRow {}

impl CorruptRow {
    /// The table of the row.
    pub fn table(&self) -> &'static str {
        self.column.table
    }

    /// The row's id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The column that holds the bad value.
    pub fn column(&self) -> &'static str {
        self.column.name
    }

    /// The bad value as stored (an excerpt), or none for NULL.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The SQL statement that repairs the row.
    pub fn repair_sql(&self) -> String {
        format!(
            "UPDATE {} SET {} = {} WHERE id = {}",
            self.column.table, self.column.name, self.column.repair.0, self.id
        )
    }

    /// What to do about it, for the database at `location` on `backend`: an obra command when one repairs it,
    /// else the SQL statement (and what it means), or a backup.
    pub fn remedy(&self, backend: Backend, location: &str) -> String {
        if (self.column.table, self.column.name) == (TASK_DEPENDS_ON.table, TASK_DEPENDS_ON.name) {
            return format!(
                "give the task its dependencies again with `obra task update {id} --depends-on IDS` (or none with \
                 `obra task update {id} --no-deps`), or restore a backup of the database",
                id = self.id
            );
        }
        format!(
            "repair it with {} ({}), or restore a backup of the database",
            sql_command(backend, location, &self.repair_sql()),
            self.column.repair.1
        )
    }

    /// The whole message for the database at `location`: what is wrong and what to do.
    pub fn message(&self, backend: Backend, location: &str) -> String {
        format!(
            "the database {location} holds a row obra cannot read: {self}. Obra does not guess what it meant; {}.",
            self.remedy(backend, location)
        )
    }
}

/// `command` run against the database at `location` with its own client, as a shell command line.
fn sql_command(backend: Backend, location: &str, sql: &str) -> String {
    match backend {
        Backend::Sqlite => format!("`sqlite3 {} \"{sql}\"`", shell_quote(location)),
        Backend::Postgres => format!("`psql {} -c \"{sql}\"`", shell_quote(location)),
    }
}

/// One argument quoted for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// At most [`SHOWN_VALUE_CHARS`] characters of `value`.
fn excerpt(value: &str) -> String {
    if value.chars().count() > SHOWN_VALUE_CHARS {
        value.chars().take(SHOWN_VALUE_CHARS).collect::<String>() + "..."
    } else {
        value.to_string()
    }
}

impl Column {
    /// The row `id`'s value of this column, checked: `Err` names the row and what is wrong.
    pub(crate) fn check(&'static self, id: i64, value: Option<&str>) -> Result<(), CorruptRow> {
        let Some(text) = value else {
            return if self.nullable {
                Ok(())
            } else {
                Err(self.corrupt(
                    id,
                    None,
                    (format!("no {}", self.what), format!("{}.{} is NOT NULL", self.table, self.name)),
                ))
            };
        };
        let problem = match self.shape {
            Shape::OneOf(allowed) if allowed.contains(&text) => return Ok(()),
            Shape::OneOf(allowed) => (
                format!("the unknown {}", self.what),
                format!("{}.{} is one of {}", self.table, self.name, allowed.join(", ")),
            ),
            Shape::TaskIds => match serde_json::from_str::<Vec<i64>>(text) {
                Ok(_) => return Ok(()),
                Err(e) => self.json_problem(&e),
            },
            Shape::Findings => match serde_json::from_str::<Vec<Finding>>(text) {
                Ok(_) => return Ok(()),
                Err(e) => self.json_problem(&e),
            },
            Shape::JsonObject => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) if v.is_object() => return Ok(()),
                Ok(_) => (
                    format!("an unreadable {}", self.what),
                    format!("{}.{} must be {}", self.table, self.name, self.expected()),
                ),
                Err(e) => self.json_problem(&e),
            },
        };
        Err(self.corrupt(id, Some(text), problem))
    }

    /// What a JSON column must hold, in words.
    fn expected(&self) -> &'static str {
        match self.shape {
            Shape::OneOf(_) => "one of its names",
            Shape::TaskIds => "a JSON list of task ids",
            Shape::Findings => "a JSON list of findings",
            Shape::JsonObject => "a JSON object",
        }
    }

    /// The problem and detail of a value the JSON parser refused.
    fn json_problem(&self, error: &serde_json::Error) -> (String, String) {
        let kind = if error.is_data() { "unreadable" } else { "malformed" };
        (format!("{kind} {}", self.what), format!("{error}; {}.{} must be {}", self.table, self.name, self.expected()))
    }

    fn corrupt(&'static self, id: i64, value: Option<&str>, (problem, detail): (String, String)) -> CorruptRow {
        CorruptRow { column: self, id, value: value.map(excerpt), problem, detail }
    }
}

/// A [`CorruptRow`] as the decode error sqlx passes on (the store's error turns it into a message).
fn decode_error(corrupt: CorruptRow) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(corrupt))
}

/// Check a text column of row `id` for a row decoder.
pub(crate) fn text(column: &'static Column, id: i64, value: Option<&str>) -> Result<(), sqlx::Error> {
    column.check(id, value).map_err(decode_error)
}

/// The status of task `id`, strictly.
pub(crate) fn task_status(id: i64, value: &str) -> Result<TaskStatus, sqlx::Error> {
    TASK_STATUS.check(id, Some(value)).map_err(decode_error)?;
    // The list and the enum are the same names (a test says so).
    TaskStatus::parse(value).ok_or_else(|| {
        let detail = format!("tasks.status is one of {}", TASK_STATUSES.join(", "));
        decode_error(TASK_STATUS.corrupt(id, Some(value), ("the unknown status".into(), detail)))
    })
}

/// The kind of file change `id`, strictly.
pub(crate) fn change_kind(id: i64, value: &str) -> Result<ChangeKind, sqlx::Error> {
    match ChangeKind::ALL.into_iter().find(|k| k.as_str() == value) {
        Some(kind) => Ok(kind),
        None => {
            let detail = format!("file_changes.kind is one of {}", CHANGE_KINDS.join(", "));
            Err(decode_error(FILE_CHANGE_KIND.corrupt(id, Some(value), ("the unknown kind".into(), detail))))
        }
    }
}

/// The dependencies of task `id`, strictly.
pub(crate) fn task_ids(id: i64, value: &str) -> Result<Vec<i64>, sqlx::Error> {
    serde_json::from_str(value)
        .map_err(|e| decode_error(TASK_DEPENDS_ON.corrupt(id, Some(value), TASK_DEPENDS_ON.json_problem(&e))))
}

/// The findings of gate result `id`, strictly.
pub(crate) fn findings(id: i64, value: &str) -> Result<Vec<Finding>, sqlx::Error> {
    serde_json::from_str(value)
        .map_err(|e| decode_error(GATE_FINDINGS.corrupt(id, Some(value), GATE_FINDINGS.json_problem(&e))))
}

/// The [`CorruptRow`] inside a sqlx error, if it carries one.
pub(super) fn corrupt_row(error: &sqlx::Error) -> Option<&CorruptRow> {
    match error {
        sqlx::Error::Decode(inner) | sqlx::Error::ColumnDecode { source: inner, .. } => inner.downcast_ref(),
        _ => None,
    }
}

/// One thing that keeps a database from being upgraded to [`STRICT_LEVEL`], with its repair.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Problem {
    /// What is wrong, naming the row.
    pub what: String,
    /// The SQL statement that repairs it.
    pub repair: String,
}

/// Look for rows that the CHECK constraints and foreign keys of [`STRICT_LEVEL`] would refuse, in a database at
/// the level before it (read only). Returns them in table order, at most [`LISTED_PROBLEMS`], and how many
/// there are in all.
pub(super) async fn precheck(conn: &mut sqlx::AnyConnection) -> Result<(Vec<Problem>, usize), sqlx::Error> {
    let mut problems = Vec::new();
    let mut total = 0usize;
    for column in COLUMNS {
        let sql =
            format!("SELECT id, CAST({col} AS TEXT) FROM {table} ORDER BY id", col = column.name, table = column.table);
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
        for (id, value) in rows {
            if let Err(corrupt) = column.check(id, value.as_deref()) {
                total += 1;
                if problems.len() < LISTED_PROBLEMS {
                    problems.push(Problem { what: corrupt.to_string(), repair: corrupt.repair_sql() });
                }
            }
        }
    }
    for key in FOREIGN_KEYS {
        let sql = format!(
            "SELECT c.id, c.{col} FROM {table} c WHERE c.{col} IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{col}) ORDER BY c.id",
            col = key.column,
            table = key.table,
            parent = key.parent
        );
        let rows: Vec<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
        for (id, missing) in rows {
            total += 1;
            if problems.len() < LISTED_PROBLEMS {
                let repair = if key.nullable {
                    format!("UPDATE {} SET {} = NULL WHERE id = {id}", key.table, key.column)
                } else {
                    format!("DELETE FROM {} WHERE id = {id}", key.table)
                };
                problems.push(Problem {
                    what: format!(
                        "{} {id} refers to {} {missing}, which does not exist ({}.{})",
                        key.row, key.parent_row, key.table, key.column
                    ),
                    repair,
                });
            }
        }
    }
    Ok((problems, total))
}

/// The error for a database [`precheck`] found `problems` in (of `total`): it names each row and its repair.
pub(super) fn refused_upgrade(backend: Backend, location: &str, problems: &[Problem], total: usize) -> String {
    let mut text = format!(
        "cannot upgrade the database {location} to schema level {STRICT_LEVEL}, whose CHECK constraints and \
         foreign keys refuse {total} stored row{} (ADR 0040):",
        if total == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str(&format!("\n  - {}: {}", problem.what, sql_command(backend, location, &problem.repair)));
    }
    if total > problems.len() {
        text.push_str(&format!("\n  - and {} more", total - problems.len()));
    }
    text.push_str(&format!(
        "\nNothing was changed: the database stays at schema level {}. Repair those rows (the commands above; a \
         row deleted must first lose the rows that refer to it) or restore a backup, then run obra again.",
        STRICT_LEVEL - 1
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Outcome;
    use crate::state::{Action, DecisionOutcome};

    #[test]
    fn the_allowed_values_are_the_names_the_code_writes() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(names(TASK_STATUSES), TaskStatus::ALL.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>());
        assert_eq!(names(AGENT_OUTCOMES), Outcome::ALL.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>());
        assert_eq!(names(DECISION_ACTIONS), Action::ALL.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>());
        assert_eq!(
            names(DECISION_OUTCOMES),
            DecisionOutcome::ALL.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>()
        );
        assert_eq!(names(CHANGE_KINDS), ChangeKind::ALL.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn a_bad_value_is_named_with_its_row_and_repair() {
        let e = TASK_STATUS.check(12, Some("runing")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("task 12 has the unknown status \"runing\" (tasks.status is one of {})", TASK_STATUSES.join(", "))
        );
        let said = e.message(Backend::Sqlite, ".obra/obra.db");
        assert!(said.contains("sqlite3 .obra/obra.db \"UPDATE tasks SET status = 'pending' WHERE id = 12\""), "{said}");
        let e = TASK_DEPENDS_ON.check(3, Some("[1,")).unwrap_err();
        assert!(e.to_string().starts_with("task 3 has malformed dependencies \"[1,\" (EOF while parsing"), "{e}");
        assert!(e.remedy(Backend::Postgres, "x").contains("obra task update 3 --no-deps"), "{e}");
        let e = TASK_DEPENDS_ON.check(3, Some("[\"a\"]")).unwrap_err();
        assert!(e.to_string().starts_with("task 3 has unreadable dependencies"), "{e}");
        assert!(INTERACTION_RESULT.check(1, None).is_ok());
        assert!(INTERACTION_RESULT.check(1, Some("[]")).is_err());
        assert!(GATE_FINDINGS.check(1, Some("[]")).is_ok());
        assert!(GATE_FINDINGS.check(1, Some("[{\"message\":\"m\"}]")).is_err());
        let e = BREAKPOINT_RESOLUTION.check(4, Some("maybe")).unwrap_err();
        let said = e.message(Backend::Postgres, "postgres://u:***@h/db");
        assert!(
            said.contains("psql 'postgres://u:***@h/db' -c \"UPDATE breakpoints SET resolution = NULL WHERE id = 4\""),
            "{said}"
        );
        let long = "x".repeat(500);
        assert!(TASK_STATUS.check(1, Some(&long)).unwrap_err().to_string().len() < 300);
    }
}
