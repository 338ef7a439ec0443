//! The persistence port itself.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Change, FlowPrerequisites, FlowQuery, IdempotencyBegin, Page, ProviderCleanup,
    ProviderCleanupCounts, Purge, SealedValues, StoreResult, StoredResponse, UserCursor, UserQuery,
};
use crate::audit::integrity::Seal;
use crate::audit::month::Month;
use crate::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use crate::audit::{AuditEvent, AuditQuery, NewAuditEvent};
use crate::credential::Credential;
use crate::custody::BiometricReference;
use crate::flow::{Flow, FlowId};
use crate::user::{ExternalUserId, User, UserId};

#[async_trait]
pub trait Repository: crate::rotation::SealedStore + Send + Sync + 'static {
    /// A cheap round trip, for readiness probes.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a new user and the event recording it.
    /// [`Conflict::ExternalIdTaken`](super::Conflict::ExternalIdTaken) when the external id is already taken.
    async fn create_user(&self, user: &User, event: &NewAuditEvent) -> StoreResult<()>;

    /// `NotFound` when no such user exists.
    async fn user_by_external_id(&self, external_id: &ExternalUserId) -> StoreResult<User>;

    async fn user_by_id(&self, id: UserId) -> StoreResult<User>;

    /// Users whose identifier starts with `query.prefix` and created within
    /// the range, in the query's order (see [`UserQuery::by_creation`]), after
    /// `query.after`; the next page's cursor when more remain.
    async fn search_users(&self, query: &UserQuery) -> StoreResult<Page<User, UserCursor>>;

    /// Deletes the user and everything owned by them (credentials, biometric
    /// reference, flows), records the event, and queues what the IDV provider
    /// must still forget (a [`ProviderCleanup`]), all in one transaction.
    /// `NotFound` when the user does not exist (nothing is written then).
    async fn delete_user(&self, id: UserId, event: &NewAuditEvent) -> StoreResult<()>;

    /// Queued provider cleanups, dead ones included, oldest request first.
    async fn pending_provider_cleanups(&self, limit: u32) -> StoreResult<Vec<ProviderCleanup>>;

    /// Provider cleanups due at `now` (not dead, next attempt not later),
    /// earliest due first.
    async fn due_provider_cleanups(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<ProviderCleanup>>;

    /// The queue of clean-ups counted by state, in one statement.
    async fn provider_cleanup_counts(&self) -> StoreResult<ProviderCleanupCounts>;

    /// The provider forgot the user: the cleanup is done.
    async fn finish_provider_cleanup(&self, user_id: UserId) -> StoreResult<()>;

    /// A cleanup attempt failed at `at`: it is tried again at `retry_at`, or,
    /// with `None`, marked dead at `at` (it stays listed, never tried again).
    async fn fail_provider_cleanup(
        &self,
        user_id: UserId,
        at: OffsetDateTime,
        retry_at: Option<OffsetDateTime>,
    ) -> StoreResult<()>;

    /// Appends an event that accompanies no state change (a rejected request, say).
    async fn append_audit(&self, event: &NewAuditEvent) -> StoreResult<()>;

    /// Searches the trail, newest first.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent, i64>>;

    /// The overview's counts of a period: flows created in it by type and
    /// state (see [`crate::overview::OverviewQuery`]), and the events of
    /// [`crate::overview::OVERVIEW_EVENTS`] that occurred in it, per bucket.
    async fn overview(
        &self,
        query: &crate::overview::OverviewQuery,
    ) -> StoreResult<crate::overview::Overview>;

    /// One step of the overview's roll-up (see [`crate::overview`]): counts
    /// the flows of the hours after those already rolled up, oldest first, by
    /// hour of creation, type and state as of `settled_at`, in one
    /// transaction. It starts at the hour after the last one counted (when
    /// none is, at the hour of the oldest flow) and counts at most
    /// `max_hours`, stopping at the hour holding `settled_at` and at the first
    /// hour holding a flow still open and not past its expiry at
    /// `settled_at`. `None` (nothing written) while another replica is
    /// rolling up.
    async fn roll_up_flow_counts(
        &self,
        settled_at: OffsetDateTime,
        max_hours: u32,
    ) -> StoreResult<Option<crate::overview::RollUpStep>>;

    /// The audit maintenance lease, or `None` while another maintainer holds it.
    async fn lead_audit_maintenance(&self) -> StoreResult<Option<Box<dyn MaintenanceLease>>>;

    /// Seals with `seal_no > after`, in order, at most `limit`.
    async fn audit_seals(&self, after: i64, limit: u32) -> StoreResult<Vec<Seal>>;

    /// Every seal of one month, in order.
    async fn audit_seals_of_month(&self, month: Month) -> StoreResult<Vec<Seal>>;

    /// A month's events with `seq > after`, oldest position first, at most `limit`.
    async fn audit_events_of_month(
        &self,
        month: Month,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;

    /// Months that hold events (on PostgreSQL also empty monthly partitions).
    async fn audit_months(&self) -> StoreResult<Vec<Month>>;

    /// Records an archive manifest unless the month already has one.
    async fn record_audit_archive(
        &self,
        manifest: &ArchiveManifest,
    ) -> StoreResult<ArchiveRecorded>;

    /// Every archive manifest, oldest month first.
    async fn audit_archives(&self) -> StoreResult<Vec<ArchiveManifest>>;

    /// Writes a flow change, its effects and its events atomically.
    async fn apply(&self, change: &Change) -> StoreResult<()>;

    async fn flow(&self, id: FlowId) -> StoreResult<Flow>;

    /// The flow whose hand-off code hashes to `code_sha256`.
    async fn flow_by_handoff(&self, code_sha256: &[u8; 32]) -> StoreResult<Flow>;

    /// The flow waiting on the provider's run `run_id`.
    async fn flow_by_run(&self, run_id: &str) -> StoreResult<Flow>;

    /// The user's most recent flows, newest first.
    async fn flows_of(&self, user: UserId, limit: u32) -> StoreResult<Vec<Flow>>;

    /// The user's flows matching `query`, newest first, at most its limit,
    /// as stored (the caller reads each as of `query.now`).
    async fn search_flows(&self, query: &FlowQuery) -> StoreResult<Vec<Flow>>;

    async fn credential(&self, id: Uuid) -> StoreResult<Credential>;

    /// By WebAuthn credential id.
    async fn credential_by_webauthn_id(&self, webauthn_id: &str) -> StoreResult<Credential>;

    /// The user's credentials, oldest first.
    async fn credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>>;

    /// The user's credentials that are not revoked, oldest first (one indexed
    /// read, however many revoked ones their history holds).
    async fn live_credentials_of(&self, user: UserId) -> StoreResult<Vec<Credential>>;

    /// Whether the user has at least one `active` credential (one indexed
    /// lookup, however many revoked ones their history holds).
    async fn has_active_credential(&self, user: UserId) -> StoreResult<bool>;

    /// `NotFound` when the user has none.
    async fn reference_of(&self, user: UserId) -> StoreResult<BiometricReference>;

    /// The reference a flow staged (sealed, bound to the flow); `NotFound`
    /// when it staged none.
    async fn staged_reference_of(&self, flow: FlowId) -> StoreResult<Vec<u8>>;

    /// Removes references staged by flows that have ended or are past their
    /// expiry at `now` (a flow nobody touched again is never expired
    /// explicitly); how many were removed.
    async fn discard_stale_staged_references(&self, now: OffsetDateTime) -> StoreResult<u64>;

    /// For every [`SealedColumn`](crate::rotation::SealedColumn), for the
    /// transaction contexts' keyed digests and for the audit seals, how many
    /// values each key id seals (read from each value's header).
    async fn sealed_values(&self) -> StoreResult<Vec<SealedValues>>;

    /// Remembers the user's provider-side applicant (sealed) unless the user
    /// has one already; whether it was written.
    async fn set_applicant_if_absent(&self, user: UserId, sealed: &[u8]) -> StoreResult<bool>;

    /// Replaces the user's applicant `current` (sealed, as read) with
    /// `replacement` unless it changed meanwhile; whether it was written.
    async fn replace_applicant(
        &self,
        user: UserId,
        current: &[u8],
        replacement: &[u8],
    ) -> StoreResult<bool>;

    /// The user with `external_id` and their standing at `now`, in one read;
    /// `NotFound` when no such user exists. The counts serve an early refusal
    /// only: a flow's insertion checks the limits again, atomically.
    async fn flow_prerequisites(
        &self,
        external_id: &ExternalUserId,
        now: OffsetDateTime,
    ) -> StoreResult<FlowPrerequisites>;

    /// Claims `(scope, key)` for a request whose body hashes to `request_sha256`.
    /// A claim left unfinished for longer than `lock_until - now` may be retaken.
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        request_sha256: &[u8; 32],
        now: OffsetDateTime,
        lock_until: OffsetDateTime,
    ) -> StoreResult<IdempotencyBegin>;

    /// Stores the response of a claimed request for replay until `expires_at`.
    /// A response that concerns a user names them in `user`, so that the
    /// user's deletion removes it; when that user no longer exists (deleted
    /// while the request ran), nothing is stored and the claim is left to
    /// lapse.
    async fn idempotency_finish(
        &self,
        scope: &str,
        key: &str,
        response: &StoredResponse,
        expires_at: OffsetDateTime,
        user: Option<UserId>,
    ) -> StoreResult<()>;

    /// Deletes at most `limit` rows of what `purge` names, in one transaction
    /// that only one replica runs at a time; `None` (and nothing deleted) when
    /// another replica is purging right now.
    async fn purge(&self, purge: Purge, limit: u32) -> StoreResult<Option<u64>>;

    /// Whether a provider event with this de-duplication key was recorded.
    async fn provider_event_seen(&self, dedupe_key: &str) -> StoreResult<bool>;

    /// Flows waiting on the provider (`awaiting_verification`, `in_review`,
    /// with a run, not expired at `now`) whose last provider check — or last
    /// change — is before `checked_before`, oldest first.
    async fn flows_awaiting_provider(
        &self,
        checked_before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>>;

    /// Failed flows whose run the provider may hold although its creation
    /// failed ([`Effect::SetRunLookup`](super::Effect::SetRunLookup)), last changed before
    /// `failed_before`, oldest first.
    async fn flows_awaiting_run_lookup(
        &self,
        failed_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<Flow>>;

    /// Notes that the flow's run was re-read at `at` (not a change of the flow).
    async fn mark_provider_checked(&self, id: FlowId, at: OffsetDateTime) -> StoreResult<()>;

    /// Releases a claim whose request failed before producing a replayable response.
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> StoreResult<()>;
}
