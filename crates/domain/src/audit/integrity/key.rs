//! The audit key: each event's keyed tag and each seal's MAC.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{Seal, SealHeader};
use crate::audit::NewAuditEvent;
use crate::sealing::KeyId;

type HmacSha256 = Hmac<Sha256>;

/// Length of an event's tag: a truncated HMAC-SHA256.
pub const TAG_LEN: usize = 16;
/// A keyed digest of one event's content (its position excluded).
pub type EventTag = [u8; TAG_LEN];
/// A seal's HMAC.
pub type SealMac = [u8; 32];

/// The key that tags events and seals. `Debug` never prints it.
#[derive(Clone)]
pub struct AuditKey {
    id: KeyId,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// The keys a verification knows seals by.
pub trait AuditKeyring {
    /// The key with this id, when configured.
    fn key(&self, id: &str) -> Option<&AuditKey>;
    /// Every configured key.
    fn all(&self) -> Vec<&AuditKey>;
}

impl AuditKeyring for AuditKey {
    fn key(&self, id: &str) -> Option<&AuditKey> {
        (self.id() == id).then_some(self)
    }

    fn all(&self) -> Vec<&AuditKey> {
        vec![self]
    }
}

/// The current audit key, which seals, and the earlier ones, which verify
/// the seals made under them (see `DataKey::audit_keys`).
#[derive(Debug)]
pub struct AuditKeys {
    current: AuditKey,
    earlier: Vec<AuditKey>,
}

impl AuditKeys {
    pub fn new(current: AuditKey, earlier: Vec<AuditKey>) -> Self {
        Self { current, earlier }
    }

    pub fn current(&self) -> &AuditKey {
        &self.current
    }
}

impl From<AuditKey> for AuditKeys {
    fn from(current: AuditKey) -> Self {
        Self::new(current, Vec::new())
    }
}

impl AuditKeyring for AuditKeys {
    fn key(&self, id: &str) -> Option<&AuditKey> {
        std::iter::once(&self.current)
            .chain(&self.earlier)
            .find(|k| k.id() == id)
    }

    fn all(&self) -> Vec<&AuditKey> {
        std::iter::once(&self.current)
            .chain(&self.earlier)
            .collect()
    }
}

impl AuditKey {
    pub(crate) fn new(id: KeyId, key: [u8; 32]) -> Self {
        Self {
            id,
            key: Zeroizing::new(key),
        }
    }

    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    fn mac(&self, domain: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&*self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(domain);
        mac
    }

    /// The tag of an event's content: every field but its position.
    pub fn tag(&self, event: &NewAuditEvent) -> EventTag {
        let mut mac = self.mac(b"bp.audit.event.v1");
        encode_event(&mut mac, event);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn seal_mac(&self, seal: &SealHeader, entries_digest: &[u8; 32]) -> HmacSha256 {
        let mut mac = self.mac(b"bp.audit.seal.v1");
        mac.update(&seal.seal_no.to_be_bytes());
        mac.update(seal.month.to_string().as_bytes());
        mac.update(&seal.from_seq.to_be_bytes());
        mac.update(&seal.to_seq.to_be_bytes());
        mac.update(&seal.event_count.to_be_bytes());
        mac.update(entries_digest);
        mac.update(&seal.prev_mac.unwrap_or([0u8; 32]));
        field(&mut mac, seal.key_id.as_bytes());
        mac.update(&micros(seal.sealed_at).to_be_bytes());
        mac
    }

    /// Makes `seal` this key's: names this key and computes the MAC of its
    /// header (with its `prev_mac`) and entries.
    pub fn sign(&self, seal: &mut Seal) {
        seal.header.key_id = self.id().to_owned();
        seal.header.mac = self
            .seal_mac(&seal.header, &seal.entries_digest())
            .finalize()
            .into_bytes()
            .into();
    }

    /// Whether a seal was made with this key and is unaltered (constant time).
    pub fn authenticates(&self, seal: &Seal) -> bool {
        self.seal_mac(&seal.header, &seal.entries_digest())
            .verify_slice(&seal.header.mac)
            .is_ok()
    }
}

fn micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64
}

/// Length-prefixed, so no two different field lists encode alike.
fn field(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn optional(mac: &mut HmacSha256, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            mac.update(&[1]);
            field(mac, bytes);
        }
        None => mac.update(&[0]),
    }
}

fn encode_event(mac: &mut HmacSha256, e: &NewAuditEvent) {
    field(mac, e.id.as_bytes());
    mac.update(&micros(e.occurred_at).to_be_bytes());
    field(mac, e.event_type.as_str().as_bytes());
    field(mac, e.actor.kind().as_bytes());
    optional(mac, e.actor.id().map(str::as_bytes));
    optional(
        mac,
        e.subject
            .user_id
            .as_ref()
            .map(|u| u.0.as_bytes().as_slice()),
    );
    optional(
        mac,
        e.subject
            .user_pseudonym
            .as_ref()
            .map(|p| p.as_str().as_bytes()),
    );
    optional(
        mac,
        e.subject
            .credential_id
            .as_ref()
            .map(|c| c.as_bytes().as_slice()),
    );
    optional(
        mac,
        e.subject.flow_id.as_ref().map(|f| f.as_bytes().as_slice()),
    );
    field(mac, e.outcome.as_str().as_bytes());
    optional(mac, e.reason.as_deref().map(str::as_bytes));
    optional(mac, e.correlation_id.as_deref().map(str::as_bytes));
    // serde_json's maps are ordered by key, so equal values encode alike
    // whatever order the database returns their keys in.
    field(
        mac,
        serde_json::to_string(&e.details)
            .unwrap_or_default()
            .as_bytes(),
    );
}
