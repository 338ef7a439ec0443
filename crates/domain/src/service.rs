//! The flow service: what the Core API does, as the domain sees it.
//!
//! Each operation reads what it needs, decides with the pure state machine
//! (`flow.rs`), and commits one [`Change`]: the flow's new version, its side
//! effects and its audit events, in one transaction. Conflicting concurrent
//! operations lose on the flow's version, so exactly one wins on any number of
//! replicas. Rejected input changes nothing and is audited.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proto::ErrorCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::audit::{Actor, AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::clock::Clock;
use crate::credential::RegisteredPasskey;
use crate::credential::{Credential, CredentialStatus, WebAuthnId, counter_is_valid};
use crate::custody::{self, BiometricReference, MAX_REFERENCE_BYTES};
use crate::error::{DomainError, DomainResult, ErrorKind};
use crate::flow::{
    Ceremony, Fact, FailureReason, Flow, FlowId, FlowState, FlowType, Handoff, IdentityOutcome,
    IdentityStatus, KeyedDigest, NewCredential, TransitionError,
};
use crate::ids;
use crate::idv::{
    ApplicantState, IdentityProvider, IdvError, RUN_CREATION_BUDGET, RUN_LOOKUP_BUDGET, RunStatus,
    StartRun, StartedRun, Workflow,
};
use crate::possession::{
    BackupPolicy, CeremonyError, CounterPolicy, PasskeyUser, RelyingParty, StoredPasskey,
};
use crate::rotation::{CONTEXT_DIGEST_SLOT, SealedColumn};
use crate::sealing::{Binding, DataKey};
use crate::store::{Change, Conflict, Effect, FlowLimits, FlowWrite, Repository, StoreError};
use crate::tally::{RefusalTally, Tallied, TallyKind};
use crate::user::{ExternalUserId, User, UserId};

/// The rules an operator can tune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPolicy {
    pub flow_ttl: Duration,
    pub handoff_ttl: Duration,
    pub max_open_flows_per_user: u32,
    pub max_idv_runs_per_user_per_day: u32,
    /// The largest step-up transaction context, as compact JSON.
    pub max_transaction_context_bytes: usize,
    /// Recovery revokes the user's earlier credentials when it completes.
    pub recovery_revokes_existing: bool,
    /// How long a flow waits on the provider before the reconciler re-reads its run.
    pub reconcile_after: Duration,
    /// A signature counter that does not grow: refused, or accepted and audited.
    pub counter_policy: CounterPolicy,
    /// Passkeys that can be backed up (`BE=1`), and changes of that flag.
    pub backup_policy: BackupPolicy,
    /// `builtin` mode: how long a flow's WebAuthn challenge can be answered
    /// (never beyond the flow's own expiry).
    pub ceremony_ttl: Duration,
    /// How many times the Core API asks the provider to forget a deleted
    /// user before it marks the clean-up dead.
    pub provider_cleanup_max_attempts: u32,
}

impl Default for FlowPolicy {
    fn default() -> Self {
        Self {
            flow_ttl: Duration::minutes(15),
            handoff_ttl: Duration::minutes(2),
            max_open_flows_per_user: 5,
            max_idv_runs_per_user_per_day: 10,
            max_transaction_context_bytes: 4096,
            recovery_revokes_existing: true,
            reconcile_after: Duration::minutes(2),
            counter_policy: CounterPolicy::Enforce,
            backup_policy: BackupPolicy::Warn,
            ceremony_ttl: Duration::minutes(5),
            provider_cleanup_max_attempts: 10,
        }
    }
}

/// The wait before the next attempt of a provider clean-up that failed
/// `attempts` times: a minute, doubling each time, at most six hours.
pub fn provider_cleanup_backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    Duration::minutes(1)
        .saturating_mul(1_i32 << doublings)
        .min(Duration::hours(6))
}

/// Why a clean-up attempt failed, in words fit for a log line: the kind of
/// failure, never a transport error's text (which may carry the provider's
/// URL, and in it an applicant id).
fn cleanup_failure(e: &IdvError) -> String {
    match e {
        IdvError::Unavailable(_) | IdvError::Unsettled(_) => {
            "the identity-verification provider is unavailable".to_owned()
        }
        IdvError::Refused(detail) => {
            format!("the identity-verification provider refused the request: {detail}")
        }
        IdvError::UnknownRun => e.to_string(),
    }
}

/// What one pass over the provider clean-up queue did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderCleanupReport {
    /// Users the provider forgot.
    pub forgotten: u32,
    /// Attempts that failed and will be retried, with why.
    pub retrying: Vec<FailedCleanup>,
    /// Attempts that failed for the last time: the clean-up is now dead.
    pub dead: Vec<FailedCleanup>,
}

/// A failed provider clean-up attempt: our id of the deleted user (never the
/// customer's identifier or the provider's applicant id) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCleanup {
    pub user_id: UserId,
    pub attempts: u32,
    pub reason: String,
}

/// Told after every committed flow change (long-polling waiters, say).
pub trait FlowObserver: Send + Sync + 'static {
    fn flow_changed(&self, id: FlowId);
}

/// Who is asking, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub actor: Actor,
    pub correlation_id: Option<String>,
}

/// Which configured webhook secret verified a provider delivery: while the
/// secret is being rotated, deliveries signed with the previous one are still
/// accepted. Recorded as the `signature` detail of the events it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedWith {
    Current,
    Previous,
}

impl SignedWith {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }
}

/// A `provider.event_received` event's details.
fn provider_event_details(
    provider: &str,
    status: Option<&str>,
    signed_with: Option<SignedWith>,
) -> Value {
    let mut details = json!({ "provider": provider });
    if let Some(status) = status {
        details["status"] = json!(status);
    }
    if let Some(signed_with) = signed_with {
        details["signature"] = json!(signed_with.as_str());
    }
    details
}

/// A request to start a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFlow {
    pub flow_type: FlowType,
    pub external_user_id: ExternalUserId,
    pub transaction_context: Option<Value>,
    pub cross_platform: bool,
}

/// The possession proof, as the customer's relying party verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PossessionProof {
    /// Registration, recovery: the new credential.
    NewCredential {
        webauthn_id: String,
        public_key: Option<Vec<u8>>,
        aaguid: Option<Uuid>,
        sign_count: u32,
        transports: Vec<String>,
        backup_eligible: bool,
        backup_state: bool,
        platform: Option<String>,
        device_label: Option<String>,
    },
    /// Sign-in, step-up: an assertion by an existing credential.
    Assertion {
        webauthn_id: String,
        sign_count: u32,
        backup_eligible: Option<bool>,
        backup_state: Option<bool>,
    },
    /// `builtin` mode: the authenticator's response (`RegistrationResponseJSON`
    /// or `AuthenticationResponseJSON`), verified here.
    WebAuthn {
        response: Value,
        platform: Option<String>,
        device_label: Option<String>,
    },
}

/// A flow as the integration sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowView {
    pub flow: Flow,
    pub external_user_id: ExternalUserId,
    pub transaction_context: Option<Value>,
    /// SHA-256 of the transaction context as compact JSON, for the
    /// integration to compare with what it showed the user. Computed from the
    /// sealed context: only a keyed digest is stored.
    pub transaction_context_sha256: Option<String>,
    /// Only while the SDK may still need it, and never to the browser side of
    /// an unclaimed cross-platform flow.
    pub sdk_token: Option<Zeroizing<String>>,
    /// Only in the response that created a cross-platform flow.
    pub handoff_code: Option<Zeroizing<String>>,
    pub provider: &'static str,
    /// `builtin` mode, only in the response that created the flow: the
    /// WebAuthn options for the authenticator.
    pub webauthn_options: Option<Value>,
}

/// A user as the integration sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub credentials: Vec<Credential>,
    pub has_biometric_reference: bool,
}

/// What a reconciliation pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub checked: u32,
    pub applied: u32,
    /// Failed flows whose run the provider may hold, looked for.
    pub looked_up: u32,
    /// Of those, the runs found and recorded with their flows.
    pub found: u32,
}

/// What the provider is asked to start (or look for) for `flow`'s run.
fn run_request<'a>(
    user: &'a User,
    applicant_id: &'a str,
    flow: &Flow,
    deadline: Instant,
) -> StartRun<'a> {
    StartRun {
        workflow: match flow.flow_type {
            FlowType::Registration => Workflow::Registration,
            FlowType::StepUp => Workflow::StepUp,
            _ => Workflow::RecoveryVerify,
        },
        customer_user_id: &user.pseudonym,
        applicant_id,
        flow_id: flow.id,
        deadline,
    }
}

/// The de-duplication key of the provider's run status event: the same for a
/// webhook, its re-deliveries (whatever their whitespace) and the reconciler.
pub fn provider_event_key(provider: &str, run_id: &str, status: &str) -> String {
    format!("{provider}:workflow_run:{run_id}:{status}")
}

/// What happened to a provider event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Applied,
    /// Recorded, but the run's status did not move the flow.
    NoChange,
    Duplicate,
    UnknownRun,
}

pub struct FlowService {
    repo: Arc<dyn Repository>,
    idv: Arc<dyn IdentityProvider>,
    clock: Arc<dyn Clock>,
    key: DataKey,
    policy: FlowPolicy,
    observer: Option<Arc<dyn FlowObserver>>,
    external_ids: ExternalIds,
    /// `builtin` possession mode when present.
    relying_party: Option<Arc<dyn RelyingParty>>,
    /// Webhook deliveries not acted on, counted until their window ends.
    tally: RefusalTally,
}

/// The customer's identifier of users seen recently, so that a flow's response
/// does not read its user again. Safe to keep: a user id is never reused and
/// its external identifier never changes (a deleted user's flows go with them).
/// Bounded: emptied when full.
#[derive(Default)]
struct ExternalIds(std::sync::Mutex<std::collections::HashMap<UserId, ExternalUserId>>);

impl ExternalIds {
    const MAX: usize = 65_536;

    fn get(&self, id: UserId) -> Option<ExternalUserId> {
        self.0.lock().ok()?.get(&id).cloned()
    }

    fn remember(&self, id: UserId, external: &ExternalUserId) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(id, external.clone());
        }
    }

    fn forget(&self, external: &ExternalUserId) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, e| e != external);
        }
    }
}

fn context_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::FlowTransactionContext.binding(id.0.as_bytes())
}

fn ceremony_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::FlowCeremony.binding(id.0.as_bytes())
}

/// A refused WebAuthn response as the caller sees it, and the audit reason.
fn ceremony_refusal(error: CeremonyError) -> DomainError {
    let (code, message) = match &error {
        CeremonyError::Malformed(_) => (ErrorCode::WebauthnResponseMalformed, error.to_string()),
        CeremonyError::Origin => (ErrorCode::WebauthnOriginNotAllowed, error.to_string()),
        CeremonyError::RpId => (ErrorCode::WebauthnRpIdMismatch, error.to_string()),
        CeremonyError::Challenge => (ErrorCode::WebauthnChallengeMismatch, error.to_string()),
        CeremonyError::Signature => (ErrorCode::WebauthnSignatureInvalid, error.to_string()),
        CeremonyError::UserVerification => (ErrorCode::WebauthnUserNotVerified, error.to_string()),
        CeremonyError::UserPresence => (ErrorCode::WebauthnUserNotPresent, error.to_string()),
        CeremonyError::Attestation(_) => {
            (ErrorCode::WebauthnAttestationNotAllowed, error.to_string())
        }
        CeremonyError::AuthenticatorCompromised { .. } => (
            ErrorCode::WebauthnAuthenticatorCompromised,
            error.to_string(),
        ),
        CeremonyError::CredentialNotAllowed => {
            (ErrorCode::WebauthnCredentialNotAllowed, error.to_string())
        }
        CeremonyError::BackupEligibilityChanged => {
            return DomainError::conflict(ErrorCode::BackupEligibilityChanged, error.to_string());
        }
        CeremonyError::Internal(detail) => {
            return DomainError::internal(format!("WebAuthn verification: {detail}"));
        }
    };
    DomainError::bad_request(code, message)
}

/// Where a reference staged on a flow is sealed to: the flow, not the user,
/// so it cannot be read as the user's reference.
fn staged_reference_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::StagedReference.binding(id.0.as_bytes())
}

fn sdk_token_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::FlowSdkToken.binding(id.0.as_bytes())
}

fn applicant_binding(id: &UserId) -> Binding<'_> {
    SealedColumn::UserApplicant.binding(id.0.as_bytes())
}

/// SHA-256 of the compact JSON with object keys sorted: what we echo back.
pub fn transaction_context_sha256(context: &Value) -> String {
    let bytes = serde_json::to_vec(context).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn handoff_hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// The refusal for a change to `flow`, named after the state it is in.
fn transition_error(flow: &Flow, err: TransitionError) -> DomainError {
    match err {
        TransitionError::Terminal if flow.state == FlowState::Expired => {
            DomainError::conflict(ErrorCode::FlowExpired, "the flow has expired")
        }
        TransitionError::Terminal => DomainError::conflict(
            ErrorCode::FlowEnded,
            "the flow has completed, failed or been cancelled",
        ),
        TransitionError::Expired => {
            DomainError::conflict(ErrorCode::FlowExpired, "the flow has expired")
        }
        TransitionError::AlreadyDone | TransitionError::NotExpected => DomainError::conflict(
            ErrorCode::ProofNotExpected,
            "the flow does not take this proof, or already has it",
        ),
        TransitionError::NotYet => DomainError::conflict(
            ErrorCode::ProofNotYetAccepted,
            "the flow does not accept this proof yet",
        ),
    }
}

impl FlowService {
    pub fn new(
        repo: Arc<dyn Repository>,
        idv: Arc<dyn IdentityProvider>,
        clock: Arc<dyn Clock>,
        key: DataKey,
        policy: FlowPolicy,
    ) -> Self {
        Self {
            repo,
            idv,
            clock,
            key,
            policy,
            observer: None,
            external_ids: ExternalIds::default(),
            relying_party: None,
            tally: RefusalTally::default(),
        }
    }

    /// `builtin` possession mode: the backend verifies passkeys with `rp`.
    pub fn with_relying_party(mut self, rp: Arc<dyn RelyingParty>) -> Self {
        self.relying_party = Some(rp);
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn FlowObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn policy(&self) -> &FlowPolicy {
        &self.policy
    }

    fn event(
        &self,
        ctx: &RequestContext,
        event_type: AuditEventType,
        subject: Subject,
        now: OffsetDateTime,
    ) -> NewAuditEvent {
        NewAuditEvent {
            correlation_id: ctx.correlation_id.clone(),
            ..NewAuditEvent::new(event_type, ctx.actor.clone(), subject, now)
        }
    }

    /// Audits a rejected request about `flow`; the rejection itself is returned.
    async fn reject(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        err: DomainError,
        reason: &str,
    ) -> DomainError {
        self.reject_with(ctx, flow, err, reason, json!({})).await
    }

    /// As [`Self::reject`], the event's details adding `details`' members to the code.
    async fn reject_with(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        err: DomainError,
        reason: &str,
        mut details: Value,
    ) -> DomainError {
        if let Some(members) = details.as_object_mut() {
            members.insert("code".to_owned(), json!(err.code.as_str()));
        }
        let event = NewAuditEvent {
            outcome: Outcome::Rejected,
            reason: Some(reason.to_owned()),
            details,
            ..self.event(
                ctx,
                AuditEventType::FlowRequestRejected,
                Subject::of_flow(flow),
                self.clock.now(),
            )
        };
        if let Err(audit_err) = self.repo.append_audit(&event).await {
            return DomainError::from(audit_err);
        }
        err
    }

    async fn commit(&self, change: Change) -> DomainResult<()> {
        Ok(self.commit_store(change).await?)
    }

    async fn commit_store(&self, change: Change) -> Result<(), StoreError> {
        let flow_id = change.flow.as_ref().map(|w| match w {
            FlowWrite::Insert { flow, .. } | FlowWrite::Update { flow } => flow.id,
        });
        self.repo.apply(&change).await?;
        if let (Some(id), Some(observer)) = (flow_id, &self.observer) {
            observer.flow_changed(id);
        }
        Ok(())
    }

    /// The events a transition from `before` to `after` implies, and the
    /// effects of completing the flow. `pending` are the effects already
    /// bound for the same change (a reference staged by it, say).
    async fn transition_records(
        &self,
        ctx: &RequestContext,
        before: &Flow,
        after: &Flow,
        now: OffsetDateTime,
        pending: &[Effect],
    ) -> DomainResult<(Vec<Effect>, Vec<NewAuditEvent>)> {
        let mut effects = Vec::new();
        let mut events = Vec::new();
        let subject = Subject::of_flow(after);
        let state_event = match after.state {
            _ if after.state == before.state => None,
            FlowState::Verified => Some(AuditEventType::FlowVerified),
            FlowState::InReview => Some(AuditEventType::FlowInReview),
            FlowState::Failed => Some(AuditEventType::FlowFailed),
            FlowState::Expired => Some(AuditEventType::FlowExpired),
            FlowState::Cancelled => Some(AuditEventType::FlowCancelled),
            FlowState::AwaitingVerification => Some(AuditEventType::FlowIdvStarted),
            FlowState::Completed | FlowState::Pending => None,
        };
        if before.identity != IdentityStatus::Verified
            && after.identity == IdentityStatus::Verified
            && after.state == FlowState::Completed
        {
            events.push(self.event(ctx, AuditEventType::FlowVerified, subject.clone(), now));
        }
        if let Some(t) = state_event {
            let mut event = self.event(ctx, t, subject.clone(), now);
            if let Some(reason) = after.failure_reason {
                event.outcome = Outcome::Failure;
                event.reason = Some(reason.as_str().to_owned());
            }
            events.push(event);
        }
        let completed = after.state == FlowState::Completed && before.state != FlowState::Completed;
        if !completed {
            // A flow that ends otherwise leaves the user's reference as it was.
            if after.state.is_terminal() && !before.state.is_terminal() && after.reference_stored {
                effects.push(Effect::DiscardStagedReference(after.id));
            }
            return Ok((effects, events));
        }
        if let Some(new) = &after.pending_credential {
            effects.push(Effect::InsertCredential(
                self.registered_credential(after, new, now)?,
            ));
            events.push(self.event(
                ctx,
                AuditEventType::CredentialRegistered,
                subject.clone(),
                now,
            ));
        }
        if after.reference_stored
            && let Some(reference) = self.promoted_reference(before, after, now, pending).await?
        {
            // The identity proof is in: the staged reference becomes the
            // user's, in the transaction that completes the flow.
            events.push(NewAuditEvent {
                details: json!({ "key_id": self.key.id().as_str() }),
                ..self.event(
                    ctx,
                    AuditEventType::BiometricReferenceStored,
                    subject.clone(),
                    now,
                )
            });
            effects.push(if after.flow_type == FlowType::Registration {
                Effect::EnrolReference(reference)
            } else {
                Effect::StoreReference(reference)
            });
            effects.push(Effect::DiscardStagedReference(after.id));
        }
        if after.flow_type == FlowType::Recovery {
            // Nothing started before the recovery outlives it: the user's
            // other flows are cancelled (first: see `Effect::CancelOtherFlows`)
            // and their passkeys revoked, each a set-based write under the
            // user's lock in this transaction.
            effects.push(Effect::CancelOtherFlows {
                user_id: after.user_id,
                keep: after.id,
                at: now,
                event: NewAuditEvent {
                    reason: Some("recovery".to_owned()),
                    details: json!({ "recovery_flow_id": after.id }),
                    ..self.event(
                        ctx,
                        AuditEventType::FlowCancelled,
                        Subject {
                            user_id: Some(after.user_id),
                            ..Subject::default()
                        },
                        now,
                    )
                },
            });
            if let (true, Some(new)) = (
                self.policy.recovery_revokes_existing,
                &after.pending_credential,
            ) {
                effects.push(Effect::RevokeOtherCredentials {
                    user_id: after.user_id,
                    keep: new.id,
                    reason: "recovery".to_owned(),
                    at: now,
                    event: NewAuditEvent {
                        reason: Some("recovery".to_owned()),
                        ..self.event(
                            ctx,
                            AuditEventType::CredentialRevoked,
                            Subject {
                                credential_id: None,
                                ..subject.clone()
                            },
                            now,
                        )
                    },
                });
            }
        }
        if !after.flow_type.creates_credential()
            && before.possession_done
            && let Some(credential) = after.credential_id
        {
            // The assertion came first: the passkey must still be active now
            // (a fraud team may have suspended it since).
            effects.push(Effect::RequireActiveCredential(credential));
        }
        events.push(NewAuditEvent {
            details: json!({
                "type": after.flow_type.as_str(),
                "transaction_context_hmac": after.transaction_context_digest.as_ref().map(|d| &d.hmac),
                "transaction_context_key_id": after.transaction_context_digest.as_ref().map(|d| &d.key_id),
            }),
            ..self.event(ctx, AuditEventType::FlowCompleted, subject, now)
        });
        Ok((effects, events))
    }

    /// The credential a completing flow inserts.
    fn registered_credential(
        &self,
        flow: &Flow,
        new: &NewCredential,
        now: OffsetDateTime,
    ) -> DomainResult<Credential> {
        Ok(Credential {
            id: new.id,
            user_id: flow.user_id,
            webauthn_id: WebAuthnId::parse(&new.webauthn_id)
                .map_err(|e| DomainError::internal(format!("stored pending credential: {e}")))?,
            public_key: new.public_key.clone(),
            aaguid: new.aaguid,
            sign_count: new.sign_count,
            transports: new.transports.clone(),
            backup_eligible: new.backup_eligible,
            backup_state: new.backup_state,
            platform: new.platform.clone(),
            device_label: new.device_label.clone(),
            passkey: new.passkey.clone(),
            created_by_flow: flow.id,
            status: CredentialStatus::Active,
            status_reason: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
        })
    }

    /// The reference staged on `flow` (by this change, or stored before),
    /// sealed anew as the user's. `None` for a flow that an earlier release
    /// made store its reference as the user's at once (nothing staged, the
    /// flow unchanged since it was read).
    async fn promoted_reference(
        &self,
        before: &Flow,
        flow: &Flow,
        now: OffsetDateTime,
        pending: &[Effect],
    ) -> DomainResult<Option<BiometricReference>> {
        let staged_now = pending.iter().rev().find_map(|e| match e {
            Effect::StageReference {
                flow_id, sealed, ..
            } if *flow_id == flow.id => Some(sealed.clone()),
            _ => None,
        });
        let staged = match staged_now {
            Some(sealed) => sealed,
            None => match self.repo.staged_reference_of(flow.id).await {
                Ok(sealed) => sealed,
                Err(StoreError::NotFound) => {
                    // Discarded since the flow was read: another change (a
                    // recovery of the user, say) ended it; this one loses.
                    if self.repo.flow(flow.id).await?.version != before.version {
                        return Err(StoreError::Conflict(Conflict::FlowVersion).into());
                    }
                    return Ok(None);
                }
                Err(other) => return Err(other.into()),
            },
        };
        let token = self
            .key
            .open(&staged, staged_reference_binding(&flow.id))
            .map_err(|e| DomainError::internal(format!("staged biometric reference: {e}")))?;
        Ok(Some(BiometricReference {
            user_id: flow.user_id,
            sealed: self.key.seal(&token, custody::binding(&flow.user_id)),
            created_by_flow: flow.id,
            created_at: now,
        }))
    }

    /// Applies `fact` to `flow` without writing it, adding the records the
    /// transition implies to `effects` and `events`.
    async fn step(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        fact: &Fact,
        now: OffsetDateTime,
        effects: &mut Vec<Effect>,
        events: &mut Vec<NewAuditEvent>,
    ) -> DomainResult<Flow> {
        let next = flow
            .apply(fact, now)
            .map_err(|e| transition_error(flow, e))?;
        let (more_effects, more_events) = self
            .transition_records(ctx, flow, &next, now, effects)
            .await?;
        effects.extend(more_effects);
        events.extend(more_events);
        Ok(next)
    }

    /// Applies `fact`, writing the new version with its records and `extra` effects/events.
    async fn advance(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        fact: &Fact,
        mut effects: Vec<Effect>,
        mut events: Vec<NewAuditEvent>,
    ) -> DomainResult<Flow> {
        let now = self.clock.now();
        let next = self
            .step(ctx, flow, fact, now, &mut effects, &mut events)
            .await?;
        self.write(ctx, flow, next, effects, events).await
    }

    /// Writes `next`, derived from `flow`, with its records. A completion
    /// whose re-checks fail in the writing transaction (the passkey no longer
    /// active, the user enrolled by another registration meanwhile) fails the
    /// flow instead, keeping only the provider event the change recorded (its
    /// de-duplication key and its audit event).
    async fn write(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        next: Flow,
        effects: Vec<Effect>,
        events: Vec<NewAuditEvent>,
    ) -> DomainResult<Flow> {
        let provider_events: Vec<Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::RecordProviderEvent { .. }))
            .cloned()
            .collect();
        let received: Vec<NewAuditEvent> = events
            .iter()
            .filter(|e| e.event_type == AuditEventType::ProviderEventReceived)
            .cloned()
            .collect();
        let completes = next.state == FlowState::Completed;
        let change = Change {
            flow: Some(FlowWrite::Update { flow: next.clone() }),
            effects,
            events,
        };
        let reason = match self.commit_store(change).await {
            Ok(()) => return Ok(next),
            Err(StoreError::Conflict(Conflict::CredentialNotActive)) if completes => {
                FailureReason::CredentialNotActive
            }
            Err(StoreError::Conflict(Conflict::ReferenceExists)) if completes => {
                FailureReason::UserAlreadyEnrolled
            }
            Err(other) => return Err(other.into()),
        };
        // Boxed: the refusal is rare and recursion needs it.
        Box::pin(self.advance(ctx, flow, &Fact::Refused(reason), provider_events, received)).await
    }

    /// The flow, expired first if its time is up (whichever replica is asked).
    async fn load(&self, id: FlowId) -> DomainResult<Flow> {
        let flow = self.repo.flow(id).await.map_err(|e| match e {
            StoreError::NotFound => {
                DomainError::not_found(ErrorCode::FlowNotFound, "no flow with this id")
            }
            other => other.into(),
        })?;
        self.settle(flow).await
    }

    /// A flow just read, expired first if its time is up (whichever replica is asked).
    async fn settle(&self, flow: Flow) -> DomainResult<Flow> {
        if !flow.is_expired_at(self.clock.now()) {
            return Ok(flow);
        }
        // Boxed: the expiry is rare, and its state would otherwise enlarge the
        // future of every operation that reads a flow (which is moved as a whole).
        Box::pin(self.expire(flow)).await
    }

    /// Records that `flow`'s time is up, unless another request changed it first.
    async fn expire(&self, flow: Flow) -> DomainResult<Flow> {
        let system = RequestContext {
            actor: Actor::System,
            correlation_id: None,
        };
        match self
            .advance(&system, &flow, &Fact::Expired, vec![], vec![])
            .await
        {
            Ok(expired) => Ok(expired),
            // Another request expired it (or finished it) first: read the winner.
            Err(e) if e.code == ErrorCode::FlowChanged => Ok(self.repo.flow(flow.id).await?),
            Err(e) => Err(e),
        }
    }

    /// Opens a sealed UTF-8 value; a failure means stored data no longer
    /// matches its key or row, which is an internal error.
    fn open_string(&self, sealed: &[u8], binding: Binding<'_>) -> DomainResult<Zeroizing<String>> {
        let plain = self
            .key
            .open(sealed, binding)
            .map_err(|e| DomainError::internal(format!("{}: {e}", binding.slot)))?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|e| DomainError::internal(format!("{}: {e}", binding.slot)))
    }

    pub async fn view(
        &self,
        flow: Flow,
        handoff_code: Option<Zeroizing<String>>,
    ) -> DomainResult<FlowView> {
        let external_user_id = match self.external_ids.get(flow.user_id) {
            Some(external) => external,
            None => {
                let user = self.repo.user_by_id(flow.user_id).await?;
                self.external_ids.remember(user.id, &user.external_id);
                user.external_id
            }
        };
        let (transaction_context, transaction_context_sha256) =
            match &flow.transaction_context_sealed {
                Some(sealed) => {
                    let plain = self
                        .key
                        .open(sealed, context_binding(&flow.id))
                        .map_err(|e| DomainError::internal(format!("transaction context: {e}")))?;
                    // The sealed bytes are the compact JSON the digest was made of.
                    let sha256 = hex(&Sha256::digest(&plain));
                    let value = serde_json::from_slice(&plain)
                        .map_err(|e| DomainError::internal(e.to_string()))?;
                    (Some(value), Some(sha256))
                }
                None => (None, None),
            };
        let token_visible =
            flow.state == FlowState::AwaitingVerification && flow.device_side_ready();
        let sdk_token = match (&flow.sdk_token_sealed, token_visible) {
            (Some(sealed), true) => Some(self.open_string(sealed, sdk_token_binding(&flow.id))?),
            _ => None,
        };
        Ok(FlowView {
            flow,
            external_user_id,
            transaction_context,
            transaction_context_sha256,
            sdk_token,
            handoff_code,
            provider: self.idv.name(),
            webauthn_options: None,
        })
    }

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.create", skip_all)]
    pub async fn create_flow(
        &self,
        ctx: &RequestContext,
        request: CreateFlow,
    ) -> DomainResult<FlowView> {
        let now = self.clock.now();
        let flow_type = request.flow_type;
        if flow_type != FlowType::StepUp
            && (request.transaction_context.is_some() || request.cross_platform)
        {
            return Err(DomainError::bad_request(
                ErrorCode::TransactionContextNotAllowed,
                "only step_up flows take transaction_context or cross_platform",
            ));
        }
        let context = match request.transaction_context {
            Some(Value::Object(map)) => {
                let value = Value::Object(map);
                let bytes = serde_json::to_vec(&value).unwrap_or_default();
                if bytes.len() > self.policy.max_transaction_context_bytes {
                    return Err(DomainError::new(
                        ErrorKind::PayloadTooLarge,
                        ErrorCode::TransactionContextTooLarge,
                        format!(
                            "transaction_context is {} bytes; the limit is {}",
                            bytes.len(),
                            self.policy.max_transaction_context_bytes
                        ),
                    ));
                }
                Some((value, bytes))
            }
            Some(_) => {
                return Err(DomainError::bad_request(
                    ErrorCode::InvalidRequestBody,
                    "transaction_context must be a JSON object",
                ));
            }
            None => None,
        };

        let mut effects = Vec::new();
        let mut events = Vec::new();
        // One read: the user, their passkeys and reference, and their limits.
        let (user, standing) = match (
            flow_type,
            self.repo
                .flow_prerequisites(&request.external_user_id, now)
                .await,
        ) {
            (_, Ok(standing)) => (standing.user.clone(), Some(standing)),
            (FlowType::Registration, Err(StoreError::NotFound)) => {
                let user = User::new(request.external_user_id.clone(), now);
                effects.push(Effect::CreateUser(user.clone()));
                events.push(self.event(
                    ctx,
                    AuditEventType::UserCreated,
                    Subject::of_user(&user),
                    now,
                ));
                (user, None)
            }
            (_, Err(StoreError::NotFound)) => {
                return Err(DomainError::not_found(
                    ErrorCode::UserNotFound,
                    "no user with this external_user_id",
                ));
            }
            (_, Err(other)) => return Err(other.into()),
        };
        // In `builtin` mode the ceremony's start reads the user's passkeys and
        // answers the same refusal.
        if matches!(flow_type, FlowType::SignIn | FlowType::StepUp)
            && self.relying_party.is_none()
            && !standing.as_ref().is_some_and(|s| s.has_active_credential)
        {
            return Err(DomainError::conflict(
                ErrorCode::NoActiveCredential,
                "the user has no active credential",
            ));
        }
        if flow_type.uses_reference()
            && standing
                .as_ref()
                .is_none_or(|s| s.reference_flow_id.is_none())
        {
            return Err(DomainError::conflict(
                ErrorCode::BiometricReferenceMissing,
                "the user has no stored biometric reference",
            ));
        }
        if flow_type == FlowType::Registration
            && let Some(standing) = &standing
            && (standing.reference_flow_id.is_some() || standing.has_live_credential)
        {
            // A second registration would bring its own reference: an
            // enrolled user enrols a new device by proving who they are
            // against the reference they have (recovery).
            let event = NewAuditEvent {
                outcome: Outcome::Rejected,
                reason: Some("user_already_enrolled".to_owned()),
                details: json!({ "type": flow_type.as_str() }),
                ..self.event(
                    ctx,
                    AuditEventType::FlowRequestRejected,
                    Subject::of_user(&standing.user),
                    now,
                )
            };
            self.repo.append_audit(&event).await?;
            return Err(DomainError::conflict(
                ErrorCode::UserAlreadyEnrolled,
                "the user is enrolled already; enrol a new device with a recovery flow",
            ));
        }

        let id = FlowId(ids::new_id(now));
        let expires_at = now + self.policy.flow_ttl;
        let handoff_code = request
            .cross_platform
            .then(|| Zeroizing::new(URL_SAFE_NO_PAD.encode(ids::random_bytes::<16>())));
        let flow = Flow {
            transaction_context_digest: context.as_ref().map(|(_, bytes)| KeyedDigest {
                key_id: self.key.id().as_str().to_owned(),
                hmac: self.key.digest(CONTEXT_DIGEST_SLOT, bytes),
            }),
            transaction_context_sealed: context
                .as_ref()
                .map(|(_, bytes)| self.key.seal(bytes, context_binding(&id))),
            reference_flow_id: if flow_type.uses_reference() {
                standing.as_ref().and_then(|s| s.reference_flow_id)
            } else {
                None
            },
            cross_platform: request.cross_platform,
            handoff: handoff_code.as_ref().map(|code| Handoff {
                code_sha256: handoff_hash(code),
                expires_at: (now + self.policy.handoff_ttl).min(expires_at),
                claimed_at: None,
            }),
            ..Flow::new(id, user.id, flow_type, now, expires_at)
        };
        let (flow, webauthn_options) = match &self.relying_party {
            Some(rp) => {
                let (ceremony, options) =
                    self.start_ceremony(rp.as_ref(), &user, &flow, now).await?;
                (
                    Flow {
                        ceremony: Some(ceremony),
                        ..flow
                    },
                    Some(options),
                )
            }
            None => (flow, None),
        };
        let digest = flow.transaction_context_digest.as_ref();
        events.push(NewAuditEvent {
            details: json!({
                "type": flow_type.as_str(),
                "cross_platform": flow.cross_platform,
                "transaction_context_hmac": digest.map(|d| &d.hmac),
                "transaction_context_key_id": digest.map(|d| &d.key_id),
            }),
            ..self.event(
                ctx,
                AuditEventType::FlowCreated,
                Subject::of_flow(&flow),
                now,
            )
        });
        // Refused before anything is written; the insertion below checks the
        // limits again, atomically.
        if let Some(standing) = &standing {
            let limit = if standing.open_flows >= self.policy.max_open_flows_per_user {
                Some("open_flows")
            } else if flow_type.needs_identity()
                && standing.idv_runs_last_day >= self.policy.max_idv_runs_per_user_per_day
            {
                Some("idv_runs")
            } else {
                None
            };
            if let Some(what) = limit {
                return Err(StoreError::LimitReached { what: what.into() }.into());
            }
        }
        // The flow is written first, `pending` for an identity flow: its
        // insertion, under the user's lock, reserves one of the user's IDV
        // runs of the day, so that concurrent requests at the limit cannot
        // start more (billed) runs than the limit allows. The run is started
        // only then, and recorded by the flow's next version.
        self.commit(Change {
            flow: Some(FlowWrite::Insert {
                flow: flow.clone(),
                limits: FlowLimits {
                    max_open_flows: self.policy.max_open_flows_per_user,
                    max_idv_runs_per_day: self.policy.max_idv_runs_per_user_per_day,
                    now,
                },
            }),
            effects,
            events,
        })
        .await?;
        self.external_ids.remember(user.id, &user.external_id);
        let flow = if flow_type.needs_identity() {
            self.start_identity_proof(ctx, &user, flow).await?
        } else {
            flow
        };
        let mut view = self.view(flow, handoff_code).await?;
        view.webauthn_options = webauthn_options;
        Ok(view)
    }

    /// Starts the IDV run of a `pending` flow just written and records it.
    /// A provider failure fails the flow (the caller retries with a new
    /// one); a flow changed meanwhile (cancelled, say) is answered as it is.
    async fn start_identity_proof(
        &self,
        ctx: &RequestContext,
        user: &User,
        flow: Flow,
    ) -> DomainResult<Flow> {
        // Bounded: a provider that answers late fails the call within the
        // budget; whatever run it made meanwhile is looked up later.
        let deadline = Instant::now() + RUN_CREATION_BUDGET;
        let started = match self.start_run_for_applicant(user, &flow, deadline).await {
            Ok(started) => started,
            Err(err) => {
                // The database failed between the flow's two writes: try to
                // end the flow rather than leave it holding the user's slots.
                let _ = self
                    .advance(ctx, &flow, &Fact::RunNotStarted, vec![], vec![])
                    .await;
                return Err(err);
            }
        };
        let now = self.clock.now();
        let err = match started {
            Ok(run) => {
                let mut effects = Vec::new();
                let mut events = Vec::new();
                let next = self
                    .run_started(ctx, &flow, run, now, &mut effects, &mut events)
                    .await?;
                return match self.write(ctx, &flow, next, effects, events).await {
                    Err(e) if e.code == ErrorCode::FlowChanged => self.load(flow.id).await,
                    other => other,
                };
            }
            Err(err) => err,
        };
        // The provider may hold a run the flow does not know of: the
        // reconciler looks for it, so that it is not left behind unaccounted.
        let lookup = match &err {
            IdvError::Unsettled(_) => vec![Effect::SetRunLookup {
                flow_id: flow.id,
                pending: true,
            }],
            _ => vec![],
        };
        let detail = match self
            .advance(ctx, &flow, &Fact::RunNotStarted, lookup, vec![])
            .await
        {
            Ok(_) => err.to_string(),
            Err(write) => format!("{err}; recording the failed flow also failed: {write}"),
        };
        Err(DomainError::unavailable(
            ErrorCode::IdvUnavailable,
            "the identity-verification provider is unavailable; retry with a new flow",
            detail,
        ))
    }

    /// Starts the flow's run for the user's applicant (the inner result is
    /// the provider's answer). When the provider refuses the run and reports
    /// the applicant gone (deleted, or scheduled for deletion), a new
    /// applicant takes its place and the run is asked for once more.
    async fn start_run_for_applicant(
        &self,
        user: &User,
        flow: &Flow,
        deadline: Instant,
    ) -> DomainResult<Result<StartedRun, IdvError>> {
        let applicant = match self.applicant_of(user, deadline).await? {
            Ok(applicant) => applicant,
            Err(err) => return Ok(Err(err)),
        };
        let refused = match self.start_run(user, &applicant, flow, deadline).await {
            Err(err @ IdvError::Refused(_)) => err,
            other => return Ok(other),
        };
        if self.idv.applicant_state(&applicant).await != Ok(ApplicantState::Gone) {
            return Ok(Err(refused));
        }
        let replacement = match self
            .replace_applicant(user.id, &applicant, deadline)
            .await?
        {
            Ok(replacement) => replacement,
            Err(err) => return Ok(Err(err)),
        };
        Ok(self.start_run(user, &replacement, flow, deadline).await)
    }

    /// A new applicant in place of `gone`, recorded before any run uses it;
    /// or the one another flow of the user recorded meanwhile. The one gone
    /// is then deleted at the provider (best effort: it is deleted or
    /// scheduled for deletion already), so the user keeps one applicant there.
    async fn replace_applicant(
        &self,
        user_id: UserId,
        gone: &str,
        deadline: Instant,
    ) -> DomainResult<Result<String, IdvError>> {
        let user = self.repo.user_by_id(user_id).await?;
        let Some(current_sealed) = user.idv_applicant_sealed.clone() else {
            return self.applicant_of(&user, deadline).await;
        };
        let current = self
            .open_string(&current_sealed, applicant_binding(&user.id))?
            .to_string();
        if current != gone {
            // Replaced by another flow of the user already.
            return Ok(Ok(current));
        }
        let created = match self.idv.create_applicant(&user.pseudonym, deadline).await {
            Ok(created) => created,
            Err(err) => return Ok(Err(err)),
        };
        let sealed = self
            .key
            .seal(created.as_bytes(), applicant_binding(&user.id));
        if !self
            .repo
            .replace_applicant(user.id, &current_sealed, &sealed)
            .await?
        {
            // Another flow replaced it first: use theirs, drop ours.
            let _ = self.idv.delete_applicant(&created).await;
            let user = self.repo.user_by_id(user.id).await?;
            return self.applicant_of(&user, deadline).await;
        }
        let _ = self.idv.delete_applicant(gone).await;
        Ok(Ok(created))
    }

    /// The user's provider-side applicant, created and stored first when the
    /// user has none (the inner result is the provider's answer). Stored
    /// before any run uses it, so that it is deleted with the user whatever
    /// becomes of the run.
    async fn applicant_of(
        &self,
        user: &User,
        deadline: Instant,
    ) -> DomainResult<Result<String, IdvError>> {
        if let Some(sealed) = &user.idv_applicant_sealed {
            return Ok(Ok(self
                .open_string(sealed, applicant_binding(&user.id))?
                .to_string()));
        }
        let created = match self.idv.create_applicant(&user.pseudonym, deadline).await {
            Ok(created) => created,
            Err(err) => return Ok(Err(err)),
        };
        let sealed = self
            .key
            .seal(created.as_bytes(), applicant_binding(&user.id));
        if self.repo.set_applicant_if_absent(user.id, &sealed).await? {
            return Ok(Ok(created));
        }
        // Another flow of the user stored one first: use theirs, drop ours.
        let _ = self.idv.delete_applicant(&created).await;
        let user = self.repo.user_by_id(user.id).await?;
        match &user.idv_applicant_sealed {
            Some(sealed) => Ok(Ok(self
                .open_string(sealed, applicant_binding(&user.id))?
                .to_string())),
            None => Err(DomainError::internal(
                "the user's applicant was stored but reads back empty",
            )),
        }
    }

    /// `builtin` mode: the flow's WebAuthn ceremony. Registration and recovery
    /// exclude the user's passkeys that are not revoked; sign-in and step-up
    /// allow their active passkeys registered in this mode.
    ///
    /// Revoked passkeys are not excluded: an authenticator that still holds
    /// one (a phone found again, a passkey revoked as a precaution) may then
    /// enrol anew instead of refusing as "already registered", and the list
    /// stays as short as the user's live passkeys however long their history.
    /// A revoked credential itself can never be registered again: credential
    /// ids are unique in the store.
    async fn start_ceremony(
        &self,
        rp: &dyn RelyingParty,
        user: &User,
        flow: &Flow,
        now: OffsetDateTime,
    ) -> DomainResult<(Ceremony, Value)> {
        let credentials = self.repo.live_credentials_of(user.id).await?;
        let start = if flow.flow_type.creates_credential() {
            let exclude: Vec<String> = credentials
                .iter()
                .map(|c| c.webauthn_id.as_str().to_owned())
                .collect();
            let name = user.external_id.as_str();
            rp.start_registration(
                PasskeyUser {
                    handle: user.id.0,
                    name,
                    display_name: name,
                },
                &exclude,
            )
        } else {
            let allow: Vec<StoredPasskey> = credentials
                .iter()
                .filter(|c| c.status == CredentialStatus::Active)
                .filter_map(|c| {
                    c.passkey.as_ref().map(|p| StoredPasskey {
                        webauthn_id: c.webauthn_id.as_str().to_owned(),
                        data: p.data.clone(),
                    })
                })
                .collect();
            if allow.is_empty() {
                return Err(DomainError::conflict(
                    ErrorCode::NoActiveCredential,
                    "the user has no active passkey registered by the built-in relying party",
                ));
            }
            rp.start_authentication(&allow)
        }
        .map_err(|e| DomainError::internal(format!("starting the WebAuthn ceremony: {e}")))?;
        let ceremony = Ceremony {
            state_sealed: self.key.seal(&start.state, ceremony_binding(&flow.id)),
            expires_at: (now + self.policy.ceremony_ttl).min(flow.expires_at),
        };
        Ok((ceremony, start.options))
    }

    /// The proof in the form the possession rules take: as given in `external`
    /// mode; verified by the relying party, from the flow's single-use
    /// ceremony, in `builtin` mode. A refusal is audited and changes nothing.
    async fn verified_proof(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        proof: PossessionProof,
        now: OffsetDateTime,
    ) -> DomainResult<(PossessionProof, Option<RegisteredPasskey>)> {
        let (rp, response, platform, device_label) = match (&self.relying_party, proof) {
            (None, PossessionProof::WebAuthn { .. }) => {
                return Err(DomainError::conflict(
                    ErrorCode::PossessionModeMismatch,
                    "this deployment takes the facts your relying party verified (external mode), \
                     not an authenticator response",
                ));
            }
            (Some(_), PossessionProof::WebAuthn { .. }) if flow.ceremony.is_none() => {
                return Err(transition_error(flow, TransitionError::NotExpected));
            }
            (
                Some(rp),
                PossessionProof::WebAuthn {
                    response,
                    platform,
                    device_label,
                },
            ) => (rp, response, platform, device_label),
            (Some(_), _) => {
                return Err(DomainError::conflict(
                    ErrorCode::PossessionModeMismatch,
                    "this deployment verifies passkeys itself (builtin mode): send the \
                     authenticator's response as `webauthn`",
                ));
            }
            (None, proof) => return Ok((proof, None)),
        };
        let Some(ceremony) = &flow.ceremony else {
            return Err(transition_error(flow, TransitionError::NotExpected));
        };
        if now >= ceremony.expires_at {
            let err = DomainError::conflict(
                ErrorCode::WebauthnCeremonyExpired,
                "the WebAuthn challenge has expired; start a new flow",
            );
            return Err(self
                .reject(ctx, flow, err, "webauthn_ceremony_expired")
                .await);
        }
        let state = self
            .key
            .open(&ceremony.state_sealed, ceremony_binding(&flow.id))
            .map_err(|e| DomainError::internal(format!("WebAuthn ceremony: {e}")))?;
        if flow.flow_type.creates_credential() {
            match rp.finish_registration(&state, &response).await {
                Ok(v) => Ok((
                    PossessionProof::NewCredential {
                        webauthn_id: v.webauthn_id,
                        public_key: Some(v.public_key),
                        aaguid: v.aaguid,
                        sign_count: v.sign_count,
                        transports: v.transports,
                        backup_eligible: v.backup_eligible,
                        backup_state: v.backup_state,
                        platform,
                        device_label,
                    },
                    Some(RegisteredPasskey {
                        user_verified: v.user_verified,
                        attestation_format: v.attestation_format,
                        attestation_verified: v.attestation_verified,
                        data: v.data,
                    }),
                )),
                Err(e) => Err(self.refuse_ceremony(ctx, flow, e).await),
            }
        } else {
            match rp.finish_authentication(&state, &response).await {
                Ok(v) => Ok((
                    PossessionProof::Assertion {
                        webauthn_id: v.webauthn_id,
                        sign_count: v.sign_count,
                        backup_eligible: Some(v.backup_eligible),
                        backup_state: Some(v.backup_state),
                    },
                    None,
                )),
                Err(e) => Err(self.refuse_ceremony(ctx, flow, e).await),
            }
        }
    }

    /// A security event about a credential (`reason` = its type's last part).
    /// With `refusal`, the event is recorded alone (outcome `rejected`) and the
    /// refusal returned; without, it is returned (outcome `success`: let
    /// through by the policy) to be written with the change it accompanies.
    #[allow(clippy::too_many_arguments)]
    async fn security_event(
        &self,
        ctx: &RequestContext,
        event_type: AuditEventType,
        subject: &Subject,
        details: Value,
        refusal: Option<DomainError>,
        now: OffsetDateTime,
    ) -> DomainResult<NewAuditEvent> {
        let reason = event_type
            .as_str()
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let event = NewAuditEvent {
            outcome: if refusal.is_some() {
                Outcome::Rejected
            } else {
                Outcome::Success
            },
            reason: Some(reason),
            details,
            ..self.event(ctx, event_type, subject.clone(), now)
        };
        match refusal {
            Some(err) => {
                self.repo.append_audit(&event).await?;
                Err(err)
            }
            None => Ok(event),
        }
    }

    async fn refuse_ceremony(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        error: CeremonyError,
    ) -> DomainError {
        // A compromised model is named on the record, for the operator's follow-up.
        let details = match &error {
            CeremonyError::AuthenticatorCompromised { aaguid, status } => {
                json!({ "aaguid": aaguid, "status": status })
            }
            _ => json!({}),
        };
        let err = ceremony_refusal(error);
        if err.kind == ErrorKind::Internal {
            return err;
        }
        let reason = err.code.as_str();
        self.reject_with(ctx, flow, err, reason, details).await
    }

    /// Asks the provider for the flow's run; nothing is written here.
    async fn start_run(
        &self,
        user: &User,
        applicant_id: &str,
        flow: &Flow,
        deadline: Instant,
    ) -> Result<StartedRun, IdvError> {
        self.idv
            .start_run(run_request(user, applicant_id, flow, deadline))
            .await
    }

    /// `flow` with its run started (and decided, for a workflow without
    /// interactive steps), adding what to write with it.
    async fn run_started(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        run: StartedRun,
        now: OffsetDateTime,
        effects: &mut Vec<Effect>,
        events: &mut Vec<NewAuditEvent>,
    ) -> DomainResult<Flow> {
        let fact = Fact::RunStarted {
            run_id: run.run_id.clone(),
            sdk_token_sealed: run
                .sdk_token
                .as_ref()
                .map(|token| self.key.seal(token.as_bytes(), sdk_token_binding(&flow.id))),
        };
        let mut next = self.step(ctx, flow, &fact, now, effects, events).await?;
        if let RunStatus::Done(outcome) = run.status {
            next = self
                .step(ctx, &next, &Fact::Identity(outcome), now, effects, events)
                .await?;
            // Both steps are written at once: one new version over `flow`'s.
            next.version = flow.version + 1;
        }
        Ok(next)
    }

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.read", skip_all)]
    pub async fn get_flow(&self, id: FlowId) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        self.view(flow, None).await
    }

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.cancel", skip_all)]
    pub async fn cancel(&self, ctx: &RequestContext, id: FlowId) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        let flow = self
            .advance(ctx, &flow, &Fact::Cancelled, vec![], vec![])
            .await?;
        self.view(flow, None).await
    }

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.possession", skip_all)]
    pub async fn submit_possession(
        &self,
        ctx: &RequestContext,
        id: FlowId,
        proof: PossessionProof,
    ) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        if flow.state.is_terminal() {
            return Err(transition_error(&flow, TransitionError::Terminal));
        }
        let now = self.clock.now();
        let (proof, passkey) = self.verified_proof(ctx, &flow, proof, now).await?;
        let builtin = self.relying_party.is_some();
        let (fact, effects, events, flow) = match (flow.flow_type.creates_credential(), proof) {
            (
                true,
                PossessionProof::NewCredential {
                    webauthn_id,
                    public_key,
                    aaguid,
                    sign_count,
                    transports,
                    backup_eligible,
                    backup_state,
                    platform,
                    device_label,
                },
            ) => {
                let parsed = WebAuthnId::parse(&webauthn_id).map_err(|e| {
                    DomainError::bad_request(
                        ErrorCode::InvalidCredential,
                        format!("credential.id {e}"),
                    )
                })?;
                match self.repo.credential_by_webauthn_id(parsed.as_str()).await {
                    Ok(_) => {
                        let err = DomainError::conflict(
                            ErrorCode::CredentialAlreadyRegistered,
                            "a credential with this WebAuthn id is registered already",
                        );
                        return Err(self
                            .reject(ctx, &flow, err, "credential_already_registered")
                            .await);
                    }
                    Err(StoreError::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
                let new_id = ids::new_id(now);
                let mut events = Vec::new();
                if backup_eligible {
                    match self.policy.backup_policy {
                        BackupPolicy::Reject => {
                            let err = DomainError::conflict(
                                ErrorCode::BackupEligibleNotAllowed,
                                "this passkey can be backed up (synced); only device-bound \
                                 passkeys are accepted",
                            );
                            return Err(self.reject(ctx, &flow, err, "backup_eligible").await);
                        }
                        BackupPolicy::Warn => events.push(NewAuditEvent {
                            details: json!({ "backup_state": backup_state, "policy": "warn" }),
                            ..self.event(
                                ctx,
                                AuditEventType::CredentialBackupEligible,
                                Subject {
                                    credential_id: Some(new_id),
                                    ..Subject::of_flow(&flow)
                                },
                                now,
                            )
                        }),
                        BackupPolicy::Allow => {}
                    }
                }
                let mut with_pending = flow.clone();
                with_pending.pending_credential = Some(NewCredential {
                    id: new_id,
                    webauthn_id: parsed.as_str().to_owned(),
                    public_key,
                    aaguid,
                    sign_count,
                    transports,
                    backup_eligible,
                    backup_state,
                    platform,
                    device_label,
                    passkey,
                });
                let subject = Subject {
                    credential_id: Some(new_id),
                    ..Subject::of_flow(&flow)
                };
                events.push(self.event(ctx, AuditEventType::FlowPossessionVerified, subject, now));
                (
                    Fact::Possession {
                        credential_id: new_id,
                    },
                    vec![],
                    events,
                    with_pending,
                )
            }
            (
                false,
                PossessionProof::Assertion {
                    webauthn_id,
                    sign_count,
                    backup_eligible,
                    backup_state,
                },
            ) => {
                let credential = match self.repo.credential_by_webauthn_id(&webauthn_id).await {
                    Ok(c) if c.user_id == flow.user_id => c,
                    Ok(_) | Err(StoreError::NotFound) => {
                        // Another user's credential is answered like an unknown one.
                        let err = DomainError::not_found(
                            ErrorCode::CredentialNotFound,
                            "no such credential for this user",
                        );
                        return Err(self
                            .reject(ctx, &flow, err, "credential_unknown_or_of_another_user")
                            .await);
                    }
                    Err(other) => return Err(other.into()),
                };
                if credential.status != CredentialStatus::Active {
                    let err = DomainError::conflict(
                        ErrorCode::CredentialNotActive,
                        "the credential is suspended or revoked",
                    );
                    let reason = format!("credential_{}", credential.status.as_str());
                    return Err(self.reject(ctx, &flow, err, &reason).await);
                }
                let subject = Subject {
                    credential_id: Some(credential.id),
                    ..Subject::of_flow(&flow)
                };
                let mut security_events = Vec::new();
                if !counter_is_valid(credential.sign_count, sign_count) {
                    let enforce = self.policy.counter_policy == CounterPolicy::Enforce;
                    security_events.push(
                        self.security_event(
                            ctx,
                            AuditEventType::CredentialCounterRegression,
                            &subject,
                            json!({
                                "stored": credential.sign_count,
                                "reported": sign_count,
                                "policy": self.policy.counter_policy.as_str(),
                            }),
                            enforce.then(|| {
                                DomainError::conflict(
                                    ErrorCode::CounterRegression,
                                    "the signature counter did not grow; the authenticator may be cloned",
                                )
                            }),
                            now,
                        )
                        .await?,
                    );
                }
                if let Some(reported) = backup_eligible
                    && reported != credential.backup_eligible
                {
                    let reject = self.policy.backup_policy == BackupPolicy::Reject;
                    security_events.push(
                        self.security_event(
                            ctx,
                            AuditEventType::CredentialBackupEligibilityChanged,
                            &subject,
                            json!({
                                "registered": credential.backup_eligible,
                                "reported": reported,
                                "policy": self.policy.backup_policy.as_str(),
                            }),
                            reject.then(|| {
                                DomainError::conflict(
                                    ErrorCode::BackupEligibilityChanged,
                                    "the credential's backup eligibility changed since it was registered",
                                )
                            }),
                            now,
                        )
                        .await?,
                    );
                }
                let backup_state = backup_state.unwrap_or(credential.backup_state);
                let effects = vec![if counter_is_valid(credential.sign_count, sign_count) {
                    Effect::UseCredential {
                        id: credential.id,
                        sign_count,
                        backup_state,
                        at: now,
                    }
                } else {
                    // Let through under `warn`: the stored counter is kept.
                    Effect::UseCredentialKeepingCounter {
                        id: credential.id,
                        backup_state,
                        at: now,
                    }
                }];
                let mut events = security_events;
                events.push(self.event(
                    ctx,
                    AuditEventType::FlowPossessionVerified,
                    subject.clone(),
                    now,
                ));
                events.push(self.event(ctx, AuditEventType::CredentialUsed, subject, now));
                (
                    Fact::Possession {
                        credential_id: credential.id,
                    },
                    effects,
                    events,
                    flow,
                )
            }
            (creates, _) => {
                let expected = if creates {
                    "a new credential"
                } else {
                    "an assertion"
                };
                return Err(DomainError::bad_request(
                    ErrorCode::InvalidCredential,
                    format!("a {} flow takes {expected}", flow.flow_type),
                ));
            }
        };
        // `flow` may carry the pending credential; its version is unchanged.
        // In `builtin` mode the ceremony is consumed by the same conditional write.
        let flow = if builtin {
            Flow {
                ceremony: None,
                ..flow
            }
        } else {
            flow
        };
        let flow = self.advance(ctx, &flow, &fact, effects, events).await?;
        self.view(flow, None).await
    }

    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.claim_handoff",
        skip_all
    )]
    pub async fn claim_handoff(
        &self,
        ctx: &RequestContext,
        code: &str,
        external_user_id: &ExternalUserId,
    ) -> DomainResult<FlowView> {
        let invalid = || {
            DomainError::not_found(
                ErrorCode::HandoffInvalid,
                "the hand-off code is unknown, expired or used",
            )
        };
        let flow = match self.repo.flow_by_handoff(&handoff_hash(code)).await {
            Ok(flow) => flow,
            Err(StoreError::NotFound) => {
                // Counted, not audited one by one: guesses must not grow the
                // trail. Only the request that ends a window writes (its
                // counts), so only it can meet a store error.
                self.note_refusal(TallyKind::ClaimRefused, "handoff_unknown", &ctx.actor)
                    .await?;
                return Err(invalid());
            }
            Err(other) => return Err(other.into()),
        };
        let flow = self.settle(flow).await?;
        let user = self.repo.user_by_id(flow.user_id).await?;
        let now = self.clock.now();
        let reason = match &flow.handoff {
            _ if user.external_id != *external_user_id => Some("handoff_other_user"),
            Some(h) if h.claimed_at.is_some() => Some("handoff_already_claimed"),
            Some(h) if now >= h.expires_at => Some("handoff_expired"),
            _ if flow.state.is_terminal() => Some("handoff_flow_ended"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(self.reject(ctx, &flow, invalid(), reason).await);
        }
        let event = self.event(
            ctx,
            AuditEventType::FlowHandoffClaimed,
            Subject::of_flow(&flow),
            now,
        );
        let flow = match self
            .advance(ctx, &flow, &Fact::HandoffClaimed, vec![], vec![event])
            .await
        {
            Ok(flow) => flow,
            // Double consumption: the other claim won.
            Err(e) if e.code == ErrorCode::FlowChanged || e.code == ErrorCode::ProofNotExpected => {
                return Err(self
                    .reject(ctx, &flow, invalid(), "handoff_already_claimed")
                    .await);
            }
            Err(e) => return Err(e),
        };
        self.view(flow, None).await
    }

    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.store_reference",
        skip_all
    )]
    pub async fn store_reference(
        &self,
        ctx: &RequestContext,
        id: FlowId,
        token: &[u8],
    ) -> DomainResult<FlowView> {
        if token.is_empty() || token.len() > MAX_REFERENCE_BYTES {
            return Err(DomainError::bad_request(
                ErrorCode::InvalidRequestBody,
                format!("the biometric reference must be 1 to {MAX_REFERENCE_BYTES} bytes"),
            ));
        }
        let flow = self.load(id).await?;
        if !flow.flow_type.creates_credential() {
            return Err(transition_error(&flow, TransitionError::NotExpected));
        }
        let now = self.clock.now();
        // Staged on the flow: the user's reference changes only when the
        // flow completes with its identity proof.
        let staged = Effect::StageReference {
            flow_id: flow.id,
            sealed: self.key.seal(token, staged_reference_binding(&flow.id)),
            at: now,
        };
        let event = NewAuditEvent {
            details: json!({ "bytes": token.len(), "key_id": self.key.id().as_str() }),
            ..self.event(
                ctx,
                AuditEventType::BiometricReferenceStaged,
                Subject::of_flow(&flow),
                now,
            )
        };
        let flow = self
            .advance(
                ctx,
                &flow,
                &Fact::ReferenceStored,
                vec![staged],
                vec![event],
            )
            .await?;
        self.view(flow, None).await
    }

    /// Releases the user's reference to a step-up or recovery flow of the same
    /// user that awaits verification, only if it is the reference the user had
    /// when the flow was created (never one staged by a flow); audited.
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.release_reference",
        skip_all
    )]
    pub async fn release_reference(
        &self,
        ctx: &RequestContext,
        id: FlowId,
    ) -> DomainResult<Zeroizing<Vec<u8>>> {
        let flow = self.load(id).await?;
        if !flow.flow_type.uses_reference()
            || flow.state != FlowState::AwaitingVerification
            || !flow.device_side_ready()
        {
            let err = DomainError::conflict(
                ErrorCode::BiometricReferenceNotReleasable,
                "the reference is released only to a step-up or recovery flow awaiting verification",
            );
            return Err(self
                .reject(ctx, &flow, err, "reference_not_releasable")
                .await);
        }
        let reference = self
            .repo
            .reference_of(flow.user_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => DomainError::conflict(
                    ErrorCode::BiometricReferenceMissing,
                    "no stored biometric reference",
                ),
                other => other.into(),
            })?;
        if flow.reference_flow_id != Some(reference.created_by_flow) {
            let err = DomainError::conflict(
                ErrorCode::BiometricReferenceNotReleasable,
                "the user's biometric reference changed after this flow was created; start a new flow",
            );
            return Err(self.reject(ctx, &flow, err, "reference_changed").await);
        }
        let token = self
            .key
            .open(&reference.sealed, custody::binding(&flow.user_id))
            .map_err(|e| DomainError::internal(format!("biometric reference: {e}")))?;
        let event = self.event(
            ctx,
            AuditEventType::BiometricReferenceReleased,
            Subject::of_flow(&flow),
            self.clock.now(),
        );
        self.repo.append_audit(&event).await?;
        Ok(token)
    }

    /// A provider event about `run_id` claiming `claimed_status` (when the
    /// event says): re-reads the run's authoritative status and moves its flow.
    ///
    /// An event is recorded (and later copies are duplicates) only once the
    /// status it announces has been read and acted on: when the provider's read
    /// still lags behind its webhook, nothing is recorded, so the provider's
    /// retry, or the reconciler, applies it later.
    ///
    /// `signed_with` says which webhook secret verified a signed delivery.
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "flow.provider_event",
        skip_all
    )]
    pub async fn ingest_run_event(
        &self,
        ctx: &RequestContext,
        run_id: &str,
        claimed_status: Option<&str>,
        signed_with: Option<SignedWith>,
    ) -> DomainResult<EventOutcome> {
        let provider = self.idv.name();
        if let Some(status) = claimed_status
            && self
                .repo
                .provider_event_seen(&provider_event_key(provider, run_id, status))
                .await?
        {
            return Ok(EventOutcome::Duplicate);
        }
        let now = self.clock.now();
        let flow = match self.repo.flow_by_run(run_id).await {
            Ok(flow) => self.settle(flow).await?,
            Err(StoreError::NotFound) => {
                let event = NewAuditEvent {
                    outcome: Outcome::Rejected,
                    reason: Some("unknown_run".into()),
                    details: provider_event_details(provider, None, signed_with),
                    ..self.event(
                        ctx,
                        AuditEventType::ProviderEventReceived,
                        Subject::default(),
                        now,
                    )
                };
                // Not recorded as seen: the run may belong to a flow whose
                // run is being recorded right now, whose own event (from a
                // redelivery or the reconciler) must then still apply.
                self.repo.append_audit(&event).await?;
                return Ok(EventOutcome::UnknownRun);
            }
            Err(other) => return Err(other.into()),
        };
        // Bounded: the provider counts a delivery not answered in time as
        // failed. What is not read in time is answered 503 (nothing recorded),
        // and the provider's retry or the reconciler applies it.
        let status = self
            .idv
            .read_run_within(run_id, crate::idv::WEBHOOK_READ_BUDGET)
            .await
            .map_err(|e| match e {
                IdvError::UnknownRun => DomainError::not_found(
                    ErrorCode::UnknownRun,
                    "the provider does not know this run",
                ),
                other => DomainError::unavailable(
                    ErrorCode::IdvUnavailable,
                    "the identity-verification provider is unavailable; retry later",
                    other.to_string(),
                ),
            })?;
        self.apply_run_status(ctx, &flow, run_id, &status, true, signed_with)
            .await
    }

    /// Moves `flow` by its run's authoritative `status`, recording the event.
    async fn apply_run_status(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        run_id: &str,
        status: &RunStatus,
        audit_open: bool,
        signed_with: Option<SignedWith>,
    ) -> DomainResult<EventOutcome> {
        let provider = self.idv.name();
        let now = self.clock.now();
        let received = NewAuditEvent {
            details: provider_event_details(provider, Some(&status_name(status)), signed_with),
            ..self.event(
                ctx,
                AuditEventType::ProviderEventReceived,
                Subject::of_flow(flow),
                now,
            )
        };
        let RunStatus::Done(outcome) = status else {
            if audit_open {
                self.repo.append_audit(&received).await?;
            }
            return Ok(EventOutcome::NoChange);
        };
        let record = Effect::RecordProviderEvent {
            dedupe_key: provider_event_key(provider, run_id, &status_name(status)),
            run_id: run_id.to_owned(),
            at: now,
        };
        let fact = Fact::Identity(*outcome);
        let result = if flow.apply(&fact, now).is_ok() {
            self.advance(ctx, flow, &fact, vec![record], vec![received])
                .await
                .map(|_| EventOutcome::Applied)
        } else {
            self.commit(Change {
                flow: None,
                effects: vec![record],
                events: vec![received],
            })
            .await
            .map(|()| EventOutcome::NoChange)
        };
        match result {
            Err(e) if e.code == ErrorCode::Conflict || e.code == ErrorCode::FlowChanged => {
                Ok(EventOutcome::Duplicate)
            }
            other => other,
        }
    }

    /// Re-reads, at most `limit` at a time, the runs of flows still waiting on
    /// the provider longer than the policy's `reconcile_after` (oldest check
    /// first): a webhook that never arrived still moves its flow. Stops at the
    /// first provider failure; the next pass continues.
    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.reconcile", skip_all)]
    pub async fn reconcile(&self, limit: u32) -> DomainResult<ReconcileReport> {
        let now = self.clock.now();
        let ctx = RequestContext {
            actor: Actor::System,
            correlation_id: None,
        };
        let mut report = ReconcileReport::default();
        for flow in self
            .repo
            .flows_awaiting_provider(now - self.policy.reconcile_after, now, limit)
            .await?
        {
            let Some(run_id) = flow.idv_run_id.clone() else {
                continue;
            };
            match self.idv.read_run(&run_id).await {
                Ok(status) => {
                    report.checked += 1;
                    if self
                        .apply_run_status(&ctx, &flow, &run_id, &status, false, None)
                        .await?
                        == EventOutcome::Applied
                    {
                        report.applied += 1;
                    }
                }
                Err(IdvError::UnknownRun) => report.checked += 1,
                Err(other) => {
                    return Err(DomainError::unavailable(
                        ErrorCode::IdvUnavailable,
                        "the identity-verification provider is unavailable",
                        other.to_string(),
                    ));
                }
            }
            self.repo.mark_provider_checked(flow.id, now).await?;
        }
        for flow in self
            .repo
            .flows_awaiting_run_lookup(now - self.policy.reconcile_after, limit)
            .await?
        {
            report.looked_up += 1;
            if self.look_up_run(&ctx, flow, now).await? {
                report.found += 1;
            }
        }
        Ok(report)
    }

    /// Looks for the run the provider may have made for `flow`, whose run
    /// creation failed ambiguously, and records it with the flow (which stays
    /// failed) when found: every run the provider holds is then accounted
    /// for by a flow. Whether a run was found.
    async fn look_up_run(
        &self,
        ctx: &RequestContext,
        flow: Flow,
        now: OffsetDateTime,
    ) -> DomainResult<bool> {
        let done = Effect::SetRunLookup {
            flow_id: flow.id,
            pending: false,
        };
        let user = self.repo.user_by_id(flow.user_id).await?;
        let found = match &user.idv_applicant_sealed {
            Some(sealed) => {
                let applicant = self
                    .open_string(sealed, applicant_binding(&user.id))?
                    .to_string();
                self.idv
                    .find_run(run_request(
                        &user,
                        &applicant,
                        &flow,
                        Instant::now() + RUN_LOOKUP_BUDGET,
                    ))
                    .await
                    .map_err(|e| {
                        DomainError::unavailable(
                            ErrorCode::IdvUnavailable,
                            "the identity-verification provider is unavailable",
                            e.to_string(),
                        )
                    })?
            }
            // No applicant was recorded: no run can have been made.
            None => None,
        };
        let Some(run) = found else {
            self.commit(Change {
                flow: None,
                effects: vec![done],
                events: vec![],
            })
            .await?;
            return Ok(false);
        };
        let next = flow
            .with_run_found_late(&run.run_id, now)
            .map_err(|e| transition_error(&flow, e))?;
        let mut event = self.event(
            ctx,
            AuditEventType::FlowIdvRunFound,
            Subject::of_flow(&next),
            now,
        );
        event.details = serde_json::json!({ "run_id": run.run_id });
        self.write(ctx, &flow, next, vec![done], vec![event])
            .await?;
        Ok(true)
    }

    /// Counts a request refused or not acted on without a flow to attach it
    /// to: a webhook delivery (refused, stale, or of an event type the
    /// backend ignores) or a hand-off claim with an unknown code; `reason`
    /// says why, or names the ignored event type. Counts are audited per
    /// window, kind, reason and actor (see [`crate::tally`]), never a row per
    /// request. When the counts of an ended window cannot be written, they
    /// are lost (the error says so); the request's answer does not depend on
    /// it.
    pub async fn note_refusal(
        &self,
        kind: TallyKind,
        reason: &str,
        actor: &Actor,
    ) -> DomainResult<()> {
        let ended = self.tally.note(kind, reason, actor, self.clock.now());
        self.write_tallies(ended).await.map(drop)
    }

    /// Writes the counts of refusals whose window has ended (all of them
    /// when `all`, as a runtime stops); the counts written.
    pub async fn flush_refusal_tally(&self, all: bool) -> DomainResult<Vec<Tallied>> {
        let ended = self.tally.take_ended(self.clock.now(), all);
        self.write_tallies(ended).await
    }

    async fn write_tallies(&self, tallies: Vec<Tallied>) -> DomainResult<Vec<Tallied>> {
        let now = self.clock.now();
        let provider = self.idv.name();
        let rfc3339 = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        for tally in &tallies {
            let (event_type, outcome) = match tally.kind {
                TallyKind::Rejected => (AuditEventType::WebhookRejected, Outcome::Rejected),
                TallyKind::Ignored => (AuditEventType::WebhookIgnored, Outcome::Success),
                TallyKind::ClaimRefused => (AuditEventType::FlowRequestRejected, Outcome::Rejected),
            };
            let mut details = json!({
                "count": tally.count,
                "first_at": rfc3339(tally.first_at),
                "last_at": rfc3339(tally.last_at),
                "window_seconds": crate::tally::TALLY_WINDOW.whole_seconds(),
            });
            match tally.kind {
                TallyKind::Rejected | TallyKind::Ignored => details["provider"] = json!(provider),
                TallyKind::ClaimRefused => {
                    let code = if tally.reason == "handoff_limited" {
                        ErrorCode::TooManyRefusedRequests
                    } else {
                        ErrorCode::HandoffInvalid
                    };
                    details["code"] = json!(code.as_str());
                }
            }
            let event = NewAuditEvent {
                outcome,
                reason: Some(tally.reason.clone()),
                details,
                ..NewAuditEvent::new(event_type, tally.actor.clone(), Subject::default(), now)
            };
            self.repo.append_audit(&event).await?;
        }
        Ok(tallies)
    }

    pub async fn user_view(&self, external_id: &ExternalUserId) -> DomainResult<UserView> {
        crate::operations::user_overview(&*self.repo, external_id).await
    }

    /// Deletes a user at once; the provider forgets them through the cleanup
    /// queue (see [`FlowService::process_provider_cleanups`]).
    #[tracing::instrument(target = "biometric_passkey::span", name = "user.delete", skip_all)]
    pub async fn delete_user(
        &self,
        ctx: &RequestContext,
        external_id: &ExternalUserId,
    ) -> DomainResult<()> {
        self.external_ids.forget(external_id);
        crate::operations::delete_user(&*self.repo, &*self.clock, ctx, external_id).await
    }

    /// Removes the biometric references staged by flows that ended, or are
    /// past their expiry, without completing (a flow nobody touches again is
    /// never expired explicitly); how many.
    pub async fn discard_stale_staged_references(&self) -> DomainResult<u64> {
        Ok(self
            .repo
            .discard_stale_staged_references(self.clock.now())
            .await?)
    }

    /// The provider clean-up queue counted by state.
    pub async fn provider_cleanup_counts(
        &self,
    ) -> DomainResult<crate::store::ProviderCleanupCounts> {
        Ok(self.repo.provider_cleanup_counts().await?)
    }

    /// Has the provider forget deleted users (biometric tokens, applicant), at
    /// most `limit` of those due, earliest first. A failed attempt (the
    /// provider refusing or unreachable, or a stored applicant id that cannot
    /// be opened) does not stop the pass: the item is tried again after a
    /// growing wait ([`provider_cleanup_backoff`]) and, after
    /// [`FlowPolicy::provider_cleanup_max_attempts`] attempts, marked dead.
    #[tracing::instrument(
        target = "biometric_passkey::span",
        name = "provider.cleanups",
        skip_all
    )]
    pub async fn process_provider_cleanups(
        &self,
        limit: u32,
    ) -> DomainResult<ProviderCleanupReport> {
        let mut report = ProviderCleanupReport::default();
        let now = self.clock.now();
        for cleanup in self.repo.due_provider_cleanups(now, limit).await? {
            let attempt = match &cleanup.applicant_sealed {
                Some(sealed) => self
                    .open_string(sealed, applicant_binding(&cleanup.user_id))
                    .map(Some)
                    .map_err(|e| format!("the stored applicant id cannot be opened: {e}")),
                None => Ok(None),
            };
            let outcome = match attempt {
                Ok(applicant) => self
                    .idv
                    .forget_user(
                        &cleanup.customer_user_id,
                        applicant.as_ref().map(|a| a.as_str()),
                    )
                    .await
                    .map_err(|e| cleanup_failure(&e)),
                Err(reason) => Err(reason),
            };
            match outcome {
                Ok(()) => {
                    self.repo.finish_provider_cleanup(cleanup.user_id).await?;
                    report.forgotten += 1;
                }
                Err(reason) => {
                    let attempts = cleanup.attempts.saturating_add(1);
                    let retry_at = (attempts < self.policy.provider_cleanup_max_attempts)
                        .then(|| now + provider_cleanup_backoff(attempts));
                    self.repo
                        .fail_provider_cleanup(cleanup.user_id, now, retry_at)
                        .await?;
                    let failed = FailedCleanup {
                        user_id: cleanup.user_id,
                        attempts,
                        reason,
                    };
                    if retry_at.is_some() {
                        report.retrying.push(failed);
                    } else {
                        report.dead.push(failed);
                    }
                }
            }
        }
        Ok(report)
    }
}

fn status_name(status: &RunStatus) -> String {
    match status {
        RunStatus::Open => "open".to_owned(),
        RunStatus::Done(IdentityOutcome::Approved) => "approved".to_owned(),
        RunStatus::Done(IdentityOutcome::Review) => "review".to_owned(),
        RunStatus::Done(IdentityOutcome::Declined) => "declined".to_owned(),
        RunStatus::Done(IdentityOutcome::Abandoned) => "abandoned".to_owned(),
        RunStatus::Done(IdentityOutcome::Error) => "error".to_owned(),
        RunStatus::Unknown(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;

    use super::provider_cleanup_backoff;

    #[test]
    fn provider_cleanup_backoff_doubles_from_a_minute_up_to_six_hours() {
        let waits: Vec<Duration> = (1..=12).map(provider_cleanup_backoff).collect();
        assert_eq!(waits[0], Duration::minutes(1));
        assert_eq!(waits[1], Duration::minutes(2));
        assert_eq!(waits[8], Duration::minutes(256));
        assert_eq!(waits[9], Duration::hours(6));
        assert_eq!(provider_cleanup_backoff(u32::MAX), Duration::hours(6));
        assert_eq!(provider_cleanup_backoff(0), Duration::minutes(1));
    }
}
