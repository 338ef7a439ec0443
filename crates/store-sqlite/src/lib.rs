//! The repository on SQLite: the embedded default for `dev` and small
//! single-node installs.
//!
//! WAL journal, a busy timeout, and `BEGIN IMMEDIATE` for every write
//! transaction, so concurrent writers queue for the lock instead of failing on a
//! lock upgrade halfway through.

mod audit;
mod audit_trail;
mod codec;
mod credentials;
mod errors;
mod flows;
mod idempotency;
mod overview;
mod retention;
mod sealed;
mod users;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use domain::audit::integrity::Seal;
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use domain::credential::Credential;
use domain::custody::BiometricReference;
use domain::flow::{Flow, FlowId};
use domain::store::{IdempotencyBegin, StoredResponse, Write};
use domain::{
    AuditEvent, AuditQuery, Change, Effect, ExternalUserId, FlowPrerequisites, FlowQuery,
    FlowWrite, NewAuditEvent, Page, Repository, StoreResult, User, UserId,
};
use metered_pool::MeteredPool;
use sqlx::SqliteConnection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::map_err;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The pool every statement of the store takes its connection from, counted
/// and timed (`metered_pool`).
pub type StorePool = MeteredPool<Sqlite>;

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
    pool: StorePool,
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
            // A connection to a local file does not go stale; the pool checks
            // each one as it is returned anyway.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool: MeteredPool::new(pool),
        })
    }

    /// Applies every pending migration; returns the versions applied now.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let before: Vec<i64> = self.applied_versions().await?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        MIGRATOR
            .run(&mut *conn)
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

    /// The pool, for tests and tools that need a statement the repository
    /// does not offer.
    pub fn pool(&self) -> &StorePool {
        &self.pool
    }

    pub(crate) async fn write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
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
        users::delete(&mut tx, id, event.occurred_at).await?;
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

    async fn overview(
        &self,
        query: &domain::overview::OverviewQuery,
    ) -> StoreResult<domain::overview::Overview> {
        overview::overview(&self.pool, query).await
    }

    async fn roll_up_flow_counts(
        &self,
        settled_at: OffsetDateTime,
        max_hours: u32,
    ) -> StoreResult<Option<domain::overview::RollUpStep>> {
        overview::roll_up(self.write().await?, settled_at, max_hours).await
    }

    async fn lead_audit_maintenance(&self) -> StoreResult<Option<Box<dyn MaintenanceLease>>> {
        Ok(Some(Box::new(audit_trail::SqliteLease::new(
            self.write().await?,
        ))))
    }

    async fn audit_seals(&self, after: i64, limit: u32) -> StoreResult<Vec<Seal>> {
        audit_trail::seals(&self.pool, after, limit).await
    }

    async fn audit_seals_of_month(&self, month: Month) -> StoreResult<Vec<Seal>> {
        audit_trail::seals_of_month(&self.pool, month).await
    }

    async fn audit_events_of_month(
        &self,
        month: Month,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        audit_trail::events_of_month(&self.pool, month, after, limit).await
    }

    async fn audit_months(&self) -> StoreResult<Vec<Month>> {
        audit_trail::all_months(&self.pool).await
    }

    async fn record_audit_archive(
        &self,
        manifest: &ArchiveManifest,
    ) -> StoreResult<ArchiveRecorded> {
        audit_trail::record_archive(self.write().await?, manifest).await
    }

    async fn audit_archives(&self) -> StoreResult<Vec<ArchiveManifest>> {
        audit_trail::archives(&self.pool).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<User> {
        users::by_id(&self.pool, id).await
    }

    async fn search_users(
        &self,
        query: &domain::UserQuery,
    ) -> StoreResult<Page<User, domain::UserCursor>> {
        users::search(&self.pool, query).await
    }

    async fn pending_provider_cleanups(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<domain::store::ProviderCleanup>> {
        users::pending_cleanups(&self.pool, limit).await
    }

    async fn provider_cleanup_counts(&self) -> StoreResult<domain::store::ProviderCleanupCounts> {
        users::cleanup_counts(&self.pool).await
    }

    async fn finish_provider_cleanup(&self, user_id: UserId) -> StoreResult<()> {
        users::finish_cleanup(&self.pool, user_id).await
    }

    async fn due_provider_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<domain::store::ProviderCleanup>> {
        users::due_cleanups(&self.pool, now, limit).await
    }

    async fn fail_provider_cleanup(
        &self,
        user_id: UserId,
        at: OffsetDateTime,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        users::fail_cleanup(&self.pool, user_id, at, retry_at).await
    }

    async fn apply(&self, change: &Change) -> StoreResult<()> {
        let mut tx = self.write().await?;
        apply(&mut tx, change).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn flow(&self, id: FlowId) -> StoreResult<Flow> {
        flows::by_id(&self.pool, id).await
    }

    async fn flow_by_handoff(&self, code_sha256: &[u8; 32]) -> StoreResult<Flow> {
        flows::by_handoff(&self.pool, code_sha256).await
    }

    async fn flow_by_run(&self, run_id: &str) -> StoreResult<Flow> {
        flows::by_run(&self.pool, run_id).await
    }

    async fn flows_of(&self, user: UserId, limit: u32) -> StoreResult<Vec<Flow>> {
        flows::of_user(&self.pool, user, limit).await
    }

    async fn search_flows(&self, query: &FlowQuery) -> StoreResult<Vec<Flow>> {
        flows::search(&self.pool, query).await
    }

    async fn credential(&self, id: Uuid) -> StoreResult<Credential> {
        credentials::by_id(&self.pool, id).await
    }

    async fn credential_by_webauthn_id(&self, webauthn_id: &str) -> StoreResult<Credential> {
        credentials::by_webauthn_id(&self.pool, webauthn_id).await
    }

    async fn credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        credentials::of_user(&self.pool, user, false).await
    }

    async fn live_credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        credentials::of_user(&self.pool, user, true).await
    }

    async fn has_active_credential(&self, user: UserId) -> StoreResult<bool> {
        credentials::has_active(&self.pool, user).await
    }

    async fn reference_of(&self, user: UserId) -> StoreResult<BiometricReference> {
        credentials::reference_of(&self.pool, user).await
    }

    async fn staged_reference_of(&self, flow: FlowId) -> StoreResult<Vec<u8>> {
        flows::staged_reference_of(&self.pool, flow).await
    }

    async fn discard_stale_staged_references(&self, now: OffsetDateTime) -> StoreResult<u64> {
        flows::discard_stale_staged_references(&self.pool, now).await
    }

    async fn sealed_values(&self) -> StoreResult<Vec<domain::store::SealedValues>> {
        sealed::values_by_key(&self.pool).await
    }

    async fn set_applicant_if_absent(&self, user: UserId, sealed: &[u8]) -> StoreResult<bool> {
        users::set_applicant_if_absent(&self.pool, user, sealed).await
    }

    async fn replace_applicant(
        &self,
        user: UserId,
        current: &[u8],
        replacement: &[u8],
    ) -> StoreResult<bool> {
        users::replace_applicant(&self.pool, user, current, replacement).await
    }

    async fn flow_prerequisites(
        &self,
        external_id: &ExternalUserId,
        now: OffsetDateTime,
    ) -> StoreResult<FlowPrerequisites> {
        flows::prerequisites(&self.pool, external_id, now).await
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_sha256: &[u8; 32],
        now: OffsetDateTime,
        lock_until: OffsetDateTime,
    ) -> StoreResult<IdempotencyBegin> {
        idempotency::begin(&self.pool, scope, key, request_sha256, now, lock_until).await
    }

    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
        user: Option<UserId>,
    ) -> StoreResult<()> {
        idempotency::finish(&self.pool, scope, key, response, expires_at, user).await
    }

    async fn purge(&self, purge: domain::Purge, limit: u32) -> StoreResult<Option<u64>> {
        retention::purge(self.write().await?, purge, limit).await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        idempotency::abandon(&self.pool, scope, key).await
    }

    async fn provider_event_seen(&self, dedupe_key: &str) -> StoreResult<bool> {
        idempotency::provider_event_seen(&self.pool, dedupe_key).await
    }

    async fn flows_awaiting_provider(
        &self,
        checked_before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>> {
        flows::awaiting_provider(&self.pool, checked_before, now, limit).await
    }

    async fn flows_awaiting_run_lookup(
        &self,
        failed_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>> {
        flows::awaiting_run_lookup(&self.pool, failed_before, limit).await
    }

    async fn mark_provider_checked(&self, id: FlowId, at: OffsetDateTime) -> StoreResult<()> {
        flows::mark_provider_checked(&self.pool, id, at).await
    }
}

/// Writes a change inside the caller's transaction, in the order of
/// [`Change::writes`].
async fn apply(conn: &mut SqliteConnection, change: &Change) -> StoreResult<()> {
    for write in change.writes() {
        match write {
            // The write transaction holds the database's lock already.
            Write::LockUser(_) => {}
            Write::Flow(FlowWrite::Insert { flow, limits }) => {
                flows::insert(conn, flow, limits).await?
            }
            Write::Flow(FlowWrite::Update { flow }) => flows::update(conn, flow).await?,
            Write::Effect(effect) => apply_effect(conn, effect).await?,
            Write::Events(events) => {
                for event in events {
                    audit::insert(conn, event).await?;
                }
            }
        }
    }
    Ok(())
}

async fn apply_effect(conn: &mut SqliteConnection, effect: &Effect) -> StoreResult<()> {
    match effect {
        Effect::CreateUser(user) => users::insert(conn, user).await?,
        Effect::InsertCredential(c) => credentials::insert(conn, c).await?,
        Effect::UseCredential {
            id,
            sign_count,
            backup_state,
            at,
        } => credentials::record_use(conn, *id, Some(*sign_count), *backup_state, *at).await?,
        Effect::UseCredentialKeepingCounter {
            id,
            backup_state,
            at,
        } => credentials::record_use(conn, *id, None, *backup_state, *at).await?,
        Effect::SetCredentialStatus {
            id,
            from,
            to,
            reason,
            at,
        } => credentials::set_status(conn, *id, *from, *to, reason.as_deref(), *at).await?,
        Effect::StoreReference(r) => credentials::store_reference(conn, r).await?,
        Effect::EnrolReference(r) => credentials::enrol_reference(conn, r).await?,
        Effect::StageReference {
            flow_id,
            sealed,
            at,
        } => flows::stage_reference(conn, *flow_id, sealed, *at).await?,
        Effect::DiscardStagedReference(flow_id) => {
            flows::discard_staged_reference(conn, *flow_id).await?
        }
        Effect::RequireActiveCredential(id) => credentials::require_active(conn, *id).await?,
        Effect::RevokeOtherCredentials {
            user_id,
            keep,
            reason,
            at,
            event,
        } => {
            let revoked = credentials::revoke_others(conn, *user_id, *keep, reason, *at).await?;
            for e in domain::store::per_credential(event, &revoked) {
                audit::insert(conn, &e).await?;
            }
        }
        Effect::CancelOtherFlows {
            user_id,
            keep,
            at,
            event,
        } => {
            let cancelled = flows::cancel_others(conn, *user_id, *keep, *at).await?;
            for e in domain::store::per_flow(event, &cancelled) {
                audit::insert(conn, &e).await?;
            }
        }
        Effect::SetApplicant { user_id, sealed } => {
            users::set_applicant(conn, *user_id, sealed).await?
        }
        Effect::RecordProviderEvent {
            dedupe_key,
            run_id,
            at,
        } => idempotency::record_provider_event(conn, dedupe_key, run_id, *at).await?,
        Effect::SetRunLookup { flow_id, pending } => {
            flows::set_run_lookup(&mut *conn, *flow_id, *pending).await?
        }
    }
    Ok(())
}
