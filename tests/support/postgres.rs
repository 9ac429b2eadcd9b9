//! Throwaway PostgreSQL databases for tests.
//!
//! `OBRA_TEST_POSTGRES_URL` names a server and a role that may create databases, e.g.
//! `postgres://obra:obra@127.0.0.1:5432/postgres`. [`TestDatabase::create`] makes a fresh database with a
//! unique name on it, so tests run in parallel, and drops it again when the value is dropped (or at once
//! with [`TestDatabase::cleanup`]). Without the variable the PostgreSQL half of a test is skipped with a
//! note — except under `CI=true`, where it fails and says how to start a server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The environment variable that names the test server.
pub const ENV: &str = "OBRA_TEST_POSTGRES_URL";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database created for one test, dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    url: String,
    name: String,
    dropped: bool,
}

impl TestDatabase {
    /// Create a fresh database on the server named by `OBRA_TEST_POSTGRES_URL`.
    ///
    /// Returns `None` when the variable is not set and `OBRA_TEST_SKIP` names `postgres` (the caller skips its
    /// PostgreSQL half); panics when it is not set otherwise, and whenever the server cannot be used.
    pub async fn create() -> Option<Self> {
        let admin_url = match std::env::var(ENV) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                crate::requirements::missing(
                    "postgres",
                    &format!(
                        "{ENV} is not set: the store's tests also run on PostgreSQL. `bash tests/run.sh` starts a \
                         throwaway server (it needs `apt-get install postgresql`); or start one and export \
                         {ENV}=postgres://USER:PASSWORD@127.0.0.1:PORT/postgres"
                    ),
                );
                return None;
            }
        };
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
        let name = format!(
            "obra_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000
        );
        let mut url = url::Url::parse(&admin_url).unwrap_or_else(|e| panic!("{ENV} is not a URL: {e}"));
        url.set_path(&format!("/{name}"));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server named by {ENV}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let _ = admin.close().await;
        Some(Self { admin_url, url: url.to_string(), name, dropped: false })
    }

    /// The URL of the test database (with the password of `OBRA_TEST_POSTGRES_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drop the database now (closing any connection still open to it).
    pub async fn cleanup(mut self) {
        drop_database(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(admin_url).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await {
            eprintln!("note: could not drop the test database {name}: {e}");
        }
        let _ = admin.close().await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a tokio runtime (or while unwinding from a failed test): do the async work
        // on a thread of its own with its own runtime.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let worker = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(drop_database(&admin_url, &name));
            }
        });
        let _ = worker.join();
    }
}
