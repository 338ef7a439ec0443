//! Flows: one attempt at registration, sign-in, step-up or recovery, and the
//! state machine that moves it. Pure: every transition is a function from a
//! flow (and a fact) to the next flow, tested without IO.
//!
//! States: `pending` (created; IDV run being started) → `awaiting_verification`
//! (the SDK must run the capture) → `verified` (identity proof done) →
//! `completed`; or `in_review`, `failed` (with a reason), `expired`,
//! `cancelled`. Proofs may arrive in either order; a flow completes when all of
//! its required proofs are in.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::user::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(pub Uuid);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::audit::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err($crate::audit::UnknownValue(other.to_owned())),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// What a flow is for.
    FlowType {
        Registration = "registration",
        SignIn = "sign_in",
        StepUp = "step_up",
        Recovery = "recovery",
    }
}

impl FlowType {
    /// Whether the flow needs an identity proof from the IDV provider.
    pub fn needs_identity(self) -> bool {
        !matches!(self, Self::SignIn)
    }

    /// Whether the possession proof is a new credential (else an assertion).
    pub fn creates_credential(self) -> bool {
        matches!(self, Self::Registration | Self::Recovery)
    }

    /// Whether the flow matches a capture against the stored biometric reference.
    pub fn uses_reference(self) -> bool {
        matches!(self, Self::StepUp | Self::Recovery)
    }
}

string_enum! {
    /// Where a flow is.
    FlowState {
        Pending = "pending",
        AwaitingVerification = "awaiting_verification",
        Verified = "verified",
        InReview = "in_review",
        Completed = "completed",
        Failed = "failed",
        Expired = "expired",
        Cancelled = "cancelled",
    }
}

impl FlowState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Expired | Self::Cancelled
        )
    }
}

string_enum! {
    /// The identity proof's progress.
    IdentityStatus {
        NotRequired = "not_required",
        Pending = "pending",
        Verified = "verified",
        InReview = "in_review",
        Failed = "failed",
    }
}

string_enum! {
    /// Why a flow failed. Stable; part of the API.
    FailureReason {
        IdvDeclined = "idv_declined",
        IdvAbandoned = "idv_abandoned",
        IdvError = "idv_error",
        IdvUnavailable = "idv_unavailable",
        // The passkey whose assertion the flow holds was suspended or revoked
        // before the flow could complete.
        CredentialNotActive = "credential_not_active",
        // Another registration of the user completed first.
        UserAlreadyEnrolled = "user_already_enrolled",
    }
}

/// A keyed digest of a stored value (see `DataKey::digest`) and the id of
/// the data-encryption key it was made under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedDigest {
    pub key_id: String,
    /// HMAC-SHA256, lowercase hex.
    pub hmac: String,
}

/// The cross-platform hand-off: a short-lived, single-use code the enrolled
/// device presents to claim a step-up started elsewhere. Only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub code_sha256: [u8; 32],
    pub expires_at: OffsetDateTime,
    pub claimed_at: Option<OffsetDateTime>,
}

/// A flow as stored. Sensitive values are sealed (`domain::sealing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub id: FlowId,
    pub user_id: UserId,
    pub flow_type: FlowType,
    pub state: FlowState,
    /// Bumped by every change; writes are conditional on it, so of two
    /// concurrent changes exactly one wins.
    pub version: i64,
    pub identity: IdentityStatus,
    pub idv_run_id: Option<String>,
    pub sdk_token_sealed: Option<Vec<u8>>,
    pub possession_done: bool,
    /// Registration, recovery: a biometric reference is staged on this flow;
    /// it becomes the user's only when the flow completes.
    pub reference_stored: bool,
    /// The credential created (registration, recovery) or used (sign-in, step-up).
    pub credential_id: Option<Uuid>,
    /// Registration, recovery: the new credential, inserted (active) only when
    /// the flow completes.
    pub pending_credential: Option<NewCredential>,
    pub failure_reason: Option<FailureReason>,
    pub transaction_context_sealed: Option<Vec<u8>>,
    /// Keyed, never a plain hash: stored and audited. The plain SHA-256 the
    /// integration compares is computed from the sealed context when shown.
    pub transaction_context_digest: Option<KeyedDigest>,
    /// Step-up, recovery: the flow that stored the user's biometric reference
    /// when this flow was created, the only reference it may be released.
    pub reference_flow_id: Option<FlowId>,
    pub cross_platform: bool,
    pub handoff: Option<Handoff>,
    /// `builtin` mode: the pending WebAuthn ceremony.
    pub ceremony: Option<Ceremony>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
}

/// A credential presented by a registration or recovery flow, as the relying
/// party verified it. Kept on the flow until the flow completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCredential {
    /// Our id for the credential-to-be.
    pub id: Uuid,
    pub webauthn_id: String,
    pub public_key: Option<Vec<u8>>,
    pub aaguid: Option<Uuid>,
    pub sign_count: u32,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub platform: Option<String>,
    pub device_label: Option<String>,
    /// Registered in `builtin` mode.
    #[serde(default)]
    pub passkey: Option<crate::credential::RegisteredPasskey>,
}

/// A flow's WebAuthn ceremony in `builtin` mode: the relying party's state
/// (with the challenge), sealed and bound to the flow. Single-use: the change
/// that accepts a response clears it, conditional on the flow's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    pub state_sealed: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

/// A fact that moves a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// The IDV run was started.
    RunStarted {
        run_id: String,
        sdk_token_sealed: Option<Vec<u8>>,
    },
    /// The IDV run could not be started.
    RunNotStarted,
    /// The provider's authoritative run status changed.
    Identity(IdentityOutcome),
    /// The possession proof was accepted, with the credential created or used.
    Possession {
        credential_id: Uuid,
    },
    /// A biometric reference was staged on the flow.
    ReferenceStored,
    /// What the flow's completion relies on no longer holds (re-checked in
    /// the completing transaction): the flow fails for this reason.
    Refused(FailureReason),
    /// The hand-off code was claimed by the enrolled device.
    HandoffClaimed,
    Cancelled,
    Expired,
}

/// The identity proof's verdict, from the provider's run status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOutcome {
    Approved,
    Review,
    Declined,
    Abandoned,
    Error,
}

/// Why a fact cannot apply to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the flow has ended")]
    Terminal,
    #[error("the flow has expired")]
    Expired,
    #[error("this proof was already given")]
    AlreadyDone,
    #[error("the flow does not take this proof")]
    NotExpected,
    #[error("the flow does not accept this yet")]
    NotYet,
}

impl Flow {
    /// A flow as created: version 1, waiting for its identity proof when its
    /// type needs one (otherwise already `verified`), no optional field set.
    pub fn new(
        id: FlowId,
        user_id: UserId,
        flow_type: FlowType,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        let needs_identity = flow_type.needs_identity();
        Self {
            id,
            user_id,
            flow_type,
            state: if needs_identity {
                FlowState::Pending
            } else {
                FlowState::Verified
            },
            version: 1,
            identity: if needs_identity {
                IdentityStatus::Pending
            } else {
                IdentityStatus::NotRequired
            },
            idv_run_id: None,
            sdk_token_sealed: None,
            possession_done: false,
            reference_stored: false,
            credential_id: None,
            pending_credential: None,
            failure_reason: None,
            transaction_context_sealed: None,
            transaction_context_digest: None,
            reference_flow_id: None,
            cross_platform: false,
            handoff: None,
            ceremony: None,
            created_at,
            updated_at: created_at,
            expires_at,
            completed_at: None,
        }
    }

    /// Whether the enrolled device may act on the flow: always, unless the flow
    /// is cross-platform and its hand-off has not been claimed yet.
    pub fn device_side_ready(&self) -> bool {
        !self.cross_platform
            || self
                .handoff
                .as_ref()
                .is_some_and(|h| h.claimed_at.is_some())
    }

    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        !self.state.is_terminal() && now >= self.expires_at
    }

    /// The flow as it stands at `now`, for reading: an open flow past its
    /// expiry is `expired` whether or not a write has settled it yet (the
    /// Core API settles expiry lazily, on the next call that touches the
    /// flow). Every view of a flow outside a transition reads it through this.
    pub fn as_of(mut self, now: OffsetDateTime) -> Self {
        if self.is_expired_at(now) {
            self.state = FlowState::Expired;
        }
        self
    }

    /// The next flow after `fact` at `now`. Terminal states never move;
    /// an expired flow only accepts `Fact::Expired`.
    pub fn apply(&self, fact: &Fact, now: OffsetDateTime) -> Result<Self, TransitionError> {
        if self.state.is_terminal() {
            return Err(TransitionError::Terminal);
        }
        if self.is_expired_at(now) && *fact != Fact::Expired {
            return Err(TransitionError::Expired);
        }
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        match fact {
            Fact::RunStarted {
                run_id,
                sdk_token_sealed,
            } => {
                if self.state != FlowState::Pending {
                    return Err(TransitionError::AlreadyDone);
                }
                next.idv_run_id = Some(run_id.clone());
                next.sdk_token_sealed = sdk_token_sealed.clone();
                next.state = FlowState::AwaitingVerification;
            }
            Fact::RunNotStarted => {
                next.state = FlowState::Failed;
                next.failure_reason = Some(FailureReason::IdvUnavailable);
            }
            Fact::Identity(outcome) => {
                if !self.flow_type.needs_identity() {
                    return Err(TransitionError::NotExpected);
                }
                if self.identity == IdentityStatus::Verified {
                    return Err(TransitionError::AlreadyDone);
                }
                if self.idv_run_id.is_none() {
                    return Err(TransitionError::NotYet);
                }
                match outcome {
                    IdentityOutcome::Approved => next.identity = IdentityStatus::Verified,
                    IdentityOutcome::Review => {
                        next.identity = IdentityStatus::InReview;
                        next.state = FlowState::InReview;
                    }
                    IdentityOutcome::Declined
                    | IdentityOutcome::Abandoned
                    | IdentityOutcome::Error => {
                        next.identity = IdentityStatus::Failed;
                        next.state = FlowState::Failed;
                        next.failure_reason = Some(match outcome {
                            IdentityOutcome::Declined => FailureReason::IdvDeclined,
                            IdentityOutcome::Abandoned => FailureReason::IdvAbandoned,
                            _ => FailureReason::IdvError,
                        });
                    }
                }
            }
            Fact::Possession { credential_id } => {
                if self.possession_done {
                    return Err(TransitionError::AlreadyDone);
                }
                if !self.device_side_ready() {
                    return Err(TransitionError::NotYet);
                }
                next.possession_done = true;
                next.credential_id = Some(*credential_id);
            }
            Fact::ReferenceStored => {
                if !self.flow_type.creates_credential() {
                    return Err(TransitionError::NotExpected);
                }
                next.reference_stored = true;
            }
            Fact::HandoffClaimed => match &mut next.handoff {
                Some(handoff) if handoff.claimed_at.is_none() => handoff.claimed_at = Some(now),
                Some(_) => return Err(TransitionError::AlreadyDone),
                None => return Err(TransitionError::NotExpected),
            },
            Fact::Refused(reason) => {
                next.state = FlowState::Failed;
                next.failure_reason = Some(*reason);
            }
            Fact::Cancelled => next.state = FlowState::Cancelled,
            Fact::Expired => {
                if !self.is_expired_at(now) {
                    return Err(TransitionError::NotYet);
                }
                next.state = FlowState::Expired;
            }
        }
        if !next.state.is_terminal() {
            next.state = next.settled_state();
            if next.state == FlowState::Completed {
                next.completed_at = Some(now);
            }
        }
        if next.state.is_terminal() {
            // An ended flow needs neither its SDK token nor its ceremony:
            // they leave in the write that ends it.
            next.sdk_token_sealed = None;
            next.ceremony = None;
        }
        Ok(next)
    }

    /// The flow with `run_id` recorded as its run: the provider made the run
    /// although its creation was answered as failed, and a look-up found it
    /// later. The flow stays failed; only a flow failed for that reason and
    /// holding no run takes one.
    pub fn with_run_found_late(
        &self,
        run_id: &str,
        now: OffsetDateTime,
    ) -> Result<Self, TransitionError> {
        if self.state != FlowState::Failed
            || self.failure_reason != Some(FailureReason::IdvUnavailable)
        {
            return Err(TransitionError::NotExpected);
        }
        if self.idv_run_id.is_some() {
            return Err(TransitionError::AlreadyDone);
        }
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        next.idv_run_id = Some(run_id.to_owned());
        Ok(next)
    }

    /// The state implied by the proofs collected so far (for a non-terminal flow).
    fn settled_state(&self) -> FlowState {
        let identity_done = matches!(
            self.identity,
            IdentityStatus::NotRequired | IdentityStatus::Verified
        );
        let reference_done = self.flow_type != FlowType::Registration || self.reference_stored;
        match self.identity {
            IdentityStatus::InReview => FlowState::InReview,
            _ if identity_done && self.possession_done && reference_done => FlowState::Completed,
            _ if identity_done => FlowState::Verified,
            _ if self.idv_run_id.is_some() => FlowState::AwaitingVerification,
            _ => FlowState::Pending,
        }
    }
}

#[cfg(test)]
mod tests;
