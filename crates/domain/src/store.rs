//! The persistence port. The trait speaks the domain, not tables; each store
//! commits a change and its audit events in one transaction. Both stores pass
//! the same conformance suite (`store-conformance`), which is this trait's
//! executable specification.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::integrity::Seal;
use crate::audit::month::Month;
use crate::audit::trail::{ArchiveManifest, ArchiveRecorded, MaintenanceLease};
use crate::audit::{AuditEvent, AuditQuery, NewAuditEvent};
use crate::credential::{Credential, CredentialStatus};
use crate::custody::BiometricReference;
use crate::flow::{Flow, FlowId, FlowState, FlowType};
use crate::user::{ExternalUserId, User, UserId};

/// What can go wrong in a store, already mapped from driver errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a concurrent change prevented the write; nothing
    /// of the change was written.
    #[error("conflict on {0}")]
    Conflict(Conflict),
    /// A per-user limit would be exceeded (`open_flows`, `idv_runs`).
    #[error("limit reached: {what}")]
    LimitReached { what: String },
    /// The database cannot be reached or timed out; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored value no longer matches the domain's rules.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the driver reported.
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a refused write conflicted with: the rule, never a value. Each store
/// maps its driver's errors (constraint names, refusals) to it in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The flow's stored version is no longer the one the change was derived
    /// from ([`FlowWrite::Update`]).
    FlowVersion,
    /// A credential changed since it was read: a use found it no longer
    /// `active` or its counter not growing ([`Effect::UseCredential`],
    /// [`Effect::UseCredentialKeepingCounter`]), or a status change found
    /// another status than `from` ([`Effect::SetCredentialStatus`]).
    CredentialState,
    /// The credential a completion relies on is no longer `active`
    /// ([`Effect::RequireActiveCredential`]).
    CredentialNotActive,
    /// The user has a biometric reference already ([`Effect::EnrolReference`]).
    ReferenceExists,
    /// The provider event was recorded before ([`Effect::RecordProviderEvent`]).
    ProviderEvent,
    /// A credential with this WebAuthn id is registered already
    /// ([`Effect::InsertCredential`]).
    WebAuthnIdTaken,
    /// A user with this external id exists already.
    ExternalIdTaken,
    /// A concurrent transaction won (PostgreSQL's serialization failure or
    /// deadlock).
    ConcurrentUpdate,
    /// Another uniqueness rule, as the database names it (for logs: no
    /// behaviour depends on it).
    Unique(String),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FlowVersion => "flow_version",
            Self::CredentialState => "credential_state",
            Self::CredentialNotActive => "credential_not_active",
            Self::ReferenceExists => "biometric_references.user_id",
            Self::ProviderEvent => "provider_event",
            Self::WebAuthnIdTaken => "credentials.webauthn_id",
            Self::ExternalIdTaken => "users.external_id",
            Self::ConcurrentUpdate => "concurrent_update",
            Self::Unique(rule) => rule,
        })
    }
}

/// One page of results plus the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from `limit + 1` fetched rows: the extra row only tells that
    /// another page exists, whose cursor is taken from the page's last item.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, cursor: impl FnOnce(&T) -> C) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next }
    }
}

/// How many stored values name one data-encryption key id, in one column
/// (`audit_seals.key_id` counts the audit seals made under it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValues {
    /// `table.column`.
    pub column: String,
    pub key_id: String,
    pub values: u64,
}

impl SealedValues {
    /// A column's `(key id, count)` rows, as a store reads them.
    pub fn of_column(column: &str, rows: Vec<(String, i64)>) -> Vec<Self> {
        rows.into_iter()
            .map(|(key_id, n)| Self {
                column: column.to_owned(),
                key_id,
                values: u64::try_from(n).unwrap_or_default(),
            })
            .collect()
    }
}

/// What the IDV provider must still forget about a deleted user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCleanup {
    pub user_id: UserId,
    pub customer_user_id: crate::user::Pseudonym,
    /// Sealed, bound to `users.idv_applicant` of `user_id`, as it was stored.
    pub applicant_sealed: Option<Vec<u8>>,
    pub requested_at: OffsetDateTime,
    pub attempts: u32,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// When the next attempt is due (`None`: at once, unless dead).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Set once the last attempt allowed failed: no more attempts are made,
    /// and the item stays listed for an operator to see.
    pub dead_at: Option<OffsetDateTime>,
}

/// How many provider clean-ups wait, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderCleanupCounts {
    /// Not yet done and still tried: due now or at their next attempt.
    pub pending: u64,
    /// Of the pending ones, those that failed at least once.
    pub retrying: u64,
    /// Given up after the last attempt allowed: the provider may still hold
    /// the user's data until an operator steps in.
    pub dead: u64,
}

/// A search of users by identifier prefix and creation time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    pub prefix: Option<String>,
    /// Only users with at least one credential in this status.
    pub credential_status: Option<CredentialStatus>,
    pub created_from: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub after: Option<UserCursor>,
    pub limit: u32,
}

/// Where a page of users continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCursor {
    /// After this identifier (identifier order).
    ExternalId(String),
    /// After this creation time and identifier (creation order).
    Created(OffsetDateTime, String),
}

impl UserQuery {
    /// Searches by creation time alone run in creation order (its index);
    /// every other search runs in identifier order.
    pub fn by_creation(&self) -> bool {
        self.prefix.is_none() && (self.created_from.is_some() || self.created_before.is_some())
    }

    /// The cursor continuing after `user` in this query's order.
    pub fn cursor_after(&self, user: &User) -> UserCursor {
        if self.by_creation() {
            UserCursor::Created(user.created_at, user.external_id.as_str().to_owned())
        } else {
            UserCursor::ExternalId(user.external_id.as_str().to_owned())
        }
    }
}

/// A listing of one user's flows, newest first, by type and by the state each
/// reads as at `now` ([`Flow::as_of`]): `Expired` takes in the open flows
/// past their expiry, and an open state leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowQuery {
    pub user: UserId,
    pub flow_type: Option<FlowType>,
    pub state: Option<FlowState>,
    pub now: OffsetDateTime,
    pub limit: u32,
}

/// Per-user limits checked atomically with a flow's insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows not terminal and not past their expiry.
    pub max_open_flows: u32,
    /// Flows needing an identity proof created in the last 24 hours.
    pub max_idv_runs_per_day: u32,
    pub now: OffsetDateTime,
}

/// A user and what decides whether they may start a flow now, read at once
/// (what a flow's creation checks before it calls the IDV provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPrerequisites {
    pub user: User,
    /// At least one `active` credential.
    pub has_active_credential: bool,
    /// At least one credential that is not revoked (`active` or `suspended`).
    pub has_live_credential: bool,
    /// The flow that stored the user's current biometric reference, when the
    /// user has one.
    pub reference_flow_id: Option<FlowId>,
    /// Flows not terminal and not past their expiry (as [`FlowLimits`] counts them).
    pub open_flows: u32,
    /// Flows needing an identity proof created in the last 24 hours.
    pub idv_runs_last_day: u32,
}

/// How a change touches the `flows` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowWrite {
    Insert {
        flow: Flow,
        limits: FlowLimits,
    },
    /// Written only if the stored version is still `flow.version - 1`;
    /// otherwise the change is a [`Conflict::FlowVersion`].
    Update {
        flow: Flow,
    },
}

/// A row change that accompanies a flow transition.
#[derive(Debug, Clone, PartialEq, Eq)]
// A change carries a handful of effects and is applied once: boxing the
// credential would add an allocation per insert for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub enum Effect {
    CreateUser(User),
    /// [`Conflict::WebAuthnIdTaken`] when the WebAuthn id is registered already.
    InsertCredential(Credential),
    /// Records a use: only if the credential is still `active` and the counter
    /// grows (see `credential::counter_is_valid`); otherwise
    /// [`Conflict::CredentialState`].
    UseCredential {
        id: Uuid,
        sign_count: u32,
        backup_state: bool,
        at: OffsetDateTime,
    },
    /// Records a use whose counter did not grow, accepted under the `warn`
    /// counter policy: only if the credential is still `active` (otherwise
    /// [`Conflict::CredentialState`]); the stored counter is kept, never lowered.
    UseCredentialKeepingCounter {
        id: Uuid,
        backup_state: bool,
        at: OffsetDateTime,
    },
    /// Only if the credential's status is still `from`; otherwise
    /// [`Conflict::CredentialState`].
    SetCredentialStatus {
        id: Uuid,
        from: CredentialStatus,
        to: CredentialStatus,
        reason: Option<String>,
        at: OffsetDateTime,
    },
    /// Makes the reference the user's first: [`Conflict::ReferenceExists`]
    /// when the user has one already.
    EnrolReference(BiometricReference),
    /// Replaces the user's current reference (a completed recovery).
    StoreReference(BiometricReference),
    /// Remembers the user's provider-side applicant (sealed).
    SetApplicant {
        user_id: UserId,
        sealed: Vec<u8>,
    },
    /// Stages a reference on a flow (sealed, bound to the flow), replacing
    /// one the flow staged before. It is the user's only through
    /// [`Effect::EnrolReference`] or [`Effect::StoreReference`].
    StageReference {
        flow_id: FlowId,
        sealed: Vec<u8>,
        at: OffsetDateTime,
    },
    /// Removes what a flow staged (none: nothing happens).
    DiscardStagedReference(FlowId),
    /// Only if the credential is still `active`; otherwise
    /// [`Conflict::CredentialNotActive`]. Writes nothing.
    RequireActiveCredential(Uuid),
    /// Revokes every credential of the user that is not revoked, except
    /// `keep`, in one set-based write, with one copy of `event` per revoked
    /// credential (its subject's `credential_id` set to it). The store
    /// takes the user's lock before the change's flow write.
    RevokeOtherCredentials {
        user_id: UserId,
        keep: Uuid,
        reason: String,
        at: OffsetDateTime,
        event: NewAuditEvent,
    },
    /// Cancels every flow of the user in progress, except `keep` (each one's
    /// version bumped, so a change derived from it loses), discards what they
    /// staged, and writes one copy of `event` per cancelled flow (its
    /// subject's `flow_id` set to it). The store takes the user's lock
    /// before the change's flow write.
    CancelOtherFlows {
        user_id: UserId,
        keep: FlowId,
        at: OffsetDateTime,
        event: NewAuditEvent,
    },
    /// Records a provider event by its de-duplication key;
    /// [`Conflict::ProviderEvent`] when it was recorded before.
    RecordProviderEvent {
        dedupe_key: String,
        run_id: String,
        at: OffsetDateTime,
    },
    /// Marks whether the provider may hold a run for the flow that the flow
    /// does not know of (its creation failed ambiguously): while `pending`,
    /// the reconciler looks for it ([`Repository::flows_awaiting_run_lookup`]).
    SetRunLookup {
        flow_id: FlowId,
        pending: bool,
    },
}

/// One write of a [`Change`], in the order every store makes them
/// ([`Change::writes`]); each store writes a step with its own SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Take the user's lock, before the flow's row (a flow's insertion takes
    /// it first too). A store whose write transaction locks the whole
    /// database has nothing more to do.
    LockUser(UserId),
    /// The flow's insertion or conditional update.
    Flow(&'a FlowWrite),
    /// One effect: the users the change creates come first (the flow may
    /// belong to one of them), the others after the flow, in the change's
    /// order.
    Effect(&'a Effect),
    /// The change's audit events, last; never empty.
    Events(&'a [NewAuditEvent]),
}

impl Change {
    /// Whether the store must lock the user before the flow write (the
    /// set-based effects of a recovery: see [`Effect::RevokeOtherCredentials`]).
    pub fn locks_user(&self) -> Option<UserId> {
        self.effects.iter().find_map(|e| match e {
            Effect::RevokeOtherCredentials { user_id, .. }
            | Effect::CancelOtherFlows { user_id, .. } => Some(*user_id),
            _ => None,
        })
    }

    /// The change's writes in the order a store makes them: the user's lock
    /// (when [`Change::locks_user`]), the users created, the flow, the other
    /// effects in their order, then the audit events.
    pub fn writes(&self) -> impl Iterator<Item = Write<'_>> {
        let creates_user = |e: &&Effect| matches!(e, Effect::CreateUser(_));
        let lock = self.locks_user().map(Write::LockUser);
        let users = self.effects.iter().filter(creates_user).map(Write::Effect);
        let flow = self.flow.as_ref().map(Write::Flow);
        let others = self
            .effects
            .iter()
            .filter(move |e| !creates_user(e))
            .map(Write::Effect);
        let events = (!self.events.is_empty()).then_some(Write::Events(&self.events));
        lock.into_iter()
            .chain(users)
            .chain(flow)
            .chain(others)
            .chain(events)
    }
}

/// One copy of `event` per credential, each about that credential
/// (what stores write for [`Effect::RevokeOtherCredentials`]).
pub fn per_credential(event: &NewAuditEvent, ids: &[Uuid]) -> Vec<NewAuditEvent> {
    copies(event, ids, |subject, id| subject.credential_id = Some(id))
}

/// One copy of `event` per flow, each about that flow (what stores write
/// for [`Effect::CancelOtherFlows`]).
pub fn per_flow(event: &NewAuditEvent, ids: &[Uuid]) -> Vec<NewAuditEvent> {
    copies(event, ids, |subject, id| subject.flow_id = Some(id))
}

fn copies(
    event: &NewAuditEvent,
    ids: &[Uuid],
    about: impl Fn(&mut crate::audit::Subject, Uuid),
) -> Vec<NewAuditEvent> {
    ids.iter()
        .map(|id| {
            let mut e = event.clone();
            e.id = crate::ids::new_id(e.occurred_at);
            about(&mut e.subject, *id);
            e
        })
        .collect()
}

/// Everything one transaction writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub flow: Option<FlowWrite>,
    pub effects: Vec<Effect>,
    pub events: Vec<NewAuditEvent>,
}

/// A stored response to replay for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Sealed: responses may carry SDK tokens.
    pub body_sealed: Vec<u8>,
}

/// Rows kept only for a while: which kind, and the instant before which they
/// go. The retention itself is decided by [`crate::retention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Idempotency records whose replay window ended before `before`, and
    /// unfinished claims whose lock passed before it.
    IdempotencyRecords { before: OffsetDateTime },
    /// Webhook de-duplication records received before `before`.
    ProviderEvents { before: OffsetDateTime },
    /// The SDK tokens and WebAuthn ceremonies of flows past their expiry at
    /// `now` (a flow nobody touches again is never expired explicitly, so
    /// the write that ends a flow never clears them): cleared, nothing else
    /// of the flow changes.
    ExpiredFlowSecrets { now: OffsetDateTime },
    /// Flows whose expiry is before `before`, ended or not (nothing can
    /// change them any more), with what they staged and their hand-off.
    EndedFlows { before: OffsetDateTime },
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First time: process it, then `idempotency_finish`.
    Proceed,
    /// Seen with the same request: replay this.
    Replay(StoredResponse),
    /// Seen with a different request.
    Mismatch,
    /// The same request is being processed right now.
    InProgress,
}

#[async_trait]
pub trait Repository: crate::rotation::SealedStore + Send + Sync + 'static {
    /// A cheap round trip, for readiness probes.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a new user and the event recording it.
    /// [`Conflict::ExternalIdTaken`] when the external id is already taken.
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
    /// failed ([`Effect::SetRunLookup`]), last changed before
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::audit::{Actor, AuditEventType, Subject};
    use crate::flow::FlowType;

    #[test]
    fn a_change_is_written_users_first_then_the_flow_the_effects_and_the_events() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let user = User::new(ExternalUserId::parse("alice").unwrap(), now);
        let flow = Flow::new(
            FlowId(Uuid::new_v4()),
            user.id,
            FlowType::Recovery,
            now,
            now + time::Duration::minutes(10),
        );
        let event = NewAuditEvent::new(
            AuditEventType::FlowCancelled,
            Actor::System,
            Subject::default(),
            now,
        );
        let revoke = Effect::RevokeOtherCredentials {
            user_id: user.id,
            keep: Uuid::new_v4(),
            reason: "recovered".into(),
            at: now,
            event: event.clone(),
        };
        let discard = Effect::DiscardStagedReference(flow.id);
        let create = Effect::CreateUser(user.clone());
        let change = Change {
            flow: Some(FlowWrite::Update { flow }),
            effects: vec![revoke.clone(), create.clone(), discard.clone()],
            events: vec![event],
        };

        let writes: Vec<Write<'_>> = change.writes().collect();

        assert_eq!(
            writes,
            [
                Write::LockUser(user.id),
                Write::Effect(&create),
                Write::Flow(change.flow.as_ref().unwrap()),
                Write::Effect(&revoke),
                Write::Effect(&discard),
                Write::Events(&change.events),
            ]
        );
    }

    #[test]
    fn a_change_without_a_lock_or_events_writes_neither() {
        let change = Change {
            flow: None,
            effects: vec![Effect::RequireActiveCredential(Uuid::new_v4())],
            events: vec![],
        };

        let writes: Vec<Write<'_>> = change.writes().collect();

        assert_eq!(writes, [Write::Effect(&change.effects[0])]);
    }
}
