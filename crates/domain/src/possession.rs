//! Possession proof verified by the backend itself (`builtin` mode): the port a
//! WebAuthn relying party implements, and the policies the domain applies to
//! what it verified.
//!
//! The relying party owns the WebAuthn ceremony (options, challenge, origin,
//! RP ID, signature, user verification, attestation); the domain owns what a
//! verified fact means for a flow (status, ownership, counter and
//! backup-eligibility policies) exactly as in `external` mode, where the
//! customer's relying party reports the same facts.

use serde_json::Value;
use uuid::Uuid;

/// What a ceremony's start gives: the options for the browser or app (the
/// WebAuthn `PublicKeyCredential{Creation,Request}OptionsJSON`) and the state
/// the relying party needs to finish it, which the domain keeps sealed and
/// single-use with the flow.
#[derive(Debug, Clone, PartialEq)]
pub struct CeremonyStart {
    pub options: Value,
    pub state: Vec<u8>,
}

/// The account a new passkey is created for.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyUser<'a> {
    /// WebAuthn `user.id`: opaque, never personal data.
    pub handle: Uuid,
    pub name: &'a str,
    pub display_name: &'a str,
}

/// A registered passkey as the relying party needs it to verify assertions:
/// its own stored form (public key and parameters), opaque to the domain.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPasskey {
    pub webauthn_id: String,
    pub data: Value,
}

/// A registration the relying party verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedRegistration {
    /// The credential id, base64url without padding.
    pub webauthn_id: String,
    /// The COSE public key.
    pub public_key: Vec<u8>,
    pub aaguid: Option<Uuid>,
    pub sign_count: u32,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
    /// The attestation statement's format (`none`, `packed`, …).
    pub attestation_format: String,
    /// Whether the attestation chained to a trusted root.
    pub attestation_verified: bool,
    /// The relying party's stored form of the passkey.
    pub data: Value,
}

/// An assertion the relying party verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub webauthn_id: String,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
}

/// Why the relying party refused a response. Each maps to its own stable
/// error code; none carries the library's internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    #[error("the response is not a well-formed WebAuthn response: {0}")]
    Malformed(String),
    #[error("the response comes from an origin that is not allowed")]
    Origin,
    #[error("the response was made for another relying party id")]
    RpId,
    #[error("the response answers another challenge")]
    Challenge,
    #[error("the signature does not verify")]
    Signature,
    #[error("the authenticator did not verify the user")]
    UserVerification,
    #[error("the authenticator did not report user presence")]
    UserPresence,
    #[error("the attestation does not satisfy the policy: {0}")]
    Attestation(String),
    /// The attestation verifies, and the authenticator metadata reports its
    /// model (`aaguid`) compromised with `status` (`REVOKED`, …).
    #[error("the authenticator metadata reports this authenticator model {status}")]
    AuthenticatorCompromised { aaguid: uuid::Uuid, status: String },
    #[error("the credential is not one this ceremony allows")]
    CredentialNotAllowed,
    #[error("the credential's backup eligibility changed since registration")]
    BackupEligibilityChanged,
    #[error("the relying party failed: {0}")]
    Internal(String),
}

/// The WebAuthn relying party. Its work is CPU only (no IO); finishing a
/// ceremony verifies a signature, which implementations keep off the async
/// workers.
#[async_trait::async_trait]
pub trait RelyingParty: Send + Sync {
    /// Options to create a passkey for `user`, excluding `exclude` (credential ids).
    fn start_registration(
        &self,
        user: PasskeyUser<'_>,
        exclude: &[String],
    ) -> Result<CeremonyStart, CeremonyError>;

    /// Verifies an authenticator's attestation response (`RegistrationResponseJSON`).
    async fn finish_registration(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedRegistration, CeremonyError>;

    /// Options to assert one of `allow`.
    fn start_authentication(&self, allow: &[StoredPasskey])
    -> Result<CeremonyStart, CeremonyError>;

    /// Verifies an authenticator's assertion response (`AuthenticationResponseJSON`).
    /// Counter rules are the domain's: the relying party reports the counter.
    async fn finish_authentication(
        &self,
        state: &[u8],
        response: &Value,
    ) -> Result<VerifiedAssertion, CeremonyError>;
}

/// What to do when an assertion's signature counter does not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterPolicy {
    /// Refuse the assertion (the authenticator may be cloned). Audited.
    #[default]
    Enforce,
    /// Accept it, and audit the regression as a security event.
    Warn,
}

/// What to do with passkeys that can be backed up (synced), `BE=1`. These
/// passkeys are meant to be bound to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupPolicy {
    /// Refuse to register them; a credential whose BE flag changes is refused.
    Reject,
    /// Accept them, auditing each as a security event.
    Warn,
    /// Accept them.
    #[default]
    Allow,
}

impl CounterPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
        }
    }
}

impl BackupPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Warn => "warn",
            Self::Allow => "allow",
        }
    }
}
