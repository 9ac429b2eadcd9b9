//! The StateManager: the only code in Obra that touches the database.
//!
//! Everything the loop learns is written here before the next step starts, so a killed process resumes
//! where it stood. Every change that touches more than one row is one transaction.
//!
//! One code path serves SQLite and PostgreSQL through sqlx's `Any` driver (docs/decisions/0008): the SQL is
//! written once with `$n` placeholders, integers are read as `i64`, reals as `f64`, and booleans are stored
//! as integers. Only the schema (migrations/sqlite, migrations/postgres) and the connection set-up differ.

mod activity;
mod cancelled;
mod checkpoints;
mod context;
mod file_hashes;
mod llm_calls;
mod merges;
mod outcomes;
mod report;
mod sessions;
mod tasks;

mod models;
mod scheduling;
mod strict;
mod usage;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, AssertSqlSafe, Connection, Executor, Row};

pub use cancelled::TaskCancelled;
pub use llm_calls::{LlmCall, NewLlmCall};
pub use merges::MERGE_CONFLICT_RULE;
pub use models::*;
pub use outcomes::DecisionOutcome;
pub use report::{Calibration, CalibrationBucket, Report};
pub use scheduling::DEFAULT_MAX_DEPENDENCY_DEPTH;
pub use sessions::SessionUsage;
pub use strict::CorruptRow;
pub use usage::{ConcludedIteration, UsageTotals};

use crate::contract::{FileChange, KV_BYTES_PER_KEY, KvStore, KvWrite, RunResult};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long `connect` waits for a PostgreSQL server to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The current time as an RFC 3339 string with milliseconds, the format of every timestamp in the store.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The database engine behind a [`StateManager`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How to open a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSettings {
    /// How long a SQLite statement waits for another process's write lock before giving up.
    pub busy_timeout: Duration,
}

impl Default for OpenSettings {
    fn default() -> Self {
        Self { busy_timeout: Duration::from_secs(10) }
    }
}

/// Handle to the store. Cheap to clone; all clones share one connection pool.
#[derive(Clone, Debug)]
pub struct StateManager {
    pool: AnyPool,
    backend: Backend,
    /// What error messages call the database: the SQLite path, or the PostgreSQL URL without its password.
    name: Arc<str>,
    busy_timeout: Duration,
    /// The longest dependency chain a task may be on (`engine.max_dependency_depth`; 0: no limit).
    max_dependency_depth: usize,
    /// Redact secrets and personal data from prompts, agent output and LLM errors before storing them
    /// (`logging.redact`).
    redact: bool,
}

/// A transaction on either backend.
type Tx = sqlx::Transaction<'static, Any>;

/// Turns a sqlx error into one that names the database and, for a lock, says what to do.
trait DbResult<T> {
    fn db(self, state: &StateManager) -> Result<T>;
}

impl<T> DbResult<T> for std::result::Result<T, sqlx::Error> {
    fn db(self, state: &StateManager) -> Result<T> {
        self.map_err(|e| state.error(e))
    }
}

/// Whether a SQLite error is SQLITE_BUSY or SQLITE_LOCKED (with any extended code).
fn is_locked(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => {
            e.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
                || e.message().contains("database is locked")
        }
        _ => false,
    }
}

/// The error for a SQLite database another process keeps locked.
fn locked_error(name: &str, waited: Duration) -> anyhow::Error {
    anyhow!(
        "the database {name} is locked by another obra process (waited {} ms); let it finish, or raise \
         database.busy_timeout_ms. Nothing was changed.",
        waited.as_millis()
    )
}

/// The SQLite primary result code of an error (`SQLITE_FULL` is 13, `SQLITE_READONLY` 8, `SQLITE_IOERR` 10).
fn sqlite_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(e) => e.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff),
        _ => None,
    }
}

/// Whether the file system holding `path` (or its nearest existing parent) has no space left.
fn disk_full(path: &Path) -> bool {
    #[cfg(unix)]
    {
        let dir = path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"));
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
        // SAFETY: `c` is a valid NUL-terminated path and `stat` a properly sized, writable struct.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
            return false;
        }
        // Less than 64 KiB free counts as full: SQLite cannot grow a page, a journal or the shm file.
        (stat.f_bavail as u128) * (stat.f_frsize as u128) < 64 * 1024
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// The message for a database whose disk is full.
fn full_error(name: &str, said: &str) -> anyhow::Error {
    anyhow!(
        "the disk holding the database {name} is full ({said}): free some space there and run the command again. \
         Nothing was changed; what was stored before is intact."
    )
}

/// A sqlx error as the store reports it: a row that breaks the data model, a SQLite lock, a full disk, a
/// read-only or unwritable database become messages that say what to do (the transaction was rolled back:
/// nothing stored is lost).
fn db_error(backend: Backend, name: &str, busy_timeout: Duration, error: sqlx::Error) -> anyhow::Error {
    if let Some(corrupt) = strict::corrupt_row(&error) {
        return anyhow!(corrupt.message(backend, name));
    }
    if backend != Backend::Sqlite {
        return anyhow::Error::new(error);
    }
    if is_locked(&error) {
        return locked_error(name, busy_timeout);
    }
    let said = error.to_string();
    match sqlite_code(&error) {
        Some(13) => full_error(name, &said),
        Some(10) if disk_full(Path::new(name)) => full_error(name, &said),
        Some(8) => anyhow!(
            "the database {name} is read-only ({said}): check the permissions of the file and its directory, \
             and that the file system is mounted read-write. Nothing was changed."
        ),
        Some(10) => anyhow!(
            "the database {name} could not be read or written ({said}): check the disk (space, permissions, \
             errors in the system log). The last complete transaction is what is stored."
        ),
        _ => anyhow::Error::new(error),
    }
}

/// Bring the schema of the database behind `conn` up to date, refusing (and leaving untouched) a database
/// with migrations this build does not know.
async fn migrate(conn: &mut sqlx::AnyConnection, backend: Backend, name: &str, busy_timeout: Duration) -> Result<()> {
    let fail = |e: sqlx::Error| db_error(backend, name, busy_timeout, e);
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    };
    let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    let has_table_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let (has_table,): (i64,) = sqlx::query_as(has_table_sql).fetch_one(&mut *conn).await.map_err(fail)?;
    if has_table > 0 {
        let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?;
        if let Some((newer,)) = applied.iter().find(|(v,)| !known.contains(v)) {
            bail!(
                "the database {name} was written by a newer Obra (schema level {newer}; this obra knows up to {}). \
                 Nothing was changed. Upgrade obra, or point --db at another database.",
                known.iter().max().copied().unwrap_or(0)
            );
        }
        if applied.len() == known.len() {
            return Ok(());
        }
        // A database with rows from before the strict level: bring it to the level before, then look for rows
        // that level's constraints would refuse, and refuse the upgrade naming them while nothing of it is done.
        if !applied.iter().any(|(v,)| *v == strict::STRICT_LEVEL) && known.contains(&strict::STRICT_LEVEL) {
            run_migrations(migrator, conn, Some(strict::STRICT_LEVEL - 1), &fail, name).await?;
            let (problems, total) = strict::precheck(conn).await.map_err(fail)?;
            if total > 0 {
                bail!(strict::refused_upgrade(backend, name, &problems, total));
            }
        }
    }
    run_migrations(migrator, conn, None, &fail, name).await
}

/// Apply the migrations up to `target` (all when none) that the database behind `conn` lacks, each in its own
/// transaction.
async fn run_migrations(
    migrator: &sqlx::migrate::Migrator,
    conn: &mut sqlx::AnyConnection,
    target: Option<i64>,
    fail: &impl Fn(sqlx::Error) -> anyhow::Error,
    name: &str,
) -> Result<()> {
    // `run_direct` (not `run`, which goes through `Acquire`): with `&mut AnyConnection`, `run` makes every
    // caller's future fail rustc's "Acquire/Send is not general enough" check once it is spawned.
    migrator.run_direct(target, &mut *conn, false).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(inner) | sqlx::migrate::MigrateError::ExecuteMigration(inner, _)
            if is_locked(&inner) =>
        {
            fail(inner)
        }
        e => anyhow!(e).context(format!("cannot upgrade the database {name}")),
    })
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL we can take apart: hide everything between `://user:` and `@`.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &url[scheme_end + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!("{}:***{}", &url[..scheme_end + 3 + colon], &url[at..]),
                    None => url.to_string(),
                }
            }
            _ => url.to_string(),
        },
    }
}

impl StateManager {
    /// Open (creating if needed) the SQLite database at `path` in WAL mode, and bring its schema up to date.
    ///
    /// A database written by a newer Obra (one with migrations this build does not know) is refused and
    /// left untouched.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &OpenSettings::default()).await
    }

    /// [`open`](Self::open) with explicit settings (the busy timeout).
    ///
    /// When another process holds the write lock for longer than `settings.busy_timeout`, this fails with
    /// "the database ... is locked by another obra process" and changes nothing.
    pub async fn open_with(path: &Path, settings: &OpenSettings) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create the directory {} for the database", parent.display()))?;
        }
        let absolute = std::path::absolute(path)
            .with_context(|| format!("cannot resolve the database path {}", path.display()))?;
        let file_url = url::Url::from_file_path(&absolute)
            .map_err(|()| anyhow!("the database path {} is not usable in a URL", absolute.display()))?;
        sqlx::any::install_default_drivers();
        let options: AnyConnectOptions = format!("sqlite://{}?mode=rwc", file_url.path()).parse()?;
        let ms = settings.busy_timeout.as_millis().min(i32::MAX as u128);
        let pragmas = format!(
            "PRAGMA busy_timeout = {ms}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        );
        let name: Arc<str> = path.display().to_string().into();
        let open_error = |e: sqlx::Error| {
            if is_locked(&e) {
                locked_error(&name, settings.busy_timeout)
            } else if matches!(sqlite_code(&e), Some(8 | 14)) {
                anyhow!(e).context(format!(
                    "cannot open the database {}: the file or its directory cannot be written (a read-only file \
                     system, or permissions); obra writes the database and its -wal and -shm files there, so fix \
                     the mount or permissions, or set database.path elsewhere. Nothing was changed.",
                    path.display()
                ))
            } else if sqlite_code(&e) == Some(13) || (sqlite_code(&e) == Some(10) && disk_full(path)) {
                full_error(&name, &e.to_string())
            } else {
                anyhow!(e).context(format!("cannot open the database {}", path.display()))
            }
        };
        // Migrate on a connection of its own before the pool opens any: a SQLite connection that read the
        // schema before an upgrade would describe `SELECT *` with the old columns.
        let mut conn = sqlx::AnyConnection::connect_with(&options).await.map_err(open_error)?;
        conn.execute(AssertSqlSafe(pragmas.clone())).await.map_err(open_error)?;
        migrate(&mut conn, Backend::Sqlite, &name, settings.busy_timeout).await?;
        let _ = conn.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(pragmas)).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let state = Self {
            pool,
            backend: Backend::Sqlite,
            name,
            busy_timeout: settings.busy_timeout,
            max_dependency_depth: DEFAULT_MAX_DEPENDENCY_DEPTH,
            redact: false,
        };
        // Make sure this process can write: a lock held by another process shows here, not half-way
        // through the first iteration.
        let probe = state.begin().await?;
        probe.rollback().await.db(&state)?;
        Ok(state)
    }

    /// Open an in-memory SQLite database (for tests and benchmarks).
    pub async fn open_in_memory() -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
            .connect("sqlite::memory:")
            .await?;
        let mut conn = pool.acquire().await?;
        migrate(&mut conn, Backend::Sqlite, ":memory:", Duration::ZERO).await?;
        drop(conn);
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
            name: ":memory:".into(),
            busy_timeout: Duration::ZERO,
            max_dependency_depth: DEFAULT_MAX_DEPENDENCY_DEPTH,
            redact: false,
        })
    }

    /// Open the database at `url`: `sqlite://PATH` (or `sqlite::memory:`), or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (`postgresql://` too), and bring its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &OpenSettings::default()).await
    }

    /// [`connect`](Self::connect) with explicit settings.
    pub async fn connect_with(url: &str, settings: &OpenSettings) -> Result<Self> {
        let shown = redact_url(url);
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
                let rest = rest.split('?').next().unwrap_or_default();
                if rest == ":memory:" {
                    return Self::open_in_memory().await;
                }
                if rest.is_empty() {
                    bail!("the database URL {shown} names no file; use sqlite://PATH (database.url)");
                }
                Self::open_with(Path::new(rest), settings).await
            }
            "postgres" | "postgresql" => Self::connect_postgres(url, &shown).await,
            _ => bail!(
                "unsupported database URL {shown}: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE \
                 in database.url (or leave it empty to use database.path)"
            ),
        }
    }

    async fn connect_postgres(url: &str, shown: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let parsed = url::Url::parse(url).map_err(|e| anyhow!("the database URL {shown} is not valid: {e}"))?;
        let at = format!("{}:{}", parsed.host_str().unwrap_or("localhost"), parsed.port().unwrap_or(5432));
        let scrub = |text: String| match parsed.password() {
            Some(p) if !p.is_empty() => text.replace(p, "***"),
            _ => text,
        };
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| anyhow!(scrub(format!("the database URL {shown} is not valid: {e}"))))?;
        // One direct connection first: the pool would retry a refused connection until its timeout.
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect_with(&options)).await;
        let mut conn = None;
        let failure = match probe {
            Ok(Ok(connected)) => {
                conn = Some(connected);
                None
            }
            Ok(Err(sqlx::Error::Io(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Some("connection refused; is the server running?".to_string())
            }
            Ok(Err(sqlx::Error::Database(e))) => Some(format!("{} (as user \"{}\");", e.message(), parsed.username())),
            Ok(Err(e)) => Some(format!("{e};")),
            Err(_) => Some(format!("no answer within {} s; is the server reachable?", CONNECT_TIMEOUT.as_secs())),
        };
        if let Some(reason) = failure {
            bail!(scrub(format!("cannot connect to PostgreSQL at {at}: {reason} check database.url ({shown})")));
        }
        if let Some(mut conn) = conn {
            migrate(&mut conn, Backend::Postgres, shown, Duration::ZERO).await?;
            let _ = conn.close().await;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| anyhow!(scrub(format!("cannot connect to PostgreSQL at {at}: {e}; check database.url"))))?;
        Ok(Self {
            pool,
            backend: Backend::Postgres,
            name: shown.into(),
            busy_timeout: Duration::ZERO,
            max_dependency_depth: DEFAULT_MAX_DEPENDENCY_DEPTH,
            redact: false,
        })
    }

    /// This store with another limit on dependency chains (`engine.max_dependency_depth`; 0: no limit),
    /// checked when a task is created with dependencies or its dependencies change.
    pub fn with_max_dependency_depth(mut self, limit: usize) -> Self {
        self.max_dependency_depth = limit;
        self
    }

    /// Redact secrets and personal data from the prompts, agent output and LLM errors this handle stores.
    pub fn with_redaction(mut self, redact: bool) -> Self {
        self.redact = redact;
        self
    }

    /// `text` as it may be stored: redacted when redaction is on.
    pub(crate) fn storable<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.redact { crate::telemetry::redact::redact(text) } else { std::borrow::Cow::Borrowed(text) }
    }

    /// The database engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the store is, for people: the SQLite file, or the PostgreSQL URL with its password hidden.
    pub fn location(&self) -> &str {
        &self.name
    }

    /// The error for a failed statement: a lock becomes a message that says what to do.
    fn error(&self, error: sqlx::Error) -> anyhow::Error {
        db_error(self.backend, &self.name, self.busy_timeout, error)
    }

    /// Begin a write transaction (on SQLite `BEGIN IMMEDIATE`, so a lock shows at the start, not half-way).
    async fn begin(&self) -> Result<Tx> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.db(self),
            Backend::Postgres => self.pool.begin().await.db(self),
        }
    }

    /// The schema level of the database (the highest applied migration).
    pub async fn schema_level(&self) -> Result<i64> {
        let row: (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await
            .db(self)?;
        Ok(row.0.unwrap_or(0))
    }

    // ----- projects -----

    /// Create a project. Names are unique.
    pub async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let name = new.name.trim();
        if name.is_empty() {
            bail!("a project needs a non-empty name");
        }
        if self.project_by_name(name).await?.is_some() {
            bail!("a project named \"{name}\" already exists");
        }
        sqlx::query_as::<_, Project>(
            "INSERT INTO projects (name, workspace, created_at, description, profile) VALUES ($1, $2, $3, $4, $5)
             RETURNING *",
        )
        .bind(name)
        .bind(new.workspace.display().to_string())
        .bind(now())
        .bind(&new.description)
        .bind(&new.profile)
        .fetch_one(&self.pool)
        .await
        .db(self)
    }

    /// A project by id.
    pub async fn project(&self, id: i64) -> Result<Option<Project>> {
        sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// A project by name.
    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>> {
        sqlx::query_as::<_, Project>("SELECT * FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// A project by reference: a number is an id, anything else a name.
    pub async fn project_by_ref(&self, reference: &str) -> Result<Option<Project>> {
        let reference = reference.trim();
        match reference.parse::<i64>() {
            Ok(id) => self.project(id).await,
            Err(_) => self.project_by_name(reference).await,
        }
    }

    /// All projects, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        sqlx::query_as::<_, Project>("SELECT * FROM projects ORDER BY id").fetch_all(&self.pool).await.db(self)
    }

    /// Set (or with `None` clear) the profile a project's tasks use by default.
    pub async fn set_project_profile(&self, id: i64, profile: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE projects SET profile = $1 WHERE id = $2")
            .bind(profile)
            .bind(id)
            .execute(&self.pool)
            .await
            .db(self)?;
        if done.rows_affected() == 0 {
            bail!("project {id} does not exist; `obra project list` lists the projects");
        }
        Ok(())
    }

    // ----- tasks -----

    /// Create a task. Every dependency must be an existing task of the same project, and the new task may not
    /// end a chain longer than the dependency-depth limit. A task that depends on a failed, cancelled or
    /// blocked one is created `blocked`.
    pub async fn create_task(&self, new: &NewTask) -> Result<Task> {
        if new.title.trim().is_empty() {
            bail!("a task needs a non-empty title");
        }
        let mut tx = self.begin().await?;
        for dep in &new.depends_on {
            match self.project_of_task(&mut tx, *dep).await? {
                None => bail!("task {dep} (in --depends-on) does not exist; `obra status` lists the tasks"),
                Some(p) if p != new.project_id => bail!("task {dep} belongs to another project"),
                Some(_) => {}
            }
        }
        let ts = now();
        let task = sqlx::query_as::<_, Task>(
            "INSERT INTO tasks (project_id, title, description, priority, depends_on, max_iterations, profile,
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING *",
        )
        .bind(new.project_id)
        .bind(new.title.trim())
        .bind(&new.description)
        .bind(new.priority)
        .bind(serde_json::to_string(&new.depends_on)?)
        .bind(new.max_iterations.map(i64::from))
        .bind(&new.profile)
        .bind(&ts)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        if !new.depends_on.is_empty() {
            let rows = self.graph_rows(&mut tx, new.project_id).await?;
            let graph = rows.into_iter().map(|(id, r)| (id, r.depends_on)).collect();
            scheduling::check_depth(&graph, task.id, true, self.max_dependency_depth)?;
            if !self.cascade(&mut tx, new.project_id, "unblocked").await?.is_empty() {
                let task = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1")
                    .bind(task.id)
                    .fetch_one(&mut *tx)
                    .await
                    .db(self)?;
                tx.commit().await.db(self)?;
                return Ok(task);
            }
        }
        tx.commit().await.db(self)?;
        Ok(task)
    }

    /// The project task `id` belongs to, within `tx`; none when there is no such task.
    async fn project_of_task(&self, tx: &mut Tx, id: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT project_id FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .db(self)?;
        Ok(row.map(|(p,)| p))
    }

    /// Create a whole backlog in one transaction: every task, its dependencies (on existing tasks of the
    /// project, or on other tasks of `tasks` by index) and its milestone, or nothing when any of it is refused
    /// (an unknown dependency, a cycle, a chain longer than the dependency-depth limit). Returns the tasks
    /// created, in the order of `tasks`.
    pub async fn create_tasks(
        &self,
        project_id: i64,
        profile: Option<&str>,
        tasks: &[BacklogTask],
    ) -> Result<Vec<Task>> {
        let mut tx = self.begin().await?;
        let ts = now();
        let mut ids = Vec::with_capacity(tasks.len());
        for (n, new) in tasks.iter().enumerate() {
            if new.title.trim().is_empty() {
                bail!("task {} of the backlog needs a non-empty title", n + 1);
            }
            for dep in &new.depends_on {
                match self.project_of_task(&mut tx, *dep).await? {
                    None => bail!("task {dep} (a dependency of \"{}\") does not exist", new.title.trim()),
                    Some(p) if p != project_id => bail!("task {dep} belongs to another project"),
                    Some(_) => {}
                }
            }
            if let Some(bad) = new.after.iter().find(|i| **i >= tasks.len() || **i == n) {
                bail!("task {} of the backlog depends on entry {bad}, which is not another task of it", n + 1);
            }
            let milestone = new.milestone.as_deref().map(str::trim).filter(|m| !m.is_empty());
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO tasks (project_id, title, description, priority, depends_on, max_iterations, profile,
                 milestone, created_at, updated_at) VALUES ($1, $2, $3, $4, '[]', $5, $6, $7, $8, $8) RETURNING id",
            )
            .bind(project_id)
            .bind(new.title.trim())
            .bind(&new.description)
            .bind(new.priority)
            .bind(new.max_iterations.map(i64::from))
            .bind(profile)
            .bind(milestone)
            .bind(&ts)
            .fetch_one(&mut *tx)
            .await
            .db(self)?;
            ids.push(id);
        }
        for (new, id) in tasks.iter().zip(&ids) {
            let mut deps = new.depends_on.clone();
            deps.extend(new.after.iter().map(|i| ids[*i]));
            if deps.is_empty() {
                continue;
            }
            sqlx::query("UPDATE tasks SET depends_on = $1 WHERE id = $2")
                .bind(serde_json::to_string(&deps)?)
                .bind(id)
                .execute(&mut *tx)
                .await
                .db(self)?;
        }
        let rows = self.graph_rows(&mut tx, project_id).await?;
        if scheduling::topological(&rows).len() != rows.len() {
            bail!("the backlog's dependencies form a cycle; nothing was created");
        }
        let graph = rows.into_iter().map(|(id, r)| (id, r.depends_on)).collect();
        for id in &ids {
            scheduling::check_depth(&graph, *id, false, self.max_dependency_depth)?;
        }
        self.cascade(&mut tx, project_id, "unblocked").await?;
        let mut created = Vec::with_capacity(ids.len());
        for id in &ids {
            let task = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .db(self)?;
            created.push(task);
        }
        tx.commit().await.db(self)?;
        Ok(created)
    }

    /// A task by id.
    pub async fn task(&self, id: i64) -> Result<Option<Task>> {
        sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// The project task `id` belongs to, reading nothing else of the task; none when there is no such task.
    pub async fn task_project(&self, id: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT project_id FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)?;
        Ok(row.map(|(p,)| p))
    }

    /// A task by id, or an error that says how to find the right id.
    pub async fn require_task(&self, id: i64) -> Result<Task> {
        match self.task(id).await? {
            Some(task) => Ok(task),
            None => bail!("task {id} does not exist; `obra status` lists the tasks of the project"),
        }
    }

    /// The tasks of a project, highest priority first, then oldest first.
    pub async fn tasks(&self, project_id: i64) -> Result<Vec<Task>> {
        sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE project_id = $1 ORDER BY priority DESC, id")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }

    /// Set a task's status and the reason for it; its dependents are blocked or unblocked to match, in the
    /// same transaction.
    pub async fn set_task_status(&self, id: i64, status: TaskStatus, reason: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(reason)
            .bind(now())
            .bind(id)
            .execute(&mut *tx)
            .await
            .db(self)?;
        if done.rows_affected() == 0 {
            bail!("task {id} does not exist");
        }
        self.cascade_from(&mut tx, id, &format!("unblocked: task {id} is {}", status.as_str())).await?;
        tx.commit().await.db(self)?;
        Ok(())
    }

    // ----- interactions -----

    /// Record that an iteration starts: the interaction row with its prompt, the task's attempt count and
    /// its `running` status, in one transaction. Returns the interaction id; [`TaskCancelled`] (and nothing
    /// written) when the task is cancelled.
    pub async fn begin_interaction(&self, task_id: i64, iteration: u32, agent: &str, prompt: &str) -> Result<i64> {
        let mut tx = self.begin().await?;
        let ts = now();
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO interactions (task_id, iteration, agent, prompt, started_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .bind(task_id)
        .bind(i64::from(iteration))
        .bind(agent)
        .bind(self.storable(prompt).as_ref())
        .bind(&ts)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        let started = sqlx::query(
            "UPDATE tasks SET attempts = attempts + 1, status = 'running', status_reason = NULL, resume_after = NULL,
             updated_at = $1 WHERE id = $2 AND status <> 'cancelled'",
        )
        .bind(&ts)
        .bind(task_id)
        .execute(&mut *tx)
        .await
        .db(self)?;
        if started.rows_affected() == 0 {
            // Cancelled (the transaction rolls back: no interaction is recorded), or gone.
            drop(tx);
            self.require_task(task_id).await?;
            return Err(TaskCancelled { task_id }.into());
        }
        tx.commit().await.db(self)?;
        Ok(id)
    }

    /// Record what the agent produced (or the error that stopped it) and the files it changed, in one
    /// transaction; when the result names an agent session, that session's usage is added up too.
    pub async fn finish_interaction(
        &self,
        id: i64,
        result: Result<&RunResult, &str>,
        changes: &[FileChange],
        duration: Duration,
    ) -> Result<()> {
        let ts = now();
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        // What the agent said is stored redacted (when redaction is on), in the columns and the raw JSON alike.
        let redacted;
        let result = match result {
            Ok(r) if self.redact => {
                let mut json = serde_json::to_value(r)?;
                crate::telemetry::redact::redact_json(&mut json);
                redacted = serde_json::from_value::<RunResult>(json)?;
                Ok(&redacted)
            }
            Ok(r) => Ok(r),
            Err(e) => Err(e),
        };
        let error_text = result.err().map(|e| self.storable(e).into_owned());
        let mut tx = self.begin().await?;
        let done = match result {
            Ok(r) => sqlx::query(
                "UPDATE interactions SET status = 'finished', outcome = $1, summary = $2, session_id = $3, turns = $4,
                 input_tokens = $5, output_tokens = $6, cost_usd = $7, api_status = $8, exit_code = $9,
                 result_json = $10, finished_at = $11, duration_ms = $12 WHERE id = $13",
            )
            .bind(r.outcome.as_str())
            .bind(&r.summary)
            .bind(&r.session_id)
            .bind(i64::from(r.turns))
            .bind(r.usage.input_tokens as i64)
            .bind(r.usage.output_tokens as i64)
            .bind(r.usage.cost_usd)
            .bind(r.api_status.map(i64::from))
            .bind(r.exit_code.map(i64::from))
            .bind(serde_json::to_string(r)?),
            Err(_) => sqlx::query(
                "UPDATE interactions SET status = 'failed', error = $1, finished_at = $2, duration_ms = $3 WHERE id = $4",
            )
            .bind(error_text),
        }
        .bind(&ts)
        .bind(duration_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .db(self)?;
        if done.rows_affected() == 0 {
            bail!("interaction {id} does not exist");
        }
        if let Ok(r) = result {
            for action in &r.failed_actions {
                sqlx::query("INSERT INTO failed_actions (interaction_id, action) VALUES ($1, $2)")
                    .bind(id)
                    .bind(action)
                    .execute(&mut *tx)
                    .await
                    .db(self)?;
            }
        }
        for change in changes {
            sqlx::query("INSERT INTO file_changes (interaction_id, path, kind, size) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(&change.path)
                .bind(change.kind.as_str())
                .bind(change.size.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
                .execute(&mut *tx)
                .await
                .db(self)?;
        }
        if let Ok(r) = result
            && let Some(session) = r.session_id.as_deref().filter(|s| !s.is_empty())
        {
            sqlx::query(
                "INSERT INTO agent_sessions (task_id, agent, session_id, started_at, last_used_at, interactions,
                 input_tokens, output_tokens, cost_usd)
                 SELECT task_id, agent, $1, $2, $2, 1, $3, $4, $5 FROM interactions WHERE id = $6
                 ON CONFLICT (task_id, agent, session_id) DO UPDATE SET
                 last_used_at = excluded.last_used_at,
                 interactions = agent_sessions.interactions + 1,
                 input_tokens = agent_sessions.input_tokens + excluded.input_tokens,
                 output_tokens = agent_sessions.output_tokens + excluded.output_tokens,
                 cost_usd = agent_sessions.cost_usd + excluded.cost_usd",
            )
            .bind(session)
            .bind(&ts)
            .bind(r.usage.input_tokens as i64)
            .bind(r.usage.output_tokens as i64)
            .bind(r.usage.cost_usd.unwrap_or(0.0))
            .bind(id)
            .execute(&mut *tx)
            .await
            .db(self)?;
        }
        tx.commit().await.db(self)?;
        Ok(())
    }

    /// The interactions of a task, in order.
    pub async fn interactions(&self, task_id: i64) -> Result<Vec<Interaction>> {
        sqlx::query_as::<_, Interaction>("SELECT * FROM interactions WHERE task_id = $1 ORDER BY id")
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }

    /// The files an interaction changed, in the order they were recorded.
    pub async fn file_changes(&self, interaction_id: i64) -> Result<Vec<FileChangeRow>> {
        sqlx::query_as::<_, FileChangeRow>("SELECT * FROM file_changes WHERE interaction_id = $1 ORDER BY id")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }

    /// What failed inside the agent's own tools during an interaction's run, in the order reported (ADR 0033).
    pub async fn failed_actions(&self, interaction_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT action FROM failed_actions WHERE interaction_id = $1 ORDER BY id")
                .bind(interaction_id)
                .fetch_all(&self.pool)
                .await
                .db(self)?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// The agent sessions a task used, oldest first.
    pub async fn sessions(&self, task_id: i64) -> Result<Vec<AgentSession>> {
        sqlx::query_as::<_, AgentSession>("SELECT * FROM agent_sessions WHERE task_id = $1 ORDER BY id")
            .bind(task_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }

    /// The gate results of an interaction, in the order the gates ran.
    pub async fn gate_results(&self, interaction_id: i64) -> Result<Vec<GateResultRow>> {
        sqlx::query_as::<_, GateResultRow>("SELECT * FROM gate_results WHERE interaction_id = $1 ORDER BY id")
            .bind(interaction_id)
            .fetch_all(&self.pool)
            .await
            .db(self)
    }

    /// The decision made on an interaction, if one was made.
    pub async fn decision(&self, interaction_id: i64) -> Result<Option<DecisionRow>> {
        sqlx::query_as::<_, DecisionRow>("SELECT * FROM decisions WHERE interaction_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(interaction_id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// Record the end of an iteration in one transaction: its gate results, its decision, the task's new
    /// status, and the breakpoint it opens (if any). Returns the breakpoint's id when one was opened. A task
    /// cancelled meanwhile keeps its `cancelled` status: nothing is written and the error is [`TaskCancelled`].
    pub async fn conclude_iteration(&self, record: &IterationRecord<'_>) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        let ts = now();
        for gate in record.gates {
            sqlx::query(
                "INSERT INTO gate_results (interaction_id, gate, passed, score, summary, findings_json, error, duration_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(record.interaction_id)
            .bind(&gate.gate)
            .bind(i64::from(gate.passed))
            .bind(f64::from(gate.score))
            .bind(&gate.summary)
            .bind(serde_json::to_string(&gate.findings)?)
            .bind(&gate.error)
            .bind(gate.duration_ms as i64)
            .execute(&mut *tx)
            .await
            .db(self)?;
        }
        // The work of earlier iterations was not accepted as it was: another iteration ran.
        self.settle_open_decisions(&mut tx, record.task_id, DecisionOutcome::Superseded, &ts).await?;
        let d = record.decision;
        let settled_now = match record.task_status {
            TaskStatus::Completed => Some(DecisionOutcome::Accepted),
            TaskStatus::Failed => Some(DecisionOutcome::Failed),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO decisions (interaction_id, action, confidence, heuristic_score, llm_score, llm_reasoning,
             explanation, created_at, outcome, outcome_at, verified_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(record.interaction_id)
        .bind(d.action.as_str())
        .bind(f64::from(d.confidence))
        .bind(f64::from(d.heuristic_score))
        .bind(d.llm_score.map(f64::from))
        .bind(&d.llm_reasoning)
        .bind(&d.explanation)
        .bind(&ts)
        // The iteration's own outcome, when the task's new status already tells it.
        .bind(settled_now.map(DecisionOutcome::as_str))
        .bind(settled_now.map(|_| ts.as_str()))
        .bind(&d.verified_by)
        .execute(&mut *tx)
        .await
        .db(self)?;
        let concluded = sqlx::query(
            "UPDATE tasks SET status = $1, status_reason = $2, session_id = COALESCE($3, session_id), updated_at = $4
             WHERE id = $5 AND status <> 'cancelled'",
        )
        .bind(record.task_status.as_str())
        .bind(record.status_reason)
        .bind(record.session_id)
        .bind(&ts)
        .bind(record.task_id)
        .execute(&mut *tx)
        .await
        .db(self)?;
        if concluded.rows_affected() == 0 {
            // Cancelled while the iteration ran: nothing of the conclusion is kept (its interaction is), and no
            // breakpoint opens for a task nobody will resolve.
            drop(tx);
            self.require_task(record.task_id).await?;
            return Err(TaskCancelled { task_id: record.task_id }.into());
        }
        let mut breakpoint_id = None;
        if let Some((rule, reason)) = &record.breakpoint {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO breakpoints (task_id, interaction_id, rule, reason, created_at) VALUES ($1, $2, $3, $4, $5)
                 RETURNING id",
            )
            .bind(record.task_id)
            .bind(record.interaction_id)
            .bind(rule)
            .bind(reason)
            .bind(&ts)
            .fetch_one(&mut *tx)
            .await
            .db(self)?;
            breakpoint_id = Some(id);
        }
        if matches!(record.task_status, TaskStatus::Failed | TaskStatus::Cancelled) {
            self.cascade_from(&mut tx, record.task_id, "unblocked").await?;
        }
        tx.commit().await.db(self)?;
        Ok(breakpoint_id)
    }

    // ----- breakpoints -----

    /// Breakpoints of a project, newest first; only open ones when `open_only`.
    pub async fn breakpoints(&self, project_id: i64, open_only: bool) -> Result<Vec<Breakpoint>> {
        let sql = if open_only {
            "SELECT b.* FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.project_id = $1 AND b.status = 'open'
             ORDER BY b.id DESC"
        } else {
            "SELECT b.* FROM breakpoints b JOIN tasks t ON t.id = b.task_id WHERE t.project_id = $1 ORDER BY b.id DESC"
        };
        sqlx::query_as::<_, Breakpoint>(sql).bind(project_id).fetch_all(&self.pool).await.db(self)
    }

    /// A breakpoint by id.
    pub async fn breakpoint(&self, id: i64) -> Result<Option<Breakpoint>> {
        sqlx::query_as::<_, Breakpoint>("SELECT * FROM breakpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db(self)
    }

    /// The open breakpoint of a task, if it has one.
    pub async fn open_breakpoint_of_task(&self, task_id: i64) -> Result<Option<Breakpoint>> {
        sqlx::query_as::<_, Breakpoint>(
            "SELECT * FROM breakpoints WHERE task_id = $1 AND status = 'open' ORDER BY id DESC LIMIT 1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await
        .db(self)
    }

    /// The feedback a human gave at the task's most recently resolved breakpoint, when that one was resolved
    /// with feedback (an older answer no longer applies once a later breakpoint was resolved another way).
    pub async fn latest_breakpoint_feedback(&self, task_id: i64) -> Result<Option<String>> {
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT resolution, feedback FROM breakpoints WHERE task_id = $1 AND status = 'resolved'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(task_id)
        .fetch_optional(&self.pool)
        .await
        .db(self)?;
        Ok(row.and_then(|(resolution, feedback)| feedback.filter(|_| resolution.as_deref() == Some("feedback"))))
    }

    /// Resolve an open breakpoint and move its task on, in one transaction: `approve` completes the task,
    /// `reject` fails it, `feedback` makes it pending again so the next execution carries the feedback, `retry`
    /// makes it pending again with no feedback (a fresh attempt, once the cause is fixed).
    pub async fn resolve_breakpoint(&self, id: i64, resolution: Resolution, by: &str) -> Result<Breakpoint> {
        let mut tx = self.begin().await?;
        let bp: Option<Breakpoint> = sqlx::query_as("SELECT * FROM breakpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .db(self)?;
        let Some(bp) = bp else {
            bail!("breakpoint {id} does not exist; `obra breakpoint list` shows the open ones");
        };
        if bp.status != "open" {
            bail!(
                "breakpoint {id} is already resolved ({} by {} at {})",
                bp.resolution.as_deref().unwrap_or("?"),
                bp.resolved_by.as_deref().unwrap_or("?"),
                bp.resolved_at.as_deref().unwrap_or("?")
            );
        }
        let ts = now();
        let (name, feedback, status, reason) = match &resolution {
            Resolution::Approve => {
                ("approve", None, TaskStatus::Completed, format!("approved at breakpoint {id} by {by}"))
            }
            Resolution::Reject => ("reject", None, TaskStatus::Failed, format!("rejected at breakpoint {id} by {by}")),
            Resolution::Feedback(text) => (
                "feedback",
                Some(text.clone()),
                TaskStatus::Pending,
                format!("feedback given at breakpoint {id} by {by}; execute the task again"),
            ),
            Resolution::Retry => (
                "retry",
                None,
                TaskStatus::Pending,
                format!("retry asked at breakpoint {id} by {by}; the task runs again as it was"),
            ),
        };
        let resolved = sqlx::query_as::<_, Breakpoint>(
            "UPDATE breakpoints SET status = 'resolved', resolution = $1, feedback = $2, resolved_by = $3,
             resolved_at = $4 WHERE id = $5 RETURNING *",
        )
        .bind(name)
        .bind(&feedback)
        .bind(by)
        .bind(&ts)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .db(self)?;
        sqlx::query("UPDATE tasks SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(&reason)
            .bind(&ts)
            .bind(bp.task_id)
            .execute(&mut *tx)
            .await
            .db(self)?;
        let outcome = match resolution {
            Resolution::Approve => DecisionOutcome::Accepted,
            Resolution::Reject | Resolution::Feedback(_) | Resolution::Retry => DecisionOutcome::Rejected,
        };
        self.settle_open_decisions(&mut tx, bp.task_id, outcome, &ts).await?;
        if status == TaskStatus::Failed {
            self.cascade_from(&mut tx, bp.task_id, "unblocked").await?;
        }
        tx.commit().await.db(self)?;
        Ok(resolved)
    }

    /// Counts of tasks by status for a project.
    pub async fn task_counts(&self, project_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM tasks WHERE project_id = $1 GROUP BY status ORDER BY status",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .db(self)?;
        let counts: Vec<(String, i64)> =
            rows.iter().map(|r| (r.get::<String, _>("status"), r.get::<i64, _>("n"))).collect();
        for (status, _) in &counts {
            if TaskStatus::parse(status).is_none() {
                return Err(self.first_corrupt(&strict::TASK_STATUS, project_id, status).await);
            }
        }
        Ok(counts)
    }

    /// The error naming the first task of `project_id` whose `column` holds the bad `value` (found in a count).
    async fn first_corrupt(&self, column: &'static strict::Column, project_id: i64, value: &str) -> anyhow::Error {
        let sql = format!("SELECT MIN(id) FROM {} WHERE project_id = $1 AND {} = $2", column.table, column.name);
        let found: Result<(Option<i64>,)> =
            sqlx::query_as(AssertSqlSafe(sql)).bind(project_id).bind(value).fetch_one(&self.pool).await.db(self);
        match found {
            Ok((Some(id),)) => match column.check(id, Some(value)) {
                Err(corrupt) => anyhow!(corrupt.message(self.backend, &self.name)),
                Ok(()) => anyhow!("{} {id} changed while it was read; run the command again", column.row),
            },
            Ok((None,)) => anyhow!("a {} changed while it was read; run the command again", column.row),
            Err(e) => e,
        }
    }
}

/// The SQL of the bytes a plugin's kv keys other than one use (`$1` the plugin, `$2` the key, `per_key` the
/// parameter holding [`KV_BYTES_PER_KEY`]).
macro_rules! kv_others_bytes {
    ($per_key:literal) => {
        concat!(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) + ",
            $per_key,
            " * COUNT(*) FROM plugin_kv WHERE plugin = $1 AND key <> $2"
        )
    };
}

#[async_trait::async_trait]
impl KvStore for StateManager {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2")
            .bind(plugin)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .db(self)?;
        Ok(row.map(|(v,)| v))
    }

    async fn set(&self, plugin: &str, key: &str, value: &[u8], max_total_bytes: u64) -> Result<KvWrite> {
        // The quota check and the write are one statement, so two writers cannot both slip under it.
        let cost = i64::try_from(value.len() as u64 + KV_BYTES_PER_KEY).unwrap_or(i64::MAX);
        let written = sqlx::query(concat!(
            "INSERT INTO plugin_kv (plugin, key, value, updated_at) SELECT $1, $2, $3, $4 WHERE (",
            kv_others_bytes!("$5"),
            ") + $6 <= $7
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        ))
        .bind(plugin)
        .bind(key)
        .bind(value)
        .bind(now())
        .bind(KV_BYTES_PER_KEY as i64)
        .bind(cost)
        .bind(i64::try_from(max_total_bytes).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .db(self)?
        .rows_affected();
        if written > 0 {
            return Ok(KvWrite::Stored);
        }
        let (used,): (i64,) = sqlx::query_as(kv_others_bytes!("$3"))
            .bind(plugin)
            .bind(key)
            .bind(KV_BYTES_PER_KEY as i64)
            .fetch_one(&self.pool)
            .await
            .db(self)?;
        Ok(KvWrite::OverQuota { used: used.max(0) as u64 })
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2")
            .bind(plugin)
            .bind(key)
            .execute(&self.pool)
            .await
            .db(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
