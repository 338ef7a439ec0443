//! Creating a flow: the request checked, the user's standing read in one
//! statement, the flow written (with its limits), then its IDV run started.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proto::ErrorCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::handoff::handoff_hash;
use super::{ChangeDraft, FlowService, FlowView, RequestContext, context_binding};
use crate::audit::{AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::error::{DomainError, DomainResult, ErrorKind};
use crate::flow::{Flow, FlowId, FlowType, Handoff, KeyedDigest};
use crate::ids;
use crate::rotation::CONTEXT_DIGEST_SLOT;
use crate::store::{Effect, FlowLimits, FlowPrerequisites, FlowWrite, Limit, StoreError};
use crate::user::{ExternalUserId, User};

/// A request to start a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFlow {
    pub flow_type: FlowType,
    pub external_user_id: ExternalUserId,
    pub transaction_context: Option<Value>,
    pub cross_platform: bool,
}

impl FlowService {
    #[tracing::instrument(target = "biometric_passkey::span", name = "flow.create", skip_all)]
    pub async fn create_flow(
        &self,
        ctx: &RequestContext,
        request: CreateFlow,
    ) -> DomainResult<FlowView> {
        let now = self.clock.now();
        let flow_type = request.flow_type;
        let context = self.checked_context(&request)?;
        let mut draft = ChangeDraft::default();
        let (user, standing) = self.standing(ctx, &request, now, &mut draft).await?;
        self.refuse_by_standing(ctx, flow_type, standing.as_ref(), now)
            .await?;
        let (flow, handoff_code) =
            self.new_flow(&request, &user, standing.as_ref(), context.as_deref(), now);
        let (flow, webauthn_options) = self.with_ceremony(&user, flow, now).await?;
        draft.push_event(self.created_event(ctx, &flow, now));
        // Refused before anything is written; the insertion below checks the
        // limits again, atomically.
        if let Some(standing) = &standing {
            self.refuse_over_limits(flow_type, standing)?;
        }
        // The flow is written first, `pending` for an identity flow: its
        // insertion, under the user's lock, reserves one of the user's IDV
        // runs of the day, so that concurrent requests at the limit cannot
        // start more (billed) runs than the limit allows. The run is started
        // only then, and recorded by the flow's next version.
        let insert = FlowWrite::Insert {
            flow: flow.clone(),
            limits: FlowLimits {
                max_open_flows: self.policy.max_open_flows_per_user,
                max_idv_runs_per_day: self.policy.max_idv_runs_per_user_per_day,
                now,
            },
        };
        self.commit(draft.into_change(Some(insert))).await?;
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

    /// The request's transaction context as compact JSON: only step-up flows
    /// take one (or a hand-off), a JSON object within the policy's size.
    fn checked_context(&self, request: &CreateFlow) -> DomainResult<Option<Vec<u8>>> {
        if request.flow_type != FlowType::StepUp
            && (request.transaction_context.is_some() || request.cross_platform)
        {
            return Err(DomainError::bad_request(
                ErrorCode::TransactionContextNotAllowed,
                "only step_up flows take transaction_context or cross_platform",
            ));
        }
        match &request.transaction_context {
            Some(value @ Value::Object(_)) => {
                let bytes = serde_json::to_vec(value).unwrap_or_default();
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
                Ok(Some(bytes))
            }
            Some(_) => Err(DomainError::bad_request(
                ErrorCode::InvalidRequestBody,
                "transaction_context must be a JSON object",
            )),
            None => Ok(None),
        }
    }

    /// The user with their passkeys, reference and limits, in one read; a
    /// registration of someone unknown adds the new user to `draft`.
    async fn standing(
        &self,
        ctx: &RequestContext,
        request: &CreateFlow,
        now: OffsetDateTime,
        draft: &mut ChangeDraft,
    ) -> DomainResult<(User, Option<FlowPrerequisites>)> {
        let read = self
            .repo
            .flow_prerequisites(&request.external_user_id, now)
            .await;
        match (request.flow_type, read) {
            (_, Ok(standing)) => Ok((standing.user.clone(), Some(standing))),
            (FlowType::Registration, Err(StoreError::NotFound)) => {
                let user = User::new(request.external_user_id.clone(), now);
                draft.push_effect(Effect::CreateUser(user.clone()));
                draft.push_event(self.event(
                    ctx,
                    AuditEventType::UserCreated,
                    Subject::of_user(&user),
                    now,
                ));
                Ok((user, None))
            }
            (_, Err(StoreError::NotFound)) => Err(DomainError::not_found(
                ErrorCode::UserNotFound,
                "no user with this external_user_id",
            )),
            (_, Err(other)) => Err(other.into()),
        }
    }

    /// Refuses a flow the user's standing does not allow: a sign-in or
    /// step-up without an active passkey, a flow verifying against a
    /// reference the user does not have, a second registration (audited).
    async fn refuse_by_standing(
        &self,
        ctx: &RequestContext,
        flow_type: FlowType,
        standing: Option<&FlowPrerequisites>,
        now: OffsetDateTime,
    ) -> DomainResult<()> {
        // In `builtin` mode the ceremony's start reads the user's passkeys and
        // answers the same refusal.
        if matches!(flow_type, FlowType::SignIn | FlowType::StepUp)
            && self.relying_party.is_none()
            && !standing.is_some_and(|s| s.has_active_credential)
        {
            return Err(DomainError::conflict(
                ErrorCode::NoActiveCredential,
                "the user has no active credential",
            ));
        }
        if flow_type.uses_reference() && standing.is_none_or(|s| s.reference_flow_id.is_none()) {
            return Err(DomainError::conflict(
                ErrorCode::BiometricReferenceMissing,
                "the user has no stored biometric reference",
            ));
        }
        if flow_type == FlowType::Registration
            && let Some(standing) = standing
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
        Ok(())
    }

    /// The flow to write, with its sealed transaction context (`context`, as
    /// compact JSON) and, for a cross-platform flow, its hand-off code.
    fn new_flow(
        &self,
        request: &CreateFlow,
        user: &User,
        standing: Option<&FlowPrerequisites>,
        context: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> (Flow, Option<Zeroizing<String>>) {
        let flow_type = request.flow_type;
        let id = FlowId(ids::new_id(now));
        let expires_at = now + self.policy.flow_ttl;
        let handoff_code = request
            .cross_platform
            .then(|| Zeroizing::new(URL_SAFE_NO_PAD.encode(ids::random_bytes::<16>())));
        let flow = Flow {
            transaction_context_digest: context.map(|bytes| KeyedDigest {
                key_id: self.key.id().as_str().to_owned(),
                hmac: self.key.digest(CONTEXT_DIGEST_SLOT, bytes),
            }),
            transaction_context_sealed: context
                .map(|bytes| self.key.seal(bytes, context_binding(&id))),
            reference_flow_id: if flow_type.uses_reference() {
                standing.and_then(|s| s.reference_flow_id)
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
        (flow, handoff_code)
    }

    /// `builtin` mode: `flow` with its WebAuthn ceremony, and the options for
    /// the authenticator.
    async fn with_ceremony(
        &self,
        user: &User,
        flow: Flow,
        now: OffsetDateTime,
    ) -> DomainResult<(Flow, Option<Value>)> {
        let Some(rp) = &self.relying_party else {
            return Ok((flow, None));
        };
        let (ceremony, options) = self.start_ceremony(rp.as_ref(), user, &flow, now).await?;
        Ok((
            Flow {
                ceremony: Some(ceremony),
                ..flow
            },
            Some(options),
        ))
    }

    fn created_event(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        now: OffsetDateTime,
    ) -> NewAuditEvent {
        let digest = flow.transaction_context_digest.as_ref();
        NewAuditEvent {
            details: json!({
                "type": flow.flow_type.as_str(),
                "cross_platform": flow.cross_platform,
                "transaction_context_hmac": digest.map(|d| &d.hmac),
                "transaction_context_key_id": digest.map(|d| &d.key_id),
            }),
            ..self.event(
                ctx,
                AuditEventType::FlowCreated,
                Subject::of_flow(flow),
                now,
            )
        }
    }

    /// Refuses a flow past the user's open flows or IDV runs of the day.
    fn refuse_over_limits(
        &self,
        flow_type: FlowType,
        standing: &FlowPrerequisites,
    ) -> DomainResult<()> {
        let limit = if standing.open_flows >= self.policy.max_open_flows_per_user {
            Some(Limit::OpenFlows)
        } else if flow_type.needs_identity()
            && standing.idv_runs_last_day >= self.policy.max_idv_runs_per_user_per_day
        {
            Some(Limit::IdvRuns)
        } else {
            None
        };
        match limit {
            Some(limit) => Err(StoreError::LimitReached(limit).into()),
            None => Ok(()),
        }
    }
}
