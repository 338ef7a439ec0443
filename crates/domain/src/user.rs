//! Users: the customer's identifier, validated once at the edge, and the
//! pseudonym the IDV provider and the audit trail see instead.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids;

/// The customer's own identifier for a user: 1–128 characters of `A-Z a-z 0-9 . _ ~ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ExternalUserId(String);

/// Why an `external_user_id` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalUserIdError {
    #[error("external_user_id must not be empty")]
    Empty,
    #[error("external_user_id must be at most 128 characters, got {0}")]
    TooLong(usize),
    #[error("external_user_id may contain only A-Z, a-z, 0-9, '.', '_', '~' and '-'")]
    InvalidCharacter,
}

impl ExternalUserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ExternalUserIdError> {
        if raw.is_empty() {
            return Err(ExternalUserIdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(ExternalUserIdError::TooLong(raw.chars().count()));
        }
        if !raw.bytes().all(is_url_safe) {
            return Err(ExternalUserIdError::InvalidCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

impl<'de> Deserialize<'de> for ExternalUserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ExternalUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Our internal, stable id of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The pseudonymous key the IDV provider knows the user by (`customer_user_id`),
/// also kept in the audit trail after the user is deleted. Random, so it reveals
/// nothing about the customer's identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub fn generate() -> Self {
        let bytes: [u8; 16] = ids::random_bytes();
        Self(format!("cu_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Rebuilds a pseudonym read from storage.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub external_id: ExternalUserId,
    pub pseudonym: Pseudonym,
    /// The provider-side applicant id, sealed (bound to `users.idv_applicant`).
    pub idv_applicant_sealed: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

impl User {
    /// A user seen for the first time at `now`.
    pub fn new(external_id: ExternalUserId, now: OffsetDateTime) -> Self {
        Self {
            id: UserId(ids::new_id(now)),
            external_id,
            pseudonym: Pseudonym::generate(),
            idv_applicant_sealed: None,
            created_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_user_id_accepts_the_url_safe_alphabet() {
        for ok in ["a", "user-1", "A.b_c~d-9", &"x".repeat(128)] {
            assert!(ExternalUserId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn external_user_id_refuses_everything_else() {
        assert_eq!(ExternalUserId::parse(""), Err(ExternalUserIdError::Empty));
        assert_eq!(
            ExternalUserId::parse(&"x".repeat(129)),
            Err(ExternalUserIdError::TooLong(129))
        );
        for bad in ["a b", "a/b", "é", "a+b", "a%20", "a\0", "a:b"] {
            assert_eq!(
                ExternalUserId::parse(bad),
                Err(ExternalUserIdError::InvalidCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pseudonyms_are_random_and_prefixed() {
        let a = Pseudonym::generate();
        let b = Pseudonym::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("cu_"));
        assert_eq!(a.as_str().len(), 3 + 22);
    }
}
