//! Audit maintenance, retention, archive manifests and tamper evidence: the
//! same outcomes on both stores, whether months are partitions or rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use domain::audit::integrity::Finding;
use domain::audit::month::Month;
use domain::audit::trail::{ArchiveManifest, ArchiveRecorded, AuditPolicy, AuditTrail, SealPacer};
use domain::sealing::{DataKey, KeyId};
use domain::{
    Actor, AuditEvent, AuditEventType, AuditQuery, ManualClock, NewAuditEvent, Repository, Subject,
};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::Tamper;

pub fn trail(repo: &Arc<dyn Repository>, clock: &Arc<ManualClock>, retention: u32) -> AuditTrail {
    trail_with_key(repo, clock, retention, &test_key())
}

pub fn test_key() -> DataKey {
    DataKey::generate(KeyId::parse("audit-test").unwrap()).0
}

pub fn trail_with_key(
    repo: &Arc<dyn Repository>,
    clock: &Arc<ManualClock>,
    retention: u32,
    key: &DataKey,
) -> AuditTrail {
    AuditTrail::new(
        repo.clone(),
        clock.clone(),
        key.audit_key(),
        AuditPolicy {
            retention_months: retention,
            ..AuditPolicy::default()
        },
    )
}

/// Appends one event at `at`, with `reason` to tell events apart.
pub async fn append(repo: &dyn Repository, at: OffsetDateTime, reason: &str) {
    let event = NewAuditEvent {
        reason: Some(reason.to_owned()),
        details: serde_json::json!({ "amount": { "value": 42, "currency": "EUR" }, "note": reason }),
        ..NewAuditEvent::new(
            AuditEventType::CredentialSuspended,
            Actor::Operator("auth0|7".into()),
            Subject::default(),
            at,
        )
    };
    repo.append_audit(&event).await.unwrap();
}

/// Appends `n` events a second apart from 2026-11-02 10:00, reasons `e0`, `e1`, ….
async fn append_a_second_apart(repo: &dyn Repository, n: i64) {
    for i in 0..n {
        append(
            repo,
            datetime!(2026-11-02 10:00 UTC) + time::Duration::seconds(i),
            &format!("e{i}"),
        )
        .await;
    }
}

pub async fn month_events(repo: &dyn Repository, month: Month) -> Vec<AuditEvent> {
    repo.audit_events_of_month(month, 0, 10_000).await.unwrap()
}

fn month(s: &str) -> Month {
    s.parse().unwrap()
}

pub fn manifest(month: Month, row_count: i64, sha: char) -> ArchiveManifest {
    ArchiveManifest {
        month,
        row_count,
        first_occurred_at: Some(month.start()),
        last_occurred_at: Some(month.start()),
        sha256: sha.to_string().repeat(64),
        file_name: format!("audit-{month}.jsonl.gz"),
        archived_at: datetime!(2026-11-01 00:00 UTC),
        archived_by: "ops@example.com".into(),
    }
}

pub async fn sealing_covers_every_event_and_later_ones_stay_pending(repo: Arc<dyn Repository>) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-02 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);
    append(&*repo, datetime!(2026-10-31 23:59:59.999999 UTC), "october").await;
    append(&*repo, datetime!(2026-11-01 00:00 UTC), "november").await;
    append(
        &*repo,
        datetime!(2026-10-15 12:00 UTC),
        "october, written late",
    )
    .await;

    let report = trail.maintain().await.unwrap();
    assert!(report.leader);
    assert_eq!(report.sealed_events, 3);
    assert_eq!(report.seals_written, 2, "one seal per month");
    assert_eq!(report.awaiting_sealing, 0);

    append(&*repo, datetime!(2026-11-02 09:00 UTC), "after the seal").await;
    let verified = trail.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
    let months: Vec<(String, u64, u64, u64)> = verified
        .months
        .iter()
        .map(|m| (m.month.to_string(), m.events, m.sealed, m.pending))
        .collect();
    assert_eq!(
        months,
        [("2026-10".into(), 2, 2, 0), ("2026-11".into(), 2, 1, 1)]
    );

    let again = trail.maintain().await.unwrap();
    assert_eq!((again.sealed_events, again.seals_written), (1, 1));
    assert_eq!(again.seal_head.unwrap().seal_no, 3, "the chain continues");
    let nothing = trail.maintain().await.unwrap();
    assert_eq!(nothing.sealed_events, 0);
    let verified = trail.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
    assert_eq!(verified.seals, 3);
}

/// Counts the pauses the trail takes between sealing steps.
#[derive(Default)]
struct CountingPacer(AtomicUsize);

#[async_trait]
impl SealPacer for CountingPacer {
    async fn between_steps(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub async fn a_paced_backlog_is_sealed_in_steps_with_a_pause_between(repo: Arc<dyn Repository>) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let pacer = Arc::new(CountingPacer::default());
    let trail = AuditTrail::new(
        repo.clone(),
        clock.clone(),
        test_key().audit_key(),
        AuditPolicy {
            seal_batch: 2,
            ..AuditPolicy::default()
        },
    )
    .paced(pacer.clone());
    append_a_second_apart(&*repo, 5).await;

    let report = trail.maintain().await.unwrap();
    assert_eq!((report.sealed_events, report.seals_written), (5, 3));
    assert_eq!(
        pacer.0.load(Ordering::SeqCst),
        2,
        "a pause after each full step that has more to follow, none after the last"
    );
    let verified = trail.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
    assert_eq!(verified.seals, 3);

    let nothing = trail.maintain().await.unwrap();
    assert_eq!(nothing.sealed_events, 0);
    assert_eq!(
        pacer.0.load(Ordering::SeqCst),
        2,
        "nothing to seal, no pause"
    );
}

pub async fn verification_reports_an_edited_a_deleted_and_a_reordered_event(
    repo: Arc<dyn Repository>,
    tamper: Tamper,
) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);
    append_a_second_apart(&*repo, 6).await;
    trail.maintain().await.unwrap();
    let seqs: Vec<i64> = month_events(&*repo, month("2026-11"))
        .await
        .iter()
        .map(|e| e.seq)
        .collect();
    let [_, edited, deleted, a, b, _] = seqs[..] else {
        panic!("six events expected, got {seqs:?}")
    };

    tamper(format!(
        "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = {edited}"
    ))
    .await;
    tamper(format!("DELETE FROM audit_events WHERE seq = {deleted}")).await;
    tamper(format!("UPDATE audit_events SET seq = -1 WHERE seq = {a}")).await;
    tamper(format!("UPDATE audit_events SET seq = {a} WHERE seq = {b}")).await;
    tamper(format!("UPDATE audit_events SET seq = {b} WHERE seq = -1")).await;

    let report = trail.verify(None).await.unwrap();
    let mut found: Vec<String> = report
        .findings
        .iter()
        .map(|f| match f {
            Finding::Edited { seq, .. } => format!("edited {seq}"),
            Finding::Deleted { seq, .. } => format!("deleted {seq}"),
            Finding::Reordered {
                seq, sealed_at_seq, ..
            } => format!("moved {sealed_at_seq}->{seq}"),
            other => format!("{other:?}"),
        })
        .collect();
    found.sort();
    let mut expected = vec![
        format!("deleted {deleted}"),
        format!("edited {edited}"),
        format!("moved {a}->{b}"),
        format!("moved {b}->{a}"),
    ];
    expected.sort();
    assert_eq!(found, expected);
}

pub async fn altered_or_removed_seals_are_reported(repo: Arc<dyn Repository>, tamper: Tamper) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);
    for i in 0..3 {
        append(&*repo, datetime!(2026-11-02 10:00 UTC), &format!("e{i}")).await;
        trail.maintain().await.unwrap();
    }
    assert!(trail.verify(None).await.unwrap().is_clean());
    tamper("UPDATE audit_seals SET event_count = event_count + 1 WHERE seal_no = 1".into()).await;
    tamper("DELETE FROM audit_seals WHERE seal_no = 2".into()).await;
    let findings = trail.verify(None).await.unwrap().findings;
    assert!(
        findings.contains(&Finding::ForgedSeal { seal_no: 1 }),
        "{findings:?}"
    );
    assert!(
        findings.contains(&Finding::MissingSeals { after: 1, next: 3 }),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::Inserted { .. })),
        "the event of the removed seal is no longer accounted for: {findings:?}"
    );

    let other_key = trail_with_key(&repo, &clock, 0, &test_key());
    let findings = other_key.verify(None).await.unwrap().findings;
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::ForgedSeal { .. })),
        "a trail sealed under another key does not verify: {findings:?}"
    );
}

pub async fn retention_drops_only_archived_months_past_the_window(repo: Arc<dyn Repository>) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-10 09:00 UTC)));
    let trail = trail(&repo, &clock, 1);
    for (at, reason) in [
        (datetime!(2026-01-10 09:00 UTC), "january"),
        (datetime!(2026-01-31 23:59:59.999999 UTC), "january, last"),
        (datetime!(2026-02-01 00:00 UTC), "february"),
        (datetime!(2026-03-05 00:00 UTC), "march"),
        (datetime!(2026-04-14 00:00 UTC), "april"),
    ] {
        append(&*repo, at, reason).await;
    }
    let january = trail.maintain().await.unwrap();
    assert!(january.dropped.is_empty() && !january.retention_blocked());

    // April: January and February are past a one-month window.
    clock.set(datetime!(2026-04-15 09:00 UTC));
    let recorded = repo
        .record_audit_archive(&manifest(month("2026-01"), 2, 'a'))
        .await
        .unwrap();
    assert_eq!(recorded, ArchiveRecorded::New);
    let april = trail.maintain().await.unwrap();
    assert_eq!(april.dropped, [month("2026-01")]);
    assert_eq!(april.kept_unarchived, [month("2026-02")]);
    assert!(april.retention_blocked());
    assert!(month_events(&*repo, month("2026-01")).await.is_empty());
    assert_eq!(month_events(&*repo, month("2026-02")).await.len(), 1);
    let listed = repo
        .audit_events(&AuditQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 3, "the audit API lists what is kept");

    // An archive whose row count no longer matches does not let a month go.
    repo.record_audit_archive(&manifest(month("2026-02"), 5, 'b'))
        .await
        .unwrap();
    let again = trail.maintain().await.unwrap();
    assert!(again.dropped.is_empty());
    assert_eq!(again.kept_changed, [month("2026-02")]);

    let verified = trail.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
    assert!(!verified.months.iter().any(|m| m.month == month("2026-01")));
}

pub async fn zero_retention_keeps_every_month(repo: Arc<dyn Repository>) {
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-10 09:00 UTC)));
    let trail = trail(&repo, &clock, 0);
    append(&*repo, datetime!(2026-01-10 09:00 UTC), "long ago").await;
    repo.record_audit_archive(&manifest(month("2026-01"), 1, 'c'))
        .await
        .unwrap();
    let report = trail.maintain().await.unwrap();
    assert!(report.dropped.is_empty() && !report.retention_blocked());
    assert_eq!(month_events(&*repo, month("2026-01")).await.len(), 1);
}

pub async fn an_archive_manifest_is_recorded_once(repo: Arc<dyn Repository>) {
    let m = manifest(month("2026-03"), 7, 'd');
    assert_eq!(
        repo.record_audit_archive(&m).await.unwrap(),
        ArchiveRecorded::New
    );
    let same_file_later = ArchiveManifest {
        archived_at: datetime!(2026-12-01 00:00 UTC),
        archived_by: "someone else".into(),
        ..m.clone()
    };
    assert_eq!(
        repo.record_audit_archive(&same_file_later).await.unwrap(),
        ArchiveRecorded::AlreadyRecorded
    );
    let changed = manifest(month("2026-03"), 8, 'e');
    assert_eq!(
        repo.record_audit_archive(&changed).await.unwrap(),
        ArchiveRecorded::Differs(m.clone())
    );
    assert_eq!(repo.audit_archives().await.unwrap(), [m]);
}

pub async fn concurrent_maintainers_seal_each_event_once(repo: Arc<dyn Repository>) {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-20 09:00 UTC)));
    for i in 0..40 {
        append(
            &*repo,
            datetime!(2026-11-02 10:00 UTC) + time::Duration::seconds(i),
            "e",
        )
        .await;
    }
    let key = test_key();
    let first = trail_with_key(&repo, &clock, 0, &key);
    let second = trail_with_key(&repo, &clock, 0, &key);
    let (a, b) = tokio::join!(first.maintain(), second.maintain());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sealed_events + b.sealed_events, 40, "{a:?} {b:?}");
    assert_eq!(
        a.created.len() + b.created.len(),
        a.created.len().max(b.created.len())
    );
    let verified = first.verify(None).await.unwrap();
    assert!(verified.is_clean(), "{:?}", verified.findings);
    assert_eq!(verified.months[0].sealed, 40);
}
