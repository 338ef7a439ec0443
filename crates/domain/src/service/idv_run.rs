//! Starting a flow's IDV run: the user's applicant at the provider (created,
//! or replaced when the provider reports it gone), the run, and its record.

use std::time::Instant;

use proto::ErrorCode;
use time::OffsetDateTime;

use super::{ChangeDraft, FlowService, RequestContext, applicant_binding, sdk_token_binding};
use crate::error::{DomainError, DomainResult};
use crate::flow::{Fact, Flow, FlowType};
use crate::idv::{
    ApplicantState, IdvError, RUN_CREATION_BUDGET, RunStatus, StartRun, StartedRun, Workflow,
};
use crate::store::Effect;
use crate::user::{User, UserId};

/// What the provider is asked to start (or look for) for `flow`'s run.
pub(super) fn run_request<'a>(
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

impl FlowService {
    /// Starts the IDV run of a `pending` flow just written and records it.
    /// A provider failure fails the flow (the caller retries with a new
    /// one); a flow changed meanwhile (cancelled, say) is answered as it is.
    pub(super) async fn start_identity_proof(
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
                    .advance(ctx, &flow, &Fact::RunNotStarted, ChangeDraft::default())
                    .await;
                return Err(err);
            }
        };
        let now = self.clock.now();
        let err = match started {
            Ok(run) => {
                let mut draft = ChangeDraft::default();
                let next = self.run_started(ctx, &flow, run, now, &mut draft).await?;
                return match self.write(ctx, &flow, next, draft).await {
                    Err(e) if e.code == ErrorCode::FlowChanged => self.load(flow.id).await,
                    other => other,
                };
            }
            Err(err) => err,
        };
        // The provider may hold a run the flow does not know of: the
        // reconciler looks for it, so that it is not left behind unaccounted.
        let lookup = match &err {
            IdvError::Unsettled(_) => ChangeDraft::of_effect(Effect::SetRunLookup {
                flow_id: flow.id,
                pending: true,
            }),
            _ => ChangeDraft::default(),
        };
        let detail = match self.advance(ctx, &flow, &Fact::RunNotStarted, lookup).await {
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
    /// interactive steps), adding what to write with it to `draft`.
    async fn run_started(
        &self,
        ctx: &RequestContext,
        flow: &Flow,
        run: StartedRun,
        now: OffsetDateTime,
        draft: &mut ChangeDraft,
    ) -> DomainResult<Flow> {
        let fact = Fact::RunStarted {
            run_id: run.run_id.clone(),
            sdk_token_sealed: run
                .sdk_token
                .as_ref()
                .map(|token| self.key.seal(token.as_bytes(), sdk_token_binding(&flow.id))),
        };
        let mut next = self.step(ctx, flow, &fact, now, draft).await?;
        if let RunStatus::Done(outcome) = run.status {
            next = self
                .step(ctx, &next, &Fact::Identity(outcome), now, draft)
                .await?;
            // Both steps are written at once: one new version over `flow`'s.
            next.version = flow.version + 1;
        }
        Ok(next)
    }
}
