//! The repository on SQLite: the embedded default for `dev` and small
//! single-node installs.
//!
//! WAL journal, a busy timeout, and `BEGIN IMMEDIATE` for every write
//! transaction, so concurrent writers queue for the lock instead of failing on a
//! lock upgrade halfway through.

mod audit;
mod codec;
mod errors;
mod users;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AuditEvent, AuditQuery, ExternalUserId, NewAuditEvent, Page, Repository, StoreResult, User,
    UserId,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::errors::map_err;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the database file lives and how many connections to pool.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pub path: PathBuf,
    pub max_connections: u32,
}

impl SqliteSettings {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_connections: 4,
        }
    }
}

/// The SQLite repository. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file.
    pub async fn open(settings: &SqliteSettings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(&settings.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    /// Applies every pending migration; returns the versions applied now.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let before: Vec<i64> = self.applied_versions().await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(errors::map_migrate_err)?;
        let after = self.applied_versions().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn applied_versions(&self) -> StoreResult<Vec<i64>> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

#[async_trait]
impl Repository for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        users::insert(&mut tx, user).await?;
        audit::insert(&mut tx, event).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User> {
        users::by_external_id(&self.pool, external_id).await
    }

    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.write().await?;
        users::delete(&mut tx, id).await?;
        audit::insert(&mut tx, event).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        audit::insert(&mut conn, event).await
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>> {
        audit::search(&self.pool, query).await
    }
}
