//! Seals: the events of one month within one range of positions, chained.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{AuditKey, EventTag, SealMac, TAG_LEN};
use crate::audit::AuditEvent;
use crate::audit::month::Month;

/// Bytes per sealed entry: `seq` (8, big-endian) and the tag.
const ENTRY_LEN: usize = 8 + TAG_LEN;

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

    pub(super) fn entries_digest(&self) -> [u8; 32] {
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
