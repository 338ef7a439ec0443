//! Credentials: a user's device-bound passkeys and their lifecycle
//! (`active` → `suspended` ⇄ `active`; `revoked`, terminal, from either).

pub mod export;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::flow::{FlowId, string_enum};
use crate::user::UserId;

/// The kinds of authenticator the operator's metadata names, by AAGUID
/// ("iCloud Keychain", a security key's model). Empty when no metadata is
/// configured; a credential whose AAGUID it does not name has no name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticatorNames(HashMap<Uuid, String>);

impl AuthenticatorNames {
    pub fn new(names: HashMap<Uuid, String>) -> Self {
        Self(names)
    }

    /// The name of the authenticator model `aaguid` identifies. The all-zero
    /// AAGUID (no attestation) names no model.
    pub fn name_of(&self, aaguid: Option<Uuid>) -> Option<&str> {
        aaguid
            .filter(|a| !a.is_nil())
            .and_then(|a| self.0.get(&a))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

string_enum! {
    CredentialStatus {
        Active = "active",
        Suspended = "suspended",
        Revoked = "revoked",
    }
}

impl CredentialStatus {
    /// Whether an operator or a flow may move a credential from `self` to `to`.
    pub fn can_become(self, to: Self) -> bool {
        matches!(
            (self, to),
            (Self::Active, Self::Suspended)
                | (Self::Suspended, Self::Active)
                | (Self::Active | Self::Suspended, Self::Revoked)
        )
    }
}

/// The WebAuthn credential id: unpadded base64url of 1–1023 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebAuthnId(String);

impl WebAuthnId {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| "must be unpadded base64url")?;
        if bytes.is_empty() || bytes.len() > 1023 {
            return Err("must decode to 1 to 1023 bytes");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: Uuid,
    pub user_id: UserId,
    pub webauthn_id: WebAuthnId,
    /// COSE public key, when the relying party reports it.
    pub public_key: Option<Vec<u8>>,
    pub aaguid: Option<Uuid>,
    pub sign_count: u32,
    pub transports: Vec<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub platform: Option<String>,
    pub device_label: Option<String>,
    /// Registered in `builtin` mode: what the built-in relying party verified.
    pub passkey: Option<RegisteredPasskey>,
    pub created_by_flow: FlowId,
    pub status: CredentialStatus,
    pub status_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A passkey the built-in relying party registered: what it verified, and its
/// own stored form of the credential (public, no secret), which it needs to
/// verify the passkey's assertions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisteredPasskey {
    /// The authenticator verified the user at registration.
    pub user_verified: bool,
    /// The attestation statement's format (`none`, `packed`, …).
    pub attestation_format: String,
    /// The attestation chained to a configured root for an allowed AAGUID.
    pub attestation_verified: bool,
    /// The relying party's stored form of the credential.
    pub data: serde_json::Value,
}

/// Whether a reported signature counter is acceptable after `stored`:
/// it must grow, unless the authenticator keeps no counter (both zero).
pub fn counter_is_valid(stored: u32, reported: u32) -> bool {
    reported > stored || (stored == 0 && reported == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_transitions() {
        use CredentialStatus::*;
        assert!(Active.can_become(Suspended));
        assert!(Suspended.can_become(Active));
        assert!(Active.can_become(Revoked));
        assert!(Suspended.can_become(Revoked));
        assert!(!Revoked.can_become(Active));
        assert!(!Revoked.can_become(Suspended));
        assert!(!Active.can_become(Active));
    }

    #[test]
    fn counters_must_grow_unless_unused() {
        assert!(counter_is_valid(0, 0));
        assert!(counter_is_valid(0, 1));
        assert!(counter_is_valid(5, 6));
        assert!(!counter_is_valid(5, 5));
        assert!(!counter_is_valid(5, 4));
        assert!(!counter_is_valid(5, 0));
    }

    #[test]
    fn webauthn_ids_are_base64url() {
        assert!(WebAuthnId::parse("AQID").is_ok());
        assert!(WebAuthnId::parse("").is_err());
        assert!(WebAuthnId::parse("AQID==").is_err());
        assert!(WebAuthnId::parse("a+b/").is_err());
        assert!(WebAuthnId::parse(&"A".repeat(1400)).is_err());
    }
}
