//! The flow service: what the Core API does, as the domain sees it.
//!
//! Each operation reads what it needs, decides with the pure state machine
//! (`flow.rs`), and commits one [`Change`]: the flow's new version, its side
//! effects and its audit events, in one transaction. Conflicting concurrent
//! operations lose on the flow's version, so exactly one wins on any number of
//! replicas. Rejected input changes nothing and is audited.
//!
//! This file holds the service and what every use case shares: loading a flow
//! (expired first when its time is up), stepping it by a fact, writing the
//! result, and the view the integration sees. Each use case has a file of its
//! own in `service/`: `create` (a flow's creation), `idv_run` (starting its
//! IDV run), `possession` (the possession proof), `ceremony` (the built-in
//! relying party's WebAuthn ceremony), `custody` (the biometric reference),
//! `handoff` (claiming a cross-platform flow), `provider_events` (provider
//! events and reconciliation), `users`, `refusals` (refusals counted per
//! window) and `cleanup` (the provider clean-up queue, stale staged
//! references). A use case gathers what its change writes besides the flow in
//! a `ChangeDraft` (`draft`); `transition` decides what a step of the state
//! machine adds to it, from what was read before.

mod ceremony;
mod cleanup;
mod create;
mod custody;
mod draft;
mod external_ids;
mod handoff;
mod idv_run;
mod possession;
mod provider_events;
mod refusals;
mod transition;
mod users;

use std::sync::Arc;

use proto::ErrorCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use cleanup::{FailedCleanup, ProviderCleanupReport, provider_cleanup_backoff};
pub use create::CreateFlow;
pub use possession::PossessionProof;
pub use provider_events::{EventOutcome, ReconcileReport, SignedWith, provider_event_key};
pub use users::UserView;

use crate::audit::{Actor, AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, FailureReason, Flow, FlowId, FlowState, TransitionError};
use crate::idv::IdentityProvider;
use crate::possession::{BackupPolicy, CounterPolicy, RelyingParty};
use crate::rotation::SealedColumn;
use crate::sealing::{Binding, DataKey};
use crate::store::{Change, Conflict, FlowWrite, Repository, StoreError};
use crate::tally::RefusalTally;
use crate::user::{ExternalUserId, UserId};
use draft::ChangeDraft;
use external_ids::ExternalIds;

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

fn context_binding(id: &FlowId) -> Binding<'_> {
    SealedColumn::FlowTransactionContext.binding(id.0.as_bytes())
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

/// An audit event by the one asking in `ctx`.
fn audit_event(
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
        audit_event(ctx, event_type, subject, now)
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

    /// Applies `fact` to `flow` without writing it, adding the records the
    /// transition implies to `draft`. What the decision needs is read first;
    /// the decision itself reads nothing.
    async fn step(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        fact: &Fact,
        now: OffsetDateTime,
        draft: &mut ChangeDraft,
    ) -> DomainResult<Flow> {
        let next = flow
            .apply(fact, now)
            .map_err(|e| transition_error(flow, e))?;
        let staged = self.staged_to_promote(flow, &next, draft).await?;
        let records = self
            .recorder(ctx, now)
            .records(flow, &next, staged.as_deref())?;
        draft.extend(records);
        Ok(next)
    }

    /// Applies `fact`, writing the new version with its records and what
    /// `draft` holds already.
    async fn advance(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        fact: &Fact,
        mut draft: ChangeDraft,
    ) -> DomainResult<Flow> {
        let now = self.clock.now();
        let next = self.step(ctx, flow, fact, now, &mut draft).await?;
        self.write(ctx, flow, next, draft).await
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
        draft: ChangeDraft,
    ) -> DomainResult<Flow> {
        let kept = draft.provider_event_only();
        let completes = next.state == FlowState::Completed;
        let change = draft.into_change(Some(FlowWrite::Update { flow: next.clone() }));
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
        Box::pin(self.advance(ctx, flow, &Fact::Refused(reason), kept)).await
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
            .advance(&system, &flow, &Fact::Expired, ChangeDraft::default())
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

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.read", skip_all)]
    pub async fn get_flow(&self, id: FlowId) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        self.view(flow, None).await
    }

    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.cancel", skip_all)]
    pub async fn cancel(&self, ctx: &RequestContext, id: FlowId) -> DomainResult<FlowView> {
        let flow = self.load(id).await?;
        let flow = self
            .advance(ctx, &flow, &Fact::Cancelled, ChangeDraft::default())
            .await?;
        self.view(flow, None).await
    }
}
