//! What the load runs: the scenarios, and the calls they are measured by.

/// The four flows of the Core API with possession reported by the caller
/// (`external` mode), step-up again with the IDV result arriving as a signed
/// provider webhook, and the four flows again with each user's software
/// authenticator answering the service's WebAuthn options (`builtin` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scenario {
    Registration,
    SignIn,
    StepUp,
    Recovery,
    StepUpWebhook,
    RegistrationBuiltin,
    SignInBuiltin,
    StepUpBuiltin,
    RecoveryBuiltin,
    /// `POST /flows` alone, as fast as it is answered (the flows stay open).
    CreateRegistration,
    CreateSignIn,
    CreateStepUp,
    CreateRecovery,
    /// The fixed yardstick's request: one transaction of an UPDATE and an INSERT.
    Yardstick,
    /// The same work as one statement.
    YardstickOneStatement,
}

impl Scenario {
    pub(crate) const ALL: [Self; 15] = [
        Self::Yardstick,
        Self::YardstickOneStatement,
        Self::Registration,
        Self::SignIn,
        Self::StepUp,
        Self::Recovery,
        Self::StepUpWebhook,
        Self::RegistrationBuiltin,
        Self::SignInBuiltin,
        Self::StepUpBuiltin,
        Self::RecoveryBuiltin,
        Self::CreateRegistration,
        Self::CreateSignIn,
        Self::CreateStepUp,
        Self::CreateRecovery,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::StepUp => "step_up",
            Self::Recovery => "recovery",
            Self::StepUpWebhook => "step_up_webhook",
            Self::RegistrationBuiltin => "registration_builtin",
            Self::SignInBuiltin => "sign_in_builtin",
            Self::StepUpBuiltin => "step_up_builtin",
            Self::RecoveryBuiltin => "recovery_builtin",
            Self::CreateRegistration => "create_registration",
            Self::CreateSignIn => "create_sign_in",
            Self::CreateStepUp => "create_step_up",
            Self::CreateRecovery => "create_recovery",
            Self::Yardstick => "yardstick",
            Self::YardstickOneStatement => "yardstick_one_statement",
        }
    }

    /// The fixed yardstick's requests, not the product's.
    pub(crate) fn yardstick(self) -> bool {
        matches!(self, Self::Yardstick | Self::YardstickOneStatement)
    }

    /// `POST /flows` alone: the flow it creates.
    pub(crate) fn creates_only(self) -> Option<Self> {
        match self {
            Self::CreateRegistration => Some(Self::Registration),
            Self::CreateSignIn => Some(Self::SignIn),
            Self::CreateStepUp => Some(Self::StepUp),
            Self::CreateRecovery => Some(Self::Recovery),
            _ => None,
        }
    }

    /// Runs against a service in `builtin` possession mode.
    pub(crate) fn builtin(self) -> bool {
        matches!(
            self,
            Self::RegistrationBuiltin
                | Self::SignInBuiltin
                | Self::StepUpBuiltin
                | Self::RecoveryBuiltin
        )
    }

    /// The calls it makes: a builtin scenario makes its flow's calls.
    pub(super) fn flow(self) -> Self {
        match self {
            Self::RegistrationBuiltin => Self::Registration,
            Self::SignInBuiltin => Self::SignIn,
            Self::StepUpBuiltin => Self::StepUp,
            Self::RecoveryBuiltin => Self::Recovery,
            other => other,
        }
    }
}

/// One call of a flow, named by its route.
pub(crate) type Step = &'static str;
pub(crate) const CREATE: Step = "POST /flows";
pub(crate) const STORE_REFERENCE: Step = "PUT /flows/{id}/biometric-reference";
pub(crate) const RELEASE_REFERENCE: Step = "POST /flows/{id}/biometric-reference/release";
pub(crate) const POSSESSION: Step = "POST /flows/{id}/possession";
pub(crate) const OUTCOME: Step = "POST /synthetic/runs/{run}/outcome";
pub(crate) const READ: Step = "GET /flows/{id}";
pub(crate) const WEBHOOK: Step = "POST /providers/onfido/webhooks";
pub(crate) const YARDSTICK: Step = "POST /yardstick/{key} (BEGIN, UPDATE, INSERT, COMMIT)";
pub(crate) const YARDSTICK_ONE_STATEMENT: Step =
    "POST /yardstick/{key}/one-statement (one data-modifying CTE)";
/// The provider double's control call that completes a run (not the product's).
pub(crate) const COMPLETE_AT_PROVIDER: Step = "provider double: run completed";
