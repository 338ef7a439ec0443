use time::macros::datetime;

use time::OffsetDateTime;

use super::*;
use crate::audit::month::Month;
use crate::audit::{Actor, AuditEvent, AuditEventType, NewAuditEvent, Subject};
use crate::sealing::{DataKey, KeyId};

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
