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

/// `inner.method(args)`, awaited in a trace span named after the method.
macro_rules! traced {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        $self
            .inner
            .$method($($arg),*)
            .instrument(crate::traces::db_span(stringify!($method)))
            .await
    };
}

/// [`traced!`], its error counted by kind: a call that writes no audit event.
macro_rules! measured {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        $self.metrics.store_result(traced!($self.$method($($arg),*)))
    };
}

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

    /// `result` of a call that wrote `events` (with `flow`, if any):
    /// counted once it is committed, its error counted by kind.
    fn committed(
        &self,
        result: StoreResult<()>,
        events: &[NewAuditEvent],
        flow: Option<&Flow>,
    ) -> StoreResult<()> {
        if result.is_ok() {
            self.audit_events_written(events, flow);
        }
        self.store_result(result)
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
        measured!(self.sealed_not_under(column, key_id, after, limit))
    }

    async fn replace_sealed(
        &self,
        column: SealedColumn,
        replacements: &[Replacement],
    ) -> StoreResult<u64> {
        measured!(self.replace_sealed(column, replacements))
    }
}

#[async_trait]
impl Repository for MeteredRepository {
    async fn ping(&self) -> StoreResult<()> {
        measured!(self.ping())
    }

    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()> {
        let result = traced!(self.create_user(user, event));
        self.metrics
            .committed(result, std::slice::from_ref(event), None)
    }

    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User> {
        measured!(self.user_by_external_id(external_id))
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<User> {
        measured!(self.user_by_id(id))
    }

    async fn roll_up_flow_counts(
        &self,
        settled_at: OffsetDateTime,
        max_hours: u32,
    ) -> StoreResult<Option<domain::overview::RollUpStep>> {
        measured!(self.roll_up_flow_counts(settled_at, max_hours))
    }

    async fn overview(
        &self,
        query: &domain::overview::OverviewQuery,
    ) -> StoreResult<domain::overview::Overview> {
        measured!(self.overview(query))
    }

    async fn search_users(&self, query: &UserQuery) -> StoreResult<Page<User, UserCursor>> {
        measured!(self.search_users(query))
    }

    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()> {
        let result = traced!(self.delete_user(id, event));
        self.metrics
            .committed(result, std::slice::from_ref(event), None)
    }

    async fn pending_provider_cleanups(&self, limit: u32) -> StoreResult<Vec<ProviderCleanup>> {
        measured!(self.pending_provider_cleanups(limit))
    }

    async fn provider_cleanup_counts(&self) -> StoreResult<domain::store::ProviderCleanupCounts> {
        measured!(self.provider_cleanup_counts())
    }

    async fn finish_provider_cleanup(&self, user_id: UserId) -> StoreResult<()> {
        measured!(self.finish_provider_cleanup(user_id))
    }

    async fn due_provider_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ProviderCleanup>> {
        measured!(self.due_provider_cleanups(now, limit))
    }

    async fn fail_provider_cleanup(
        &self,
        user_id: UserId,
        at: OffsetDateTime,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        measured!(self.fail_provider_cleanup(user_id, at, retry_at))
    }

    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()> {
        let result = traced!(self.append_audit(event));
        self.metrics
            .committed(result, std::slice::from_ref(event), None)
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>> {
        measured!(self.audit_events(query))
    }

    async fn lead_audit_maintenance(&self) -> StoreResult<Option<Box<dyn MaintenanceLease>>> {
        measured!(self.lead_audit_maintenance())
    }

    async fn audit_seals(&self, after: i64, limit: u32) -> StoreResult<Vec<Seal>> {
        measured!(self.audit_seals(after, limit))
    }

    async fn audit_seals_of_month(&self, month: Month) -> StoreResult<Vec<Seal>> {
        measured!(self.audit_seals_of_month(month))
    }

    async fn audit_events_of_month(
        &self,
        month: Month,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        measured!(self.audit_events_of_month(month, after, limit))
    }

    async fn audit_months(&self) -> StoreResult<Vec<Month>> {
        measured!(self.audit_months())
    }

    async fn record_audit_archive(
        &self,
        manifest: &ArchiveManifest,
    ) -> StoreResult<ArchiveRecorded> {
        measured!(self.record_audit_archive(manifest))
    }

    async fn audit_archives(&self) -> StoreResult<Vec<ArchiveManifest>> {
        measured!(self.audit_archives())
    }

    async fn apply(&self, change: &Change) -> StoreResult<()> {
        let result = traced!(self.apply(change));
        self.metrics
            .committed(result, &change.events, flow_of(change))
    }

    async fn flow(&self, id: FlowId) -> StoreResult<Flow> {
        measured!(self.flow(id))
    }

    async fn flow_by_handoff(&self, code_sha256: &[u8; 32]) -> StoreResult<Flow> {
        measured!(self.flow_by_handoff(code_sha256))
    }

    async fn flow_by_run(&self, run_id: &str) -> StoreResult<Flow> {
        measured!(self.flow_by_run(run_id))
    }

    async fn flows_of(&self, user: UserId, limit: u32) -> StoreResult<Vec<Flow>> {
        measured!(self.flows_of(user, limit))
    }

    async fn search_flows(&self, query: &FlowQuery) -> StoreResult<Vec<Flow>> {
        measured!(self.search_flows(query))
    }

    async fn credential(&self, id: Uuid) -> StoreResult<Credential> {
        measured!(self.credential(id))
    }

    async fn credential_by_webauthn_id(&self, webauthn_id: &str) -> StoreResult<Credential> {
        measured!(self.credential_by_webauthn_id(webauthn_id))
    }

    async fn credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        measured!(self.credentials_of(user))
    }

    async fn live_credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>> {
        measured!(self.live_credentials_of(user))
    }

    async fn has_active_credential(&self, user: UserId) -> StoreResult<bool> {
        measured!(self.has_active_credential(user))
    }

    async fn reference_of(&self, user: UserId) -> StoreResult<BiometricReference> {
        measured!(self.reference_of(user))
    }

    async fn staged_reference_of(&self, flow: FlowId) -> StoreResult<Vec<u8>> {
        measured!(self.staged_reference_of(flow))
    }

    async fn discard_stale_staged_references(&self, now: OffsetDateTime) -> StoreResult<u64> {
        measured!(self.discard_stale_staged_references(now))
    }

    async fn sealed_values(&self) -> StoreResult<Vec<SealedValues>> {
        measured!(self.sealed_values())
    }

    async fn set_applicant_if_absent(&self, user: UserId, sealed: &[u8]) -> StoreResult<bool> {
        measured!(self.set_applicant_if_absent(user, sealed))
    }

    async fn replace_applicant(
        &self,
        user: UserId,
        current: &[u8],
        replacement: &[u8],
    ) -> StoreResult<bool> {
        measured!(self.replace_applicant(user, current, replacement))
    }

    async fn flow_prerequisites(
        &self,
        external_id: &ExternalUserId,
        now: OffsetDateTime,
    ) -> StoreResult<FlowPrerequisites> {
        measured!(self.flow_prerequisites(external_id, now))
    }

    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_sha256: &[u8; 32],
        now: OffsetDateTime,
        lock_until: OffsetDateTime,
    ) -> StoreResult<IdempotencyBegin> {
        measured!(self.idempotency_begin(scope, key, request_sha256, now, lock_until))
    }

    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
        user: Option<UserId>,
    ) -> StoreResult<()> {
        measured!(self.idempotency_finish(scope, key, response, expires_at, user))
    }

    async fn purge(&self, purge: domain::Purge, limit: u32) -> StoreResult<Option<u64>> {
        measured!(self.purge(purge, limit))
    }

    async fn provider_event_seen(&self, dedupe_key: &str) -> StoreResult<bool> {
        let result = traced!(self.provider_event_seen(dedupe_key));
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
        measured!(self.flows_awaiting_provider(checked_before, now, limit))
    }

    async fn flows_awaiting_run_lookup(
        &self,
        failed_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>> {
        measured!(self.flows_awaiting_run_lookup(failed_before, limit))
    }

    async fn mark_provider_checked(&self, id: FlowId, at: OffsetDateTime) -> StoreResult<()> {
        measured!(self.mark_provider_checked(id, at))
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()> {
        measured!(self.idempotency_abandon(scope, key))
    }
}
