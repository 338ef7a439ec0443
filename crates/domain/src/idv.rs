//! The identity-verification provider port. The Onfido client and the
//! synthetic provider implement it; the flow service only sees this.

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::flow::{FlowId, IdentityOutcome};
use crate::service::SignedWith;
use crate::user::Pseudonym;

/// Which configured workflow a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    Registration,
    StepUp,
    RecoveryVerify,
}

#[derive(Debug, Clone)]
pub struct StartRun<'a> {
    pub workflow: Workflow,
    /// The pseudonymous key the provider knows the user by; never the customer's id.
    pub customer_user_id: &'a Pseudonym,
    /// The user's provider-side applicant (see
    /// [`IdentityProvider::create_applicant`]).
    pub applicant_id: &'a str,
    pub flow_id: FlowId,
    /// The provider gives up by then, retries and look-ups included: a run
    /// whose creation is still unsettled is answered [`IdvError::Unsettled`].
    pub deadline: std::time::Instant,
}

#[derive(Debug)]
pub struct StartedRun {
    pub run_id: String,
    /// The mobile SDK's token for this run: a bearer secret. Absent for
    /// workflows without interactive steps.
    pub sdk_token: Option<Zeroizing<String>>,
    pub status: RunStatus,
}

/// A run's authoritative status, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStatus {
    /// Still waiting on the user, the provider or the integrator.
    Open,
    Done(IdentityOutcome),
    /// A status this version does not know; treated as still open.
    Unknown(String),
}

/// Whether a stored applicant can still take runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplicantState {
    Active,
    /// Deleted at the provider, or scheduled for deletion: a new applicant
    /// is needed.
    Gone,
}

/// How long a webhook delivery may wait on the provider's re-read of its run:
/// the provider counts a delivery not answered 2xx within 10 seconds as failed
/// (its API definition, `paths/webhooks.yaml`), so the read gets half of that,
/// leaving room for the database work and the network on either side.
pub const WEBHOOK_READ_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a flow's creation may wait on the provider (the applicant, the
/// run, the look-up after an ambiguous failure; [`StartRun::deadline`]): a
/// call that needs the provider fails within 5 seconds when it is out. A run
/// whose creation was not settled by then is looked up later
/// ([`IdvError::Unsettled`]).
pub const RUN_CREATION_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// How long the reconciler's look-up of such a run may take.
pub const RUN_LOOKUP_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdvError {
    /// Timeout, connection failure, 5xx or 429: retry later.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx): a bug or a misconfiguration.
    #[error("identity provider refused the request: {0}")]
    Refused(String),
    #[error("the identity provider does not know this run")]
    UnknownRun,
    /// A run's creation failed in a way that may have created it anyway (a
    /// timeout, a 5xx) and no look-up settled it: the flow fails, and the
    /// reconciler looks for the run later ([`IdentityProvider::find_run`]).
    #[error("identity provider unavailable; the run may have been created: {0}")]
    Unsettled(String),
}

/// Every method is required, with no default body: a decorator (the
/// runtime's metered provider) that forgot one would otherwise silently
/// replace the provider's behaviour with the default.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// `onfido` or `synthetic`, for audit details.
    fn name(&self) -> &'static str;

    /// Creates the provider-side applicant a user's runs belong to. Called
    /// once per user, and the applicant is stored before any run is started
    /// for it, so that whatever the provider keeps is known to the user (and
    /// deleted with them) even when the run then fails.
    /// The provider gives up by `deadline`.
    async fn create_applicant(
        &self,
        customer_user_id: &Pseudonym,
        deadline: std::time::Instant,
    ) -> Result<String, IdvError>;

    async fn start_run(&self, request: StartRun<'_>) -> Result<StartedRun, IdvError>;

    /// The run the provider made for `request` although its creation was
    /// answered as failed, if a listed run is provably it; `None` when the
    /// provider holds none. Providers whose creations cannot be ambiguous
    /// (the synthetic one) hold none.
    async fn find_run(&self, request: StartRun<'_>) -> Result<Option<StartedRun>, IdvError>;

    /// The run's authoritative status; webhooks only trigger this read.
    async fn read_run(&self, run_id: &str) -> Result<RunStatus, IdvError>;

    /// [`Self::read_run`], given up (as `Unavailable`) once `budget` has
    /// passed, retries included: a webhook delivery must be answered in time.
    async fn read_run_within(
        &self,
        run_id: &str,
        budget: std::time::Duration,
    ) -> Result<RunStatus, IdvError>;

    /// Whether the applicant can still take runs (asked after a run could not
    /// be created for it).
    async fn applicant_state(&self, applicant_id: &str) -> Result<ApplicantState, IdvError>;

    /// Deletes an applicant the user no longer uses (one replaced, or one
    /// made by a concurrent flow that lost the race to store its own);
    /// "not found" counts as done.
    async fn delete_applicant(&self, applicant_id: &str) -> Result<(), IdvError>;

    /// Removes what the provider keeps about a deleted user.
    async fn forget_user(
        &self,
        customer_user_id: &Pseudonym,
        applicant_id: Option<&str>,
    ) -> Result<(), IdvError>;
}

/// Test and demo control of the synthetic provider: choose a run's outcome.
/// Only the synthetic provider implements it; the Core API mounts its control
/// route only when one is configured.
pub trait SyntheticControl: Send + Sync + 'static {
    /// Moves a run to its final status (`Done`), or back to review.
    fn set_outcome(&self, run_id: &str, outcome: IdentityOutcome) -> Result<(), IdvError>;
}

/// The headers of a provider's delivery.
pub trait DeliveryHeaders {
    /// The value of the header `name` (matched without regard to case) as
    /// sent, or `None` when it is absent.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

/// What an authentic, well-formed delivery from the provider says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// A run's completion, fresh enough to act on.
    RunCompleted {
        run_id: String,
        /// The run's status as the delivery announces it, if it names one;
        /// the run is re-read from the provider before anything moves.
        claimed_status: Option<String>,
        signed_with: SignedWith,
    },
    /// An event type the backend does not act on: acknowledged at once and
    /// counted under `reason` (see [`ProviderEvent::ignored`]).
    Ignored { reason: String },
}

impl ProviderEvent {
    /// An event type not acted on, as an audit reason: the provider's names
    /// are short lower-case words with dots and underscores; anything else
    /// is counted as `other`, so a forged name cannot fill the audit trail
    /// with reasons of its own.
    pub fn ignored(event_type: &str) -> Self {
        let plain = !event_type.is_empty()
            && event_type.len() <= 64
            && event_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        let reason = if plain { event_type } else { "other" };
        Self::Ignored {
            reason: reason.to_owned(),
        }
    }
}

/// Why a delivery was not acted on; the `reason` of its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryRefusal {
    SignatureMissing,
    SignatureMalformed,
    SignatureInvalid,
    /// Signed, but not a provider event.
    Malformed,
    /// A completion too old to act on, or without a time to judge it by.
    Stale,
    FromTheFuture,
}

impl DeliveryRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::SignatureMissing => "signature_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureInvalid => "signature_invalid",
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::FromTheFuture => "future_timestamp",
        }
    }

    /// Whether the delivery is still acknowledged 2xx: it is authentic and
    /// well-formed, only too old (or too new) to act on.
    pub fn acknowledged(self) -> bool {
        matches!(self, Self::Stale | Self::FromTheFuture)
    }

    /// Whether the delivery's signature was missing or did not verify.
    pub fn unsigned(self) -> bool {
        matches!(
            self,
            Self::SignatureMissing | Self::SignatureMalformed | Self::SignatureInvalid
        )
    }
}

/// Reads the provider's webhook deliveries: verifies a delivery's signature
/// over the raw bytes, then reads the event from them. The provider's
/// format (its signature header, payload and timestamps, its event names)
/// is known only to the implementation.
pub trait WebhookVerifier: Send + Sync + 'static {
    /// The header carrying the signature, as refusals name it.
    fn signature_header(&self) -> &'static str;

    /// The event a delivery carries, judged at `now`, or why it is not acted on.
    fn read(
        &self,
        headers: &dyn DeliveryHeaders,
        body: &[u8],
        now: time::OffsetDateTime,
    ) -> Result<ProviderEvent, DeliveryRefusal>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_event_types_become_bounded_reasons() {
        let reason = |event_type: &str| match ProviderEvent::ignored(event_type) {
            ProviderEvent::Ignored { reason } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason("workflow_task.started"), "workflow_task.started");
        assert_eq!(reason("Check Completed!"), "other");
        assert_eq!(reason(&"a".repeat(65)), "other");
        assert_eq!(reason(""), "other");
    }

    #[test]
    fn only_authentic_well_formed_refusals_are_acknowledged() {
        assert!(DeliveryRefusal::Stale.acknowledged());
        assert!(DeliveryRefusal::FromTheFuture.acknowledged());
        assert!(!DeliveryRefusal::SignatureInvalid.acknowledged());
        assert!(!DeliveryRefusal::Malformed.acknowledged());
    }
}
