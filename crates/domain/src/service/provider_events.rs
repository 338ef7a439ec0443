//! The provider's word on a run: webhook deliveries (de-duplicated, then the
//! run re-read before anything moves), and the reconciler that re-reads runs
//! whose webhook never came and looks for runs a failed creation may have made.

use std::time::Instant;

use proto::ErrorCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::idv_run::run_request;
use super::{ChangeDraft, FlowService, RequestContext, applicant_binding, transition_error};
use crate::audit::{Actor, AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow, IdentityOutcome};
use crate::idv::{IdvError, RUN_LOOKUP_BUDGET, RunStatus};
use crate::store::{Effect, StoreError};

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

impl FlowService {
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
        let draft = ChangeDraft::of_effect(record).with_event(received);
        let fact = Fact::Identity(*outcome);
        let result = if flow.apply(&fact, now).is_ok() {
            self.advance(ctx, flow, &fact, draft)
                .await
                .map(|_| EventOutcome::Applied)
        } else {
            self.commit(draft.into_change(None))
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
            self.commit(ChangeDraft::of_effect(done).into_change(None))
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
        match self
            .write(
                ctx,
                &flow,
                next,
                ChangeDraft::of_effect(done).with_event(event),
            )
            .await
        {
            Ok(_) => Ok(true),
            // Another replica's reconciler recorded it first (and cleared the
            // mark in the same write): nothing is left to do.
            Err(e) if e.code == ErrorCode::FlowChanged => Ok(false),
            Err(e) => Err(e),
        }
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
