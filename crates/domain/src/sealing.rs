//! Sealing of sensitive values at rest (biometric references, IDV tokens,
//! applicant ids, transaction contexts) with AES-256-GCM.
//!
//! A sealed value carries the id of the key that sealed it, and is bound to the
//! row and column it belongs to through the associated data: a ciphertext copied
//! into another row, or another column, fails to open.
//!
//! Layout: `0x01 | key-id length (1 byte) | key id | nonce (12 bytes) | ciphertext+tag`.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::{Zeroize, Zeroizing};

use crate::ids;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// The identifier stored with every sealed value: 1–64 of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(KeyError::KeyIdLength(raw.chars().count()));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(KeyError::KeyIdCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a key or key id was refused. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("expected unpadded base64url (A-Z a-z 0-9 - _, no '=' padding)")]
    NotBase64Url,
    #[error("expected unpadded base64url without '=' padding")]
    Padded,
    #[error("expected exactly 32 bytes once decoded, got {0}")]
    WrongLength(usize),
    #[error("expected 1 to 64 characters, got {0}")]
    KeyIdLength(usize),
    #[error("expected only A-Z, a-z, 0-9, '.', '_', ':' or '-'")]
    KeyIdCharacter,
    #[error("key id {0:?} is configured twice")]
    DuplicateKeyId(String),
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value failed authentication (wrong key, row or column, or altered)")]
    Authentication,
}

/// Where a sealed value lives; part of the associated data.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// `table.column`, e.g. `biometric_references.token`.
    pub slot: &'static str,
    /// The owning row's primary key bytes.
    pub row: &'a [u8],
}

/// The data-encryption key and its id. `Debug` never prints the key.
/// Clones share one copy of the key material (every request's state holds
/// the key), which is wiped when the last clone is dropped.
#[derive(Clone)]
pub struct DataKey(Arc<KeyMaterial>);

struct KeyMaterial {
    id: KeyId,
    cipher: Aes256Gcm,
    /// The audit trail's sealing key, derived from the data key (HKDF-SHA256),
    /// so operators keep one secret and the two uses never share a key.
    audit: Zeroizing<[u8; KEY_LEN]>,
    /// The key of keyed digests ([`DataKey::digest`]), derived the same way
    /// under another label.
    digest: Zeroizing<[u8; KEY_LEN]>,
    /// Earlier keys, for opening what they sealed (never for sealing).
    previous: Vec<EarlierKey>,
}

/// An earlier data-encryption key: it opens values and verifies audit seals
/// made under it.
struct EarlierKey {
    id: KeyId,
    cipher: Aes256Gcm,
    audit: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.0.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl DataKey {
    /// Decodes an unpadded base64url key of exactly 32 bytes.
    pub fn from_base64url(id: KeyId, encoded: &str) -> Result<Self, KeyError> {
        if encoded.contains('=') {
            return Err(KeyError::Padded);
        }
        let mut bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(encoded.trim_end_matches(['\n', '\r']))
                .map_err(|_| KeyError::NotBase64Url)?,
        );
        if bytes.len() != KEY_LEN {
            let len = bytes.len();
            bytes.zeroize();
            return Err(KeyError::WrongLength(len));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength(KEY_LEN))?;
        let audit = derive(&bytes, AUDIT_LABEL);
        let digest = derive(&bytes, DIGEST_LABEL);
        Ok(Self(Arc::new(KeyMaterial {
            id,
            cipher,
            audit,
            digest,
            previous: Vec::new(),
        })))
    }

    /// A fresh random key, returned with its unpadded base64url encoding (for `dev`).
    pub fn generate(id: KeyId) -> (Self, Zeroizing<String>) {
        let bytes = Zeroizing::new(ids::random_bytes::<KEY_LEN>());
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(*bytes));
        let cipher = Aes256Gcm::new((&*bytes).into());
        let audit = derive(&*bytes, AUDIT_LABEL);
        let digest = derive(&*bytes, DIGEST_LABEL);
        (
            Self(Arc::new(KeyMaterial {
                id,
                cipher,
                audit,
                digest,
                previous: Vec::new(),
            })),
            encoded,
        )
    }

    /// This key, which seals, with `earlier` keys that only open what they
    /// sealed (and verify the audit seals they made). Refused when two keys
    /// share an id.
    pub fn with_earlier(self, earlier: &[DataKey]) -> Result<Self, KeyError> {
        let mut previous = Vec::with_capacity(earlier.len());
        for key in earlier {
            let id = &key.0.id;
            if *id == self.0.id || previous.iter().any(|p: &EarlierKey| p.id == *id) {
                return Err(KeyError::DuplicateKeyId(id.as_str().to_owned()));
            }
            previous.push(EarlierKey {
                id: id.clone(),
                cipher: key.0.cipher.clone(),
                audit: key.0.audit.clone(),
            });
        }
        let current = &self.0;
        Ok(Self(Arc::new(KeyMaterial {
            id: current.id.clone(),
            cipher: current.cipher.clone(),
            audit: current.audit.clone(),
            digest: current.digest.clone(),
            previous,
        })))
    }

    pub fn id(&self) -> &KeyId {
        &self.0.id
    }

    /// The ids of the earlier keys configured, oldest configuration order.
    pub fn earlier_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.0.previous.iter().map(|p| &p.id)
    }

    /// The key that seals the audit trail (see [`crate::audit::integrity`]).
    pub fn audit_key(&self) -> crate::audit::integrity::AuditKey {
        crate::audit::integrity::AuditKey::new(self.0.id.clone(), *self.0.audit)
    }

    /// The audit trail's keys: the current one seals, earlier ones verify
    /// the seals they made.
    pub fn audit_keys(&self) -> crate::audit::integrity::AuditKeys {
        crate::audit::integrity::AuditKeys::new(
            self.audit_key(),
            self.0
                .previous
                .iter()
                .map(|p| crate::audit::integrity::AuditKey::new(p.id.clone(), *p.audit))
                .collect(),
        )
    }

    /// A keyed digest (HMAC-SHA256, lowercase hex) of `value` for `slot`:
    /// what is stored and audited in place of a plain hash of a low-entropy
    /// value (a payment's payee and amount), so that a reader of the database
    /// or of an audit export cannot confirm guesses. The slot keeps digests
    /// of different kinds of value apart. Recorded next to [`DataKey::id`],
    /// the key it was made under.
    pub fn digest(&self, slot: &str, value: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&*self.0.digest)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(slot.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Seals `plaintext` for `binding` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], binding: Binding<'_>) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = ids::random_bytes();
        let aad = associated_data(&self.0.id, binding);
        // Encryption only fails for inputs beyond GCM's 64 GiB limit, which no
        // caller can reach through size-limited requests.
        let ciphertext = self
            .0
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let id = self.0.id.as_str().as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.push(id.len() as u8); // KeyId::parse caps the length at 64.
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a value sealed by [`DataKey::seal`] for the same binding.
    pub fn open(
        &self,
        sealed: &[u8],
        binding: Binding<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let Parts {
            key_id,
            nonce,
            ciphertext,
        } = split(sealed)?;
        let (id, cipher) = if key_id == self.0.id.as_str().as_bytes() {
            (&self.0.id, &self.0.cipher)
        } else {
            match self
                .0
                .previous
                .iter()
                .find(|p| p.id.as_str().as_bytes() == key_id)
            {
                Some(earlier) => (&earlier.id, &earlier.cipher),
                None => {
                    return Err(SealError::UnknownKey(
                        String::from_utf8_lossy(key_id).into_owned(),
                    ));
                }
            }
        };
        let aad = associated_data(id, binding);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Authentication)
    }
}

const AUDIT_LABEL: &[u8] = b"biometric-passkey audit-trail seal v1";
const DIGEST_LABEL: &[u8] = b"biometric-passkey keyed digest v1";

/// A key for one use, derived from the data key (HKDF-SHA256), so operators
/// keep one secret and no two uses share a key.
fn derive(data_key: &[u8], label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // Expanding 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, data_key).expand(label, &mut *out);
    out
}

/// How long `plaintext_len` bytes are once sealed under `key_id`: the size of
/// what a sealed column holds, for storage sized without sealing anything.
pub fn sealed_len(key_id: &KeyId, plaintext_len: usize) -> usize {
    2 + key_id.as_str().len() + NONCE_LEN + plaintext_len + TAG_LEN
}

/// The key id a sealed value names, without opening it.
pub fn sealed_key_id(sealed: &[u8]) -> Result<String, SealError> {
    split(sealed).map(|parts| String::from_utf8_lossy(parts.key_id).into_owned())
}

/// The parts of a sealed value: key id, nonce, ciphertext with tag.
struct Parts<'a> {
    key_id: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn split(sealed: &[u8]) -> Result<Parts<'_>, SealError> {
    let [version, id_len, rest @ ..] = sealed else {
        return Err(SealError::Malformed);
    };
    if *version != FORMAT_V1 {
        return Err(SealError::Malformed);
    }
    let id_len = usize::from(*id_len);
    if rest.len() < id_len + NONCE_LEN + 16 {
        return Err(SealError::Malformed);
    }
    let (key_id, rest) = rest.split_at(id_len);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    Ok(Parts {
        key_id,
        nonce,
        ciphertext,
    })
}

fn associated_data(key_id: &KeyId, binding: Binding<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + binding.slot.len() + key_id.0.len() + binding.row.len());
    aad.extend_from_slice(b"biometric-passkey/v1\0");
    aad.extend_from_slice(binding.slot.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key_id.0.as_bytes());
    aad.push(0);
    aad.extend_from_slice(binding.row);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key of the deployment guide's evaluation setup (bytes 1..=32).
    const EXAMPLE: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

    fn key() -> DataKey {
        DataKey::from_base64url(KeyId::parse("default").unwrap(), EXAMPLE).unwrap()
    }

    const ROW_A: Binding<'static> = Binding {
        slot: "biometric_references.token",
        row: b"row-a",
    };

    #[test]
    fn earlier_keys_open_what_they_sealed_and_never_seal() {
        let (old, _) = DataKey::generate(KeyId::parse("key-2025").unwrap());
        let sealed_before = old.seal(b"reference", ROW_A);
        let (new, _) = DataKey::generate(KeyId::parse("key-2026").unwrap());
        assert_eq!(
            new.open(&sealed_before, ROW_A),
            Err(SealError::UnknownKey("key-2025".into())),
            "an unconfigured key is named, not guessed"
        );
        let ring = new
            .clone()
            .with_earlier(std::slice::from_ref(&old))
            .unwrap();
        assert_eq!(&**ring.open(&sealed_before, ROW_A).unwrap(), b"reference");
        let sealed_now = ring.seal(b"reference", ROW_A);
        assert_eq!(sealed_key_id(&sealed_now).unwrap(), "key-2026");
        assert_eq!(&**ring.open(&sealed_now, ROW_A).unwrap(), b"reference");
        assert_eq!(
            ring.open(
                &sealed_before,
                Binding {
                    row: b"row-b",
                    ..ROW_A
                }
            ),
            Err(SealError::Authentication),
            "still bound to its row"
        );
        assert_eq!(
            ring.earlier_ids().map(KeyId::as_str).collect::<Vec<_>>(),
            ["key-2025"]
        );
        assert_eq!(
            new.clone().with_earlier(&[old.clone(), old.clone()]).err(),
            Some(KeyError::DuplicateKeyId("key-2025".into()))
        );
        let (same_id, _) = DataKey::generate(KeyId::parse("key-2026").unwrap());
        assert_eq!(
            new.with_earlier(&[same_id]).err(),
            Some(KeyError::DuplicateKeyId("key-2026".into()))
        );
    }

    #[test]
    fn keyed_digests_depend_on_the_key_and_the_slot_not_on_the_plain_hash() {
        use sha2::Digest;
        let value = br#"{"amount":"10.00","payee":"ACME"}"#;
        let digest = key().digest("flows.transaction_context", value);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, key().digest("flows.transaction_context", value));
        let plain: String = sha2::Sha256::digest(value)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(digest, plain);
        assert_ne!(digest, key().digest("another.slot", value));
        let (other, _) = DataKey::generate(KeyId::parse("default").unwrap());
        assert_ne!(digest, other.digest("flows.transaction_context", value));
    }

    #[test]
    fn round_trips_for_the_same_binding() {
        let sealed = key().seal(b"secret token", ROW_A);
        assert_eq!(&**key().open(&sealed, ROW_A).unwrap(), b"secret token");
        assert_eq!(sealed_key_id(&sealed).unwrap(), "default");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn sealed_len_is_the_length_of_a_sealed_value() {
        for plaintext in [&b""[..], b"x", b"secret token"] {
            let sealed = key().seal(plaintext, ROW_A);
            assert_eq!(sealed.len(), sealed_len(key().id(), plaintext.len()));
        }
    }

    #[test]
    fn nonces_differ_between_seals() {
        assert_ne!(key().seal(b"x", ROW_A), key().seal(b"x", ROW_A));
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_fails() {
        let sealed = key().seal(b"secret", ROW_A);
        let other_row = Binding {
            row: b"row-b",
            ..ROW_A
        };
        let other_slot = Binding {
            slot: "flows.sdk_token",
            ..ROW_A
        };
        assert_eq!(
            key().open(&sealed, other_row),
            Err(SealError::Authentication)
        );
        assert_eq!(
            key().open(&sealed, other_slot),
            Err(SealError::Authentication)
        );
    }

    #[test]
    fn tampering_and_other_keys_are_detected() {
        let mut sealed = key().seal(b"secret", ROW_A);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(key().open(&sealed, ROW_A), Err(SealError::Authentication));

        let (other, _) = DataKey::generate(KeyId::parse("default").unwrap());
        let sealed = key().seal(b"secret", ROW_A);
        assert_eq!(other.open(&sealed, ROW_A), Err(SealError::Authentication));

        let (renamed, _) = DataKey::generate(KeyId::parse("k2").unwrap());
        assert_eq!(
            renamed.open(&sealed, ROW_A),
            Err(SealError::UnknownKey("default".into()))
        );
        assert_eq!(key().open(&[1, 2, 3], ROW_A), Err(SealError::Malformed));
    }

    #[test]
    fn key_parsing_is_strict() {
        let id = || KeyId::parse("default").unwrap();
        assert!(DataKey::from_base64url(id(), EXAMPLE).is_ok());
        assert_eq!(
            DataKey::from_base64url(id(), &format!("{EXAMPLE}=")).unwrap_err(),
            KeyError::Padded
        );
        assert_eq!(
            DataKey::from_base64url(id(), "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw")
                .unwrap_err(),
            KeyError::WrongLength(31)
        );
        assert_eq!(
            DataKey::from_base64url(id(), "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA+")
                .unwrap_err(),
            KeyError::NotBase64Url
        );
        // Standard base64 alphabet characters are not base64url.
        assert_eq!(
            DataKey::from_base64url(id(), "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH/A")
                .unwrap_err(),
            KeyError::NotBase64Url
        );
    }

    #[test]
    fn key_ids_are_validated() {
        assert!(KeyId::parse("prod-2026.01:a_b").is_ok());
        assert!(KeyId::parse(&"k".repeat(64)).is_ok());
        assert_eq!(
            KeyId::parse(&"k".repeat(65)),
            Err(KeyError::KeyIdLength(65))
        );
        assert_eq!(KeyId::parse(""), Err(KeyError::KeyIdLength(0)));
        assert_eq!(KeyId::parse("a b"), Err(KeyError::KeyIdCharacter));
        assert_eq!(KeyId::parse("a/b"), Err(KeyError::KeyIdCharacter));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let printed = format!("{:?}", key());
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains(EXAMPLE));
    }
}
