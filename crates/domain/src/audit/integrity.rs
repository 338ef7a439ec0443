//! Tamper evidence for the audit trail.
//!
//! Audit maintenance *seals* the trail in batches: for the events committed
//! since the last seal it records, per calendar month, each event's position
//! (`seq`) and a keyed tag over its content, and chains the seals one to the
//! next with an HMAC. A seal cannot be forged or re-chained without the audit
//! key, which is derived from the data-encryption key and never stored.
//!
//! Verification recomputes every tag and seal and reports, by position:
//! an event whose content changed ([`Finding::Edited`]), a sealed event that is
//! gone ([`Finding::Deleted`]), an event found at another position than the one
//! it was sealed at ([`Finding::Reordered`]), an event inside a sealed range
//! that no seal lists ([`Finding::Inserted`]), and seals that are forged,
//! missing or out of chain.
//!
//! What it does not prove: events written after the last seal (at most one
//! maintenance interval) are not yet covered; and someone holding the database
//! *and* able to delete the newest seals together with their events leaves a
//! shorter, consistent trail. The seal head is logged after every sealing run
//! and recorded in archive manifests so it can be compared with copies kept
//! outside the database.

use std::collections::{BTreeMap, HashMap, HashSet};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::month::Month;
use super::{AuditEvent, NewAuditEvent};
use crate::sealing::KeyId;

type HmacSha256 = Hmac<Sha256>;

/// Length of an event's tag: a truncated HMAC-SHA256.
pub const TAG_LEN: usize = 16;
/// A keyed digest of one event's content (its position excluded).
pub type EventTag = [u8; TAG_LEN];
/// A seal's HMAC.
pub type SealMac = [u8; 32];

/// Bytes per sealed entry: `seq` (8, big-endian) and the tag.
const ENTRY_LEN: usize = 8 + TAG_LEN;

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

/// One sealed event: where it was and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealEntry {
    pub seq: i64,
    pub tag: EventTag,
}

/// Everything about a seal but its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealHeader {
    /// 1, 2, 3… without gaps.
    pub seal_no: i64,
    /// The month of every event the seal lists.
    pub month: Month,
    /// The sealed range of positions: `from_seq < seq <= to_seq`.
    pub from_seq: i64,
    pub to_seq: i64,
    pub event_count: i64,
    pub key_id: String,
    /// The previous seal's MAC; `None` for the first seal.
    pub prev_mac: Option<SealMac>,
    pub mac: SealMac,
    pub sealed_at: OffsetDateTime,
}

/// A seal: the events of one month within one range of positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    pub header: SealHeader,
    pub entries: Vec<SealEntry>,
}

/// Sealed entries that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealed entries are {0} bytes, not a whole number of {ENTRY_LEN}-byte entries")]
pub struct BadEntries(pub usize);

impl Seal {
    /// The stored form of the entries.
    pub fn encode_entries(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for entry in &self.entries {
            out.extend_from_slice(&entry.seq.to_be_bytes());
            out.extend_from_slice(&entry.tag);
        }
        out
    }

    pub fn decode_entries(bytes: &[u8]) -> Result<Vec<SealEntry>, BadEntries> {
        if !bytes.len().is_multiple_of(ENTRY_LEN) {
            return Err(BadEntries(bytes.len()));
        }
        Ok(bytes
            .chunks_exact(ENTRY_LEN)
            .map(|chunk| {
                let (seq, tag) = chunk.split_at(8);
                let mut seq_bytes = [0u8; 8];
                seq_bytes.copy_from_slice(seq);
                let mut tag_bytes = [0u8; TAG_LEN];
                tag_bytes.copy_from_slice(tag);
                SealEntry {
                    seq: i64::from_be_bytes(seq_bytes),
                    tag: tag_bytes,
                }
            })
            .collect())
    }

    fn entries_digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode_entries()).into()
    }
}

/// Where the chain of seals ends: what the next seal links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealHead {
    pub seal_no: i64,
    pub to_seq: i64,
    pub mac: SealMac,
}

impl From<&SealHeader> for SealHead {
    fn from(h: &SealHeader) -> Self {
        Self {
            seal_no: h.seal_no,
            to_seq: h.to_seq,
            mac: h.mac,
        }
    }
}

/// Seals the events at positions `after < seq <= upto` (given in `seq` order):
/// one seal per month they fall in, chained after `head`. Empty when there is
/// nothing to seal.
pub fn seal_batch(
    key: &AuditKey,
    head: Option<&SealHead>,
    upto: i64,
    events: &[AuditEvent],
    sealed_at: OffsetDateTime,
) -> Vec<Seal> {
    let after = head.map_or(0, |h| h.to_seq);
    let mut by_month: BTreeMap<Month, Vec<SealEntry>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.seq > after && e.seq <= upto) {
        by_month
            .entry(Month::containing(e.event.occurred_at))
            .or_default()
            .push(SealEntry {
                seq: e.seq,
                tag: key.tag(&e.event),
            });
    }
    let mut prev = head.map(|h| (h.seal_no, h.mac));
    let mut seals = Vec::with_capacity(by_month.len());
    for (month, mut entries) in by_month {
        entries.sort_by_key(|e| e.seq);
        let mut seal = Seal {
            header: SealHeader {
                seal_no: prev.map_or(1, |(no, _)| no + 1),
                month,
                from_seq: after,
                to_seq: upto,
                event_count: entries.len() as i64,
                key_id: key.id().to_owned(),
                prev_mac: prev.map(|(_, mac)| mac),
                mac: [0u8; 32],
                sealed_at,
            },
            entries,
        };
        key.sign(&mut seal);
        prev = Some((seal.header.seal_no, seal.header.mac));
        seals.push(seal);
    }
    seals
}

/// Something verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The event at `seq` is not what was sealed there.
    Edited { month: Month, seq: i64, id: Uuid },
    /// A sealed event is gone.
    Deleted {
        month: Month,
        seq: i64,
        seal_no: i64,
    },
    /// The event at `seq` was sealed at another position.
    Reordered {
        month: Month,
        seq: i64,
        sealed_at_seq: i64,
        id: Uuid,
    },
    /// An event inside a sealed range that no seal of its month lists.
    Inserted { month: Month, seq: i64, id: Uuid },
    /// A seal whose MAC does not verify under the audit key.
    ForgedSeal { seal_no: i64 },
    /// Seal numbers jump: seals were removed.
    MissingSeals { after: i64, next: i64 },
    /// A seal does not link to the one before it.
    BrokenChain { seal_no: i64 },
    /// A seal made with a key that is not configured; it cannot be checked.
    UnverifiableSeal { seal_no: i64, key_id: String },
    /// A seal whose stored entries do not decode.
    CorruptSeal { seal_no: i64 },
}

/// Checks the chain of seal headers, given in `seal_no` order in pieces.
#[derive(Debug, Default)]
pub struct ChainCheck {
    prev: Option<(i64, SealMac)>,
    pub seals: u64,
    pub sealed_upto: i64,
    pub findings: Vec<Finding>,
}

impl ChainCheck {
    pub fn feed(&mut self, keys: &impl AuditKeyring, seal: &Seal) {
        let h = &seal.header;
        self.seals += 1;
        self.sealed_upto = self.sealed_upto.max(h.to_seq);
        match self.prev {
            None if h.seal_no != 1 => self.findings.push(Finding::MissingSeals {
                after: 0,
                next: h.seal_no,
            }),
            Some((no, _)) if h.seal_no != no + 1 => self.findings.push(Finding::MissingSeals {
                after: no,
                next: h.seal_no,
            }),
            _ => {}
        }
        let expected_prev = self.prev.map(|(_, mac)| mac);
        if self.prev.is_some() && h.prev_mac != expected_prev {
            self.findings
                .push(Finding::BrokenChain { seal_no: h.seal_no });
        }
        match keys.key(&h.key_id) {
            None => self.findings.push(Finding::UnverifiableSeal {
                seal_no: h.seal_no,
                key_id: h.key_id.clone(),
            }),
            Some(key) if !key.authenticates(seal) => self
                .findings
                .push(Finding::ForgedSeal { seal_no: h.seal_no }),
            Some(_) => {}
        }
        self.prev = Some((h.seal_no, h.mac));
    }
}

/// Checks one month's stored events against its seals. Feed the events in
/// `seq` order, in as many pieces as convenient, then [`MonthCheck::finish`].
#[derive(Debug)]
pub struct MonthCheck {
    month: Month,
    sealed_upto: i64,
    /// Sealed position → (tag, seal).
    expected: BTreeMap<i64, (EventTag, i64)>,
    /// Seal → the id of the key it was made under (which made its tags).
    seal_keys: HashMap<i64, String>,
    /// Tag → sealed position, to recognise a moved event.
    by_tag: HashMap<EventTag, i64>,
    /// Sealed positions accounted for by a moved event.
    moved: HashSet<i64>,
    pub events: u64,
    pub sealed: u64,
    pub pending: u64,
    /// Sealed under a key that is not configured (the chain reports the seal).
    pub unverifiable: u64,
    pub findings: Vec<Finding>,
}

impl MonthCheck {
    /// `seals` are the month's seals (already authenticated by [`ChainCheck`]);
    /// `sealed_upto` is the highest position any seal covers.
    pub fn new(month: Month, seals: &[Seal], sealed_upto: i64) -> Self {
        let mut expected = BTreeMap::new();
        let mut by_tag = HashMap::new();
        let mut seal_keys = HashMap::new();
        for seal in seals {
            seal_keys.insert(seal.header.seal_no, seal.header.key_id.clone());
            for entry in &seal.entries {
                expected.insert(entry.seq, (entry.tag, seal.header.seal_no));
                by_tag.insert(entry.tag, entry.seq);
            }
        }
        Self {
            month,
            sealed_upto,
            expected,
            seal_keys,
            by_tag,
            moved: HashSet::new(),
            events: 0,
            sealed: 0,
            pending: 0,
            unverifiable: 0,
            findings: Vec::new(),
        }
    }

    pub fn feed(&mut self, keys: &impl AuditKeyring, events: &[AuditEvent]) {
        for e in events {
            self.events += 1;
            let month = self.month;
            let id = e.event.id;
            let sealed_here = self.expected.remove(&e.seq);
            // An event's tag is made under the key of the seal that covers it.
            let sealing_key = sealed_here.map(|(_, seal_no)| {
                self.seal_keys
                    .get(&seal_no)
                    .and_then(|key_id| keys.key(key_id))
            });
            match (sealed_here, sealing_key) {
                (Some(_), Some(None)) => self.unverifiable += 1,
                (Some((sealed, _)), Some(Some(key))) if key.tag(&e.event) == sealed => {
                    self.sealed += 1
                }
                (None, _) if e.seq > self.sealed_upto => self.pending += 1,
                _ => {
                    let moved_from = keys
                        .all()
                        .into_iter()
                        .find_map(|key| self.by_tag.get(&key.tag(&e.event)));
                    let finding = match moved_from {
                        Some(&at) if at != e.seq => {
                            self.moved.insert(at);
                            Finding::Reordered {
                                month,
                                seq: e.seq,
                                sealed_at_seq: at,
                                id,
                            }
                        }
                        _ if sealed_here.is_some() => Finding::Edited {
                            month,
                            seq: e.seq,
                            id,
                        },
                        _ => Finding::Inserted {
                            month,
                            seq: e.seq,
                            id,
                        },
                    };
                    self.findings.push(finding);
                }
            }
        }
    }

    pub fn finish(mut self) -> Self {
        let leftover = std::mem::take(&mut self.expected);
        for (seq, (_, seal_no)) in leftover {
            if !self.moved.contains(&seq) {
                self.findings.push(Finding::Deleted {
                    month: self.month,
                    seq,
                    seal_no,
                });
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::audit::{Actor, AuditEventType, Subject};
    use crate::sealing::DataKey;

    fn new_key(id: &str) -> AuditKey {
        DataKey::generate(KeyId::parse(id).unwrap()).0.audit_key()
    }

    fn events(from_seq: i64, times: &[OffsetDateTime]) -> Vec<AuditEvent> {
        times
            .iter()
            .enumerate()
            .map(|(i, at)| AuditEvent {
                seq: from_seq + i as i64,
                event: NewAuditEvent::new(
                    AuditEventType::FlowCreated,
                    Actor::Integration(None),
                    Subject::default(),
                    *at,
                ),
            })
            .collect()
    }

    fn check(
        key: &impl AuditKeyring,
        seals: &[Seal],
        upto: i64,
        stored: &[AuditEvent],
    ) -> Vec<Finding> {
        let mut chain = ChainCheck::default();
        for seal in seals {
            chain.feed(key, seal);
        }
        let mut findings = chain.findings;
        let month = seals[0].header.month;
        let mine: Vec<Seal> = seals
            .iter()
            .filter(|s| s.header.month == month)
            .cloned()
            .collect();
        let mut check = MonthCheck::new(month, &mine, upto);
        let of_month: Vec<AuditEvent> = stored
            .iter()
            .filter(|e| Month::containing(e.event.occurred_at) == month)
            .cloned()
            .collect();
        check.feed(key, &of_month);
        findings.extend(check.finish().findings);
        findings
    }

    #[test]
    fn seals_made_before_a_key_rotation_verify_with_the_earlier_key() {
        let (old_data, _) = DataKey::generate(KeyId::parse("key-2025").unwrap());
        let (new_data, _) = DataKey::generate(KeyId::parse("key-2026").unwrap());
        let at = datetime!(2026-10-10 10:00 UTC);
        let evs = events(1, &[at, at, at, at]);
        // Two events sealed under the old key, then the rotation, then two more
        // in the same month under the new one.
        let before = seal_batch(&old_data.audit_key(), None, 2, &evs, at);
        let after = seal_batch(
            &new_data.audit_key(),
            Some(&SealHead::from(&before[0].header)),
            4,
            &evs,
            at,
        );
        let seals: Vec<Seal> = before.into_iter().chain(after).collect();
        let ring = new_data
            .clone()
            .with_earlier(std::slice::from_ref(&old_data))
            .unwrap()
            .audit_keys();
        assert_eq!(check(&ring, &seals, 4, &evs), []);
        // An edit is still found, under either key.
        let mut edited = evs.clone();
        edited[0].event.reason = Some("changed".into());
        edited[3].event.reason = Some("changed".into());
        assert_eq!(check(&ring, &seals, 4, &edited).len(), 2);
        // Without the earlier key, its seal is reported as unverifiable, and
        // the events it covers are not taken for edits.
        let findings = check(&new_data.audit_keys(), &seals, 4, &evs);
        assert_eq!(
            findings,
            [Finding::UnverifiableSeal {
                seal_no: 1,
                key_id: "key-2025".into()
            }]
        );
    }

    #[test]
    fn a_batch_is_sealed_per_month_and_chained() {
        let key = new_key("k1");
        let at = datetime!(2026-10-31 23:59:59 UTC);
        let evs = events(1, &[at, at + time::Duration::seconds(2), at]);
        let seals = seal_batch(&key, None, 3, &evs, at);
        assert_eq!(seals.len(), 2, "October and November");
        assert_eq!(seals[0].header.month.to_string(), "2026-10");
        assert_eq!(
            seals[0].entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(seals[1].header.prev_mac, Some(seals[0].header.mac));
        assert!(seals.iter().all(|s| key.authenticates(s)));
        let next = seal_batch(
            &key,
            Some(&SealHead::from(&seals[1].header)),
            5,
            &events(4, &[at]),
            at,
        );
        assert_eq!(next[0].header.seal_no, 3);
        assert_eq!(next[0].header.from_seq, 3);
        assert_eq!(
            Seal::decode_entries(&next[0].encode_entries()).unwrap(),
            next[0].entries
        );
        assert!(check(&key, &seals, 3, &evs).is_empty());
    }

    #[test]
    fn edits_deletions_moves_and_insertions_are_reported_by_position() {
        let key = new_key("k1");
        let at = datetime!(2026-11-02 10:00 UTC);
        let times: Vec<_> = (0..6).map(|i| at + time::Duration::seconds(i)).collect();
        let evs = events(1, &times);
        let seals = seal_batch(&key, None, 6, &evs, at);

        let mut edited = evs.clone();
        edited[1].event.reason = Some("changed".into());
        assert!(matches!(
            check(&key, &seals, 6, &edited)[..],
            [Finding::Edited { seq: 2, .. }]
        ));

        let mut deleted = evs.clone();
        deleted.remove(2);
        assert!(matches!(
            check(&key, &seals, 6, &deleted)[..],
            [Finding::Deleted { seq: 3, .. }]
        ));

        let mut swapped = evs.clone();
        swapped.swap(3, 4);
        swapped[3].seq = 4;
        swapped[4].seq = 5;
        assert!(matches!(
            check(&key, &seals, 6, &swapped)[..],
            [
                Finding::Reordered {
                    seq: 4,
                    sealed_at_seq: 5,
                    ..
                },
                Finding::Reordered {
                    seq: 5,
                    sealed_at_seq: 4,
                    ..
                }
            ]
        ));

        let mut inserted = evs.clone();
        inserted.insert(0, events(0, &[at]).remove(0));
        assert!(matches!(
            check(&key, &seals, 6, &inserted)[..],
            [Finding::Inserted { seq: 0, .. }]
        ));

        let mut late = evs.clone();
        late.extend(events(7, &[at]));
        assert!(
            check(&key, &seals, 6, &late).is_empty(),
            "after the last seal: pending"
        );
    }

    #[test]
    fn forged_missing_and_foreign_seals_are_reported() {
        let key = new_key("k1");
        let at = datetime!(2026-11-02 10:00 UTC);
        let evs = events(1, &[at, at]);
        let first = seal_batch(&key, None, 1, &evs[..1], at);
        let second = seal_batch(
            &key,
            Some(&SealHead::from(&first[0].header)),
            2,
            &evs[1..],
            at,
        );

        let mut forged = first[0].clone();
        forged.entries[0].tag[0] ^= 1;
        let mut chain = ChainCheck::default();
        chain.feed(&key, &forged);
        assert_eq!(chain.findings, [Finding::ForgedSeal { seal_no: 1 }]);

        let mut chain = ChainCheck::default();
        chain.feed(&key, &second[0]);
        assert_eq!(
            chain.findings,
            [Finding::MissingSeals { after: 0, next: 2 }]
        );

        let mut chain = ChainCheck::default();
        chain.feed(&new_key("k2"), &first[0]);
        assert_eq!(
            chain.findings,
            [Finding::UnverifiableSeal {
                seal_no: 1,
                key_id: "k1".into()
            }]
        );

        let other = new_key("k1");
        let mut chain = ChainCheck::default();
        chain.feed(&other, &first[0]);
        assert_eq!(
            chain.findings,
            [Finding::ForgedSeal { seal_no: 1 }],
            "same id, other key"
        );
    }
}
