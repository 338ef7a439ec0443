//! The repository, measured: every call's errors counted by kind, and the
//! audit events each committed call wrote handed to [`super::events`] (a
//! trace span per call when traces are exported).

use std::sync::Arc;

use async_trait::async_trait;
use domain::Repository;
use domain::audit::integrity::Seal;
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use domain::audit::{AuditEvent, AuditQuery, NewAuditEvent};
use domain::credential::Credential;
use domain::custody::BiometricReference;
use domain::flow::{Flow, FlowId};
use domain::rotation::{Replacement, RowKey, SealedColumn, SealedRow, SealedStore};
use domain::store::{
    Change, FlowPrerequisites, FlowQuery, FlowWrite, IdempotencyBegin, Page, ProviderCleanup,
    SealedValues, StoreError, StoreResult, StoredResponse, UserCursor, UserQuery,
};
use domain::user::{ExternalUserId, User, UserId};
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

use super::Metrics;
use super::events::webhook_delivery;

/// `inner`, measured.
pub struct MeteredRepository {
    inner: Arc<dyn Repository>,
    metrics: Metrics,
}

impl Metrics {
    /// Counts the audit events written through `repo`, and its errors.
    pub fn measure_repository(&self, repo: Arc<dyn Repository>) -> Arc<dyn Repository> {
        if !self.is_on() && !crate::traces::enabled() {
            return repo;
        }
        Arc::new(MeteredRepository {
            inner: repo,
            metrics: self.clone(),
        })
    }

    fn store_result<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        if let Err(e) = &result {
            let kind = match e {
                StoreError::NotFound => "not_found",
                StoreError::Conflict(_) => "conflict",
                StoreError::LimitReached(_) => "limit_reached",
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Corrupt(_) => "corrupt",
                StoreError::Other(_) => "other",
            };
            self.record(|| {
                metrics::counter!("biometric_passkey_store_errors_total", "kind" => kind)
                    .increment(1);
            });
        }
        result
    }
}

fn flow_of(change: &Change) -> Option<&Flow> {
    change.flow.as_ref().map(|w| match w {
        FlowWrite::Insert { flow, .. } | FlowWrite::Update { flow } => flow,
    })
}

#[async_trait]
impl SealedStore for MeteredRepository {
    async fn sealed_not_under(
        &self,
        column: SealedColumn,
        key_id: &str,
        after: Option<&RowKey>,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>> {
        self.metrics.store_result(
            self.inner
                .sealed_not_under(column, key_id, after, limit)
                .instrument(crate::traces::db_span("sealed_not_under"))
                .await,
        )
    }

    async fn replace_sealed(
        &self,
        column: SealedColumn,
        replacements: &[Replacement],
    ) -> StoreResult<u64> {
        self.metrics.store_result(
            self.inner
                .replace_sealed(column, replacements)
                .instrument(crate::traces::db_span("replace_sealed"))
                .await,
        )
    }
}

#[async_trait]
impl Repository for MeteredRepository {
    async fn ping(&self) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .ping()
                .instrument(crate::traces::db_span("ping"))
                .await,
        )
    }

    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()> {
        let result = self
            .inner
            .create_user(user, event)
            .instrument(crate::traces::db_span("create_user"))
            .await;
        if result.is_ok() {
            self.metrics
                .audit_events_written(std::slice::from_ref(event), None);
        }
        self.metrics.store_result(result)
    }

    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User> {
        self.metrics.store_result(
            self.inner
                .user_by_external_id(external_id)
                .instrument(crate::traces::db_span("user_by_external_id"))
                .await,
        )
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<User> {
        self.metrics.store_result(
            self.inner
                .user_by_id(id)
                .instrument(crate::traces::db_span("user_by_id"))
                .await,
        )
    }

    async fn roll_up_flow_counts(
        &self,
        settled_at: OffsetDateTime,
        max_hours: u32,
    ) -> StoreResult<Option<domain::overview::RollUpStep>> {
        self.metrics.store_result(
            self.inner
                .roll_up_flow_counts(settled_at, max_hours)
                .instrument(crate::traces::db_span("roll_up_flow_counts"))
                .await,
        )
    }

    async fn overview(
        &self,
        query: &domain::overview::OverviewQuery,
    ) -> StoreResult<domain::overview::Overview> {
        self.metrics.store_result(
            self.inner
                .overview(query)
                .instrument(crate::traces::db_span("overview"))
                .await,
        )
    }

    async fn search_users(&self, query: &UserQuery) -> StoreResult<Page<User, UserCursor>> {
        self.metrics.store_result(
            self.inner
                .search_users(query)
                .instrument(crate::traces::db_span("search_users"))
                .await,
        )
    }

    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()> {
        let result = self
            .inner
            .delete_user(id, event)
            .instrument(crate::traces::db_span("delete_user"))
            .await;
        if result.is_ok() {
            self.metrics
                .audit_events_written(std::slice::from_ref(event), None);
        }
        self.metrics.store_result(result)
    }

    async fn pending_provider_cleanups(&self, limit: u32) -> StoreResult<Vec<ProviderCleanup>> {
        self.metrics.store_result(
            self.inner
                .pending_provider_cleanups(limit)
                .instrument(crate::traces::db_span("pending_provider_cleanups"))
                .await,
        )
    }

    async fn provider_cleanup_counts(&self) -> StoreResult<domain::store::ProviderCleanupCounts> {
        self.metrics.store_result(
            self.inner
                .provider_cleanup_counts()
                .instrument(crate::traces::db_span("provider_cleanup_counts"))
                .await,
        )
    }

    async fn finish_provider_cleanup(&self, user_id: UserId) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .finish_provider_cleanup(user_id)
                .instrument(crate::traces::db_span("finish_provider_cleanup"))
                .await,
        )
    }

    async fn due_provider_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ProviderCleanup>> {
        self.metrics.store_result(
            self.inner
                .due_provider_cleanups(now, limit)
                .instrument(crate::traces::db_span("due_provider_cleanups"))
                .await,
        )
    }

    async fn fail_provider_cleanup(
        &self,
        user_id: UserId,
        at: OffsetDateTime,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .fail_provider_cleanup(user_id, at, retry_at)
                .instrument(crate::traces::db_span("fail_provider_cleanup"))
                .await,
        )
    }

    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
        let result = self
            .inner
            .append_audit(event)
            .instrument(crate::traces::db_span("append_audit"))
            .await;
        if result.is_ok() {
            self.metrics
                .audit_events_written(std::slice::from_ref(event), None);
        }
        self.metrics.store_result(result)
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>> {
        self.metrics.store_result(
            self.inner
                .audit_events(query)
                .instrument(crate::traces::db_span("audit_events"))
                .await,
        )
    }

    async fn lead_audit_maintenance(&self) -> StoreResult<Option<Box<dyn MaintenanceLease>>> {
        self.metrics.store_result(
            self.inner
                .lead_audit_maintenance()
                .instrument(crate::traces::db_span("lead_audit_maintenance"))
                .await,
        )
    }

    async fn audit_seals(&self, after: i64, limit: u32) -> StoreResult<Vec<Seal>> {
        self.metrics.store_result(
            self.inner
                .audit_seals(after, limit)
                .instrument(crate::traces::db_span("audit_seals"))
                .await,
        )
    }

    async fn audit_seals_of_month(&self, month: Month) -> StoreResult<Vec<Seal>> {
        self.metrics.store_result(
            self.inner
                .audit_seals_of_month(month)
                .instrument(crate::traces::db_span("audit_seals_of_month"))
                .await,
        )
    }

    async fn audit_events_of_month(
        &self,
        month: Month,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        self.metrics.store_result(
            self.inner
                .audit_events_of_month(month, after, limit)
                .instrument(crate::traces::db_span("audit_events_of_month"))
                .await,
        )
    }

    async fn audit_months(&self) -> StoreResult<Vec<Month>> {
        self.metrics.store_result(
            self.inner
                .audit_months()
                .instrument(crate::traces::db_span("audit_months"))
                .await,
        )
    }

    async fn record_audit_archive(
        &self,
        manifest: &ArchiveManifest,
    ) -> StoreResult<ArchiveRecorded> {
        self.metrics.store_result(
            self.inner
                .record_audit_archive(manifest)
                .instrument(crate::traces::db_span("record_audit_archive"))
                .await,
        )
    }

    async fn audit_archives(&self) -> StoreResult<Vec<ArchiveManifest>> {
        self.metrics.store_result(
            self.inner
                .audit_archives()
                .instrument(crate::traces::db_span("audit_archives"))
                .await,
        )
    }

    async fn apply(&self, change: &Change) -> StoreResult<()> {
        let result = self
            .inner
            .apply(change)
            .instrument(crate::traces::db_span("apply"))
            .await;
        if result.is_ok() {
            self.metrics
                .audit_events_written(&change.events, flow_of(change));
        }
        self.metrics.store_result(result)
    }

    async fn flow(&self, id: FlowId) -> StoreResult<Flow> {
        self.metrics.store_result(
            self.inner
                .flow(id)
                .instrument(crate::traces::db_span("flow"))
                .await,
        )
    }

    async fn flow_by_handoff(&self, code_sha256: &[u8; 32]) -> StoreResult<Flow> {
        self.metrics.store_result(
            self.inner
                .flow_by_handoff(code_sha256)
                .instrument(crate::traces::db_span("flow_by_handoff"))
                .await,
        )
    }

    async fn flow_by_run(&self, run_id: &str) -> StoreResult<Flow> {
        self.metrics.store_result(
            self.inner
                .flow_by_run(run_id)
                .instrument(crate::traces::db_span("flow_by_run"))
                .await,
        )
    }

    async fn flows_of(&self, user: UserId, limit: u32) -> StoreResult<Vec<Flow>> {
        self.metrics.store_result(
            self.inner
                .flows_of(user, limit)
                .instrument(crate::traces::db_span("flows_of"))
                .await,
        )
    }

    async fn search_flows(&self, query: &FlowQuery) -> StoreResult<Vec<Flow>> {
        self.metrics.store_result(
            self.inner
                .search_flows(query)
                .instrument(crate::traces::db_span("search_flows"))
                .await,
        )
    }

    async fn credential(&self, id: Uuid) -> StoreResult<Credential> {
        self.metrics.store_result(
            self.inner
                .credential(id)
                .instrument(crate::traces::db_span("credential"))
                .await,
        )
    }

    async fn credential_by_webauthn_id(&self, webauthn_id: &str) -> StoreResult<Credential> {
        self.metrics.store_result(
            self.inner
                .credential_by_webauthn_id(webauthn_id)
                .instrument(crate::traces::db_span("credential_by_webauthn_id"))
                .await,
        )
    }

    async fn credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        self.metrics.store_result(
            self.inner
                .credentials_of(user)
                .instrument(crate::traces::db_span("credentials_of"))
                .await,
        )
    }

    async fn live_credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        self.metrics.store_result(
            self.inner
                .live_credentials_of(user)
                .instrument(crate::traces::db_span("live_credentials_of"))
                .await,
        )
    }

    async fn has_active_credential(&self, user: UserId) -> StoreResult<bool> {
        self.metrics.store_result(
            self.inner
                .has_active_credential(user)
                .instrument(crate::traces::db_span("has_active_credential"))
                .await,
        )
    }

    async fn reference_of(&self, user: UserId) -> StoreResult<BiometricReference> {
        self.metrics.store_result(
            self.inner
                .reference_of(user)
                .instrument(crate::traces::db_span("reference_of"))
                .await,
        )
    }

    async fn staged_reference_of(&self, flow: FlowId) -> StoreResult<Vec<u8>> {
        self.metrics.store_result(
            self.inner
                .staged_reference_of(flow)
                .instrument(crate::traces::db_span("staged_reference_of"))
                .await,
        )
    }

    async fn discard_stale_staged_references(&self, now: OffsetDateTime) -> StoreResult<u64> {
        self.metrics.store_result(
            self.inner
                .discard_stale_staged_references(now)
                .instrument(crate::traces::db_span("discard_stale_staged_references"))
                .await,
        )
    }

    async fn sealed_values(&self) -> StoreResult<Vec<SealedValues>> {
        self.metrics.store_result(
            self.inner
                .sealed_values()
                .instrument(crate::traces::db_span("sealed_values"))
                .await,
        )
    }

    async fn set_applicant_if_absent(&self, user: UserId, sealed: &[u8]) -> StoreResult<bool> {
        self.metrics.store_result(
            self.inner
                .set_applicant_if_absent(user, sealed)
                .instrument(crate::traces::db_span("set_applicant_if_absent"))
                .await,
        )
    }

    async fn replace_applicant(
        &self,
        user: UserId,
        current: &[u8],
        replacement: &[u8],
    ) -> StoreResult<bool> {
        self.metrics.store_result(
            self.inner
                .replace_applicant(user, current, replacement)
                .instrument(crate::traces::db_span("replace_applicant"))
                .await,
        )
    }

    async fn flow_prerequisites(
        &self,
        external_id: &ExternalUserId,
        now: OffsetDateTime,
    ) -> StoreResult<FlowPrerequisites> {
        self.metrics.store_result(
            self.inner
                .flow_prerequisites(external_id, now)
                .instrument(crate::traces::db_span("flow_prerequisites"))
                .await,
        )
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_sha256: &[u8; 32],
        now: OffsetDateTime,
        lock_until: OffsetDateTime,
    ) -> StoreResult<IdempotencyBegin> {
        self.metrics.store_result(
            self.inner
                .idempotency_begin(scope, key, request_sha256, now, lock_until)
                .instrument(crate::traces::db_span("idempotency_begin"))
                .await,
        )
    }

    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
        user: Option<UserId>,
    ) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .idempotency_finish(scope, key, response, expires_at, user)
                .instrument(crate::traces::db_span("idempotency_finish"))
                .await,
        )
    }

    async fn purge(&self, purge: domain::Purge, limit: u32) -> StoreResult<Option<u64>> {
        self.metrics.store_result(
            self.inner
                .purge(purge, limit)
                .instrument(crate::traces::db_span("purge"))
                .await,
        )
    }

    async fn provider_event_seen(&self, dedupe_key: &str) -> StoreResult<bool> {
        let result = self
            .inner
            .provider_event_seen(dedupe_key)
            .instrument(crate::traces::db_span("provider_event_seen"))
            .await;
        // Asked only of a provider delivery, before anything else: a delivery
        // already applied is acknowledged and ignored.
        if let Ok(true) = result {
            self.metrics.record(|| webhook_delivery("duplicate", ""));
        }
        self.metrics.store_result(result)
    }

    async fn flows_awaiting_provider(
        &self,
        checked_before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>> {
        self.metrics.store_result(
            self.inner
                .flows_awaiting_provider(checked_before, now, limit)
                .instrument(crate::traces::db_span("flows_awaiting_provider"))
                .await,
        )
    }

    async fn flows_awaiting_run_lookup(
        &self,
        failed_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>> {
        self.metrics.store_result(
            self.inner
                .flows_awaiting_run_lookup(failed_before, limit)
                .instrument(crate::traces::db_span("flows_awaiting_run_lookup"))
                .await,
        )
    }

    async fn mark_provider_checked(&self, id: FlowId, at: OffsetDateTime) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .mark_provider_checked(id, at)
                .instrument(crate::traces::db_span("mark_provider_checked"))
                .await,
        )
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.metrics.store_result(
            self.inner
                .idempotency_abandon(scope, key)
                .instrument(crate::traces::db_span("idempotency_abandon"))
                .await,
        )
    }
}
