//! The repository on PostgreSQL: the production store.
//!
//! Pools are sized from the operator's `DB_*` settings; migrations are embedded
//! and applied by `biometric-passkey migrate`. Driver errors are mapped once, in
//! [`errors`], to the domain's [`StoreError`](domain::StoreError).

mod audit;
mod errors;
mod settings;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AuditEvent, AuditQuery, ExternalUserId, NewAuditEvent, Page, Repository, StoreResult, User,
    UserId,
};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

pub use settings::{PgSettings, SslMode};

use crate::errors::map_err;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a request waits for a pooled connection before the store reports
/// the database as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL repository. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<i64>,
    pub latest: Option<i64>,
}

impl PgStore {
    /// Builds the pool without connecting: the runtime starts (and answers
    /// `/api/health`) even while the database is down, and connects on first use.
    pub fn connect_lazy(settings: &PgSettings) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_open_conns)
            .min_connections(0)
            .max_lifetime(settings.conn_max_lifetime)
            .idle_timeout(settings.conn_max_idle_time)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(settings.connect_options());
        Self { pool }
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies every pending migration. Concurrent runs serialise on an advisory
    /// lock; a second run applies nothing.
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        let before = applied_versions(&self.pool).await?;
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(errors::map_migrate_err)?;
        let after = applied_versions(&self.pool).await?;
        Ok(MigrationReport {
            applied: after
                .iter()
                .copied()
                .filter(|v| !before.contains(v))
                .collect(),
            latest: after.last().copied(),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn applied_versions(pool: &PgPool) -> StoreResult<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(map_err)?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(map_err)
}

#[async_trait]
impl Repository for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        users::insert(&mut tx, user).await?;
        audit::insert(&mut tx, event).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User> {
        users::by_external_id(&self.pool, external_id).await
    }

    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
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
