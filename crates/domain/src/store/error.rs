//! What a store reports when it cannot do what it was asked.

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
    /// A per-user limit would be exceeded.
    #[error("limit reached: {0}")]
    LimitReached(Limit),
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
    /// from ([`FlowWrite::Update`](super::FlowWrite::Update)).
    FlowVersion,
    /// A credential changed since it was read: a use found it no longer
    /// `active` or its counter not growing ([`Effect::UseCredential`](super::Effect::UseCredential),
    /// [`Effect::UseCredentialKeepingCounter`](super::Effect::UseCredentialKeepingCounter)), or a status change found
    /// another status than `from` ([`Effect::SetCredentialStatus`](super::Effect::SetCredentialStatus)).
    CredentialState,
    /// The credential a completion relies on is no longer `active`
    /// ([`Effect::RequireActiveCredential`](super::Effect::RequireActiveCredential)).
    CredentialNotActive,
    /// The user has a biometric reference already ([`Effect::EnrolReference`](super::Effect::EnrolReference)).
    ReferenceExists,
    /// The provider event was recorded before ([`Effect::RecordProviderEvent`](super::Effect::RecordProviderEvent)).
    ProviderEvent,
    /// A credential with this WebAuthn id is registered already
    /// ([`Effect::InsertCredential`](super::Effect::InsertCredential)).
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

/// A per-user limit a flow's insertion would exceed ([`FlowLimits`]). Each
/// store tells which one from what it counted, in one place.
///
/// [`FlowLimits`]: super::FlowLimits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The user's flows in progress ([`FlowLimits::max_open_flows`]).
    ///
    /// [`FlowLimits::max_open_flows`]: super::FlowLimits::max_open_flows
    OpenFlows,
    /// The user's identity verifications of the last 24 hours
    /// ([`FlowLimits::max_idv_runs_per_day`]).
    ///
    /// [`FlowLimits::max_idv_runs_per_day`]: super::FlowLimits::max_idv_runs_per_day
    IdvRuns,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::OpenFlows => "open_flows",
            Self::IdvRuns => "idv_runs",
        })
    }
}
