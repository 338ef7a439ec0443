//! Verification: the chain of seals, then each month's events against its seals.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use uuid::Uuid;

use super::{AuditKeyring, EventTag, Seal, SealMac};
use crate::audit::AuditEvent;
use crate::audit::month::Month;

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
