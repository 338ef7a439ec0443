//! The overview's counts: flows by bucket of creation, type and current
//! state; the overview's audit events by bucket, type, outcome and reason.

use std::sync::Arc;

use domain::flow::{Flow, FlowState, FlowType};
use domain::overview::{Bucket, EventCount, FlowCount, OverviewQuery, roll_up};
use domain::{Actor, AuditEventType, NewAuditEvent, Outcome, Repository, Subject, User};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::fixtures::{flow, insert, stored_user, update};

fn flows(list: &[(time::OffsetDateTime, FlowType, FlowState, u64)]) -> Vec<FlowCount> {
    list.iter()
        .map(|&(bucket_start, flow_type, state, count)| FlowCount {
            bucket_start,
            flow_type,
            state,
            count,
        })
        .collect()
}

const H9: OffsetDateTime = datetime!(2026-04-01 09:00:00 UTC);
const H10: OffsetDateTime = datetime!(2026-04-01 10:00:00 UTC);
const NOW: OffsetDateTime = datetime!(2026-04-01 12:00:00 UTC);

/// Alice's flows of 09:00 to 12:00 (and just outside), in every kind of state.
async fn store_flows_of_the_morning(repo: &dyn Repository, alice: &User) {
    for (created, flow_type, state) in [
        (
            H9 + Duration::minutes(1),
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (
            H9 + Duration::minutes(59),
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (
            H9 + Duration::minutes(5),
            FlowType::Registration,
            FlowState::Failed,
        ),
        // Open and past its expiry at `NOW`: counted as expired.
        (
            H10 + Duration::minutes(2),
            FlowType::StepUp,
            FlowState::AwaitingVerification,
        ),
        (
            H10 + Duration::minutes(3),
            FlowType::SignIn,
            FlowState::Cancelled,
        ),
        // Outside the period.
        (
            H9 - Duration::SECOND,
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (NOW, FlowType::SignIn, FlowState::Completed),
    ] {
        let f = domain::flow::Flow {
            state,
            ..flow(alice.id, flow_type, created)
        };
        repo.apply(&insert(&f)).await.unwrap();
    }
    // Open and not yet expired at `NOW`: counted in its state.
    let open = domain::flow::Flow {
        state: FlowState::InReview,
        expires_at: NOW + Duration::hours(1),
        ..flow(alice.id, FlowType::Recovery, H10 + Duration::minutes(30))
    };
    repo.apply(&insert(&open)).await.unwrap();
}

/// Events about Alice of 09:00 to 12:00 (and just outside): overview events
/// with and without reasons, operators' reasons, and one that is not an
/// overview event.
async fn store_events_of_the_morning(repo: &dyn Repository, alice: &User) {
    let event = |event_type, outcome, reason: Option<&str>, at, actor| NewAuditEvent {
        outcome,
        reason: reason.map(str::to_owned),
        ..NewAuditEvent::new(event_type, actor, Subject::of_user(alice), at)
    };
    let operator = || Actor::Operator("fraud-desk".to_owned());
    let integration = || Actor::Integration(None);
    for e in [
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            H9 + Duration::minutes(6),
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            H9 + Duration::minutes(7),
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowInReview,
            Outcome::Success,
            None,
            H10,
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("counter_regression"),
            H10 + Duration::minutes(1),
            integration(),
        ),
        event(
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("webauthn_origin_not_allowed"),
            H10 + Duration::minutes(2),
            integration(),
        ),
        event(
            AuditEventType::CredentialCounterRegression,
            Outcome::Rejected,
            None,
            H10 + Duration::minutes(1),
            integration(),
        ),
        // An operator's reason is their own words: not grouped.
        event(
            AuditEventType::CredentialSuspended,
            Outcome::Success,
            Some("reported stolen"),
            H10 + Duration::minutes(4),
            operator(),
        ),
        event(
            AuditEventType::CredentialSuspended,
            Outcome::Success,
            Some("fraud ticket 12"),
            H10 + Duration::minutes(5),
            operator(),
        ),
        event(
            AuditEventType::CredentialRevoked,
            Outcome::Success,
            Some("recovery"),
            H10 + Duration::minutes(6),
            integration(),
        ),
        // Not an overview event, and outside the period.
        event(
            AuditEventType::FlowCompleted,
            Outcome::Success,
            None,
            H9 + Duration::minutes(2),
            integration(),
        ),
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            NOW,
            Actor::Provider,
        ),
    ] {
        repo.append_audit(&e).await.unwrap();
    }
}

/// The overview's event counts of the morning, per hour.
fn hourly_events() -> Vec<EventCount> {
    let count = |bucket_start, event_type, outcome, reason: Option<&str>, count| EventCount {
        bucket_start,
        event_type,
        outcome,
        reason: reason.map(str::to_owned),
        count,
    };
    vec![
        count(
            H9,
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            2,
        ),
        count(
            H10,
            AuditEventType::CredentialCounterRegression,
            Outcome::Rejected,
            None,
            1,
        ),
        count(
            H10,
            AuditEventType::CredentialRevoked,
            Outcome::Success,
            Some("recovery"),
            1,
        ),
        count(
            H10,
            AuditEventType::CredentialSuspended,
            Outcome::Success,
            None,
            2,
        ),
        count(H10, AuditEventType::FlowInReview, Outcome::Success, None, 1),
        count(
            H10,
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("counter_regression"),
            1,
        ),
        count(
            H10,
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("webauthn_origin_not_allowed"),
            1,
        ),
    ]
}

pub async fn the_overview_counts_flows_and_events_per_bucket(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    store_flows_of_the_morning(&*repo, &alice).await;
    store_events_of_the_morning(&*repo, &alice).await;

    let hours = repo
        .overview(&OverviewQuery::new(H9, NOW, Bucket::Hour, NOW).unwrap())
        .await
        .unwrap();
    assert_eq!(
        hours.flows,
        flows(&[
            (H9, FlowType::Registration, FlowState::Failed, 1),
            (H9, FlowType::SignIn, FlowState::Completed, 2),
            (H10, FlowType::Recovery, FlowState::InReview, 1),
            (H10, FlowType::SignIn, FlowState::Cancelled, 1),
            (H10, FlowType::StepUp, FlowState::Expired, 1),
        ])
    );
    assert_eq!(hours.events, hourly_events());

    // By day, from mid-day: one bucket starting at midnight UTC.
    let days = repo
        .overview(&OverviewQuery::new(H9, NOW, Bucket::Day, NOW).unwrap())
        .await
        .unwrap();
    let midnight = datetime!(2026-04-01 00:00:00 UTC);
    assert_eq!(
        days.flows,
        flows(&[
            (midnight, FlowType::Recovery, FlowState::InReview, 1),
            (midnight, FlowType::Registration, FlowState::Failed, 1),
            (midnight, FlowType::SignIn, FlowState::Cancelled, 1),
            (midnight, FlowType::SignIn, FlowState::Completed, 2),
            (midnight, FlowType::StepUp, FlowState::Expired, 1),
        ])
    );
    assert_eq!(days.events.iter().map(|c| c.count).sum::<u64>(), 9);
    assert!(days.events.iter().all(|c| c.bucket_start == midnight));

    // An empty period's counts are empty.
    let later = datetime!(2026-05-01 00:00:00 UTC);
    let none = repo
        .overview(&OverviewQuery::new(later, later + Duration::DAY, Bucket::Hour, NOW).unwrap())
        .await
        .unwrap();
    assert_eq!(none, domain::overview::Overview::default());
}

/// The overview as counted from `flows` themselves: what the store must
/// answer whether an hour is rolled up or not. Flows retention `removed`
/// still count in the period's whole hours (rolled up before they went), not
/// in the partial hours at its ends, which are counted from the flows.
fn counted_from(
    flows: &[domain::flow::Flow],
    removed: &[domain::flow::FlowId],
    q: &OverviewQuery,
) -> Vec<FlowCount> {
    let (first, end) = q.whole_hours();
    let mut counts = std::collections::BTreeMap::<_, u64>::new();
    for f in flows.iter().filter(|f| {
        f.created_at >= q.from
            && f.created_at < q.to
            && ((f.created_at >= first && f.created_at < end) || !removed.contains(&f.id))
    }) {
        let state = f.clone().as_of(q.now).state;
        *counts
            .entry((
                q.bucket.start_of(f.created_at),
                f.flow_type.as_str(),
                state.as_str(),
            ))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((bucket_start, flow_type, state), count)| FlowCount {
            bucket_start,
            flow_type: flow_type.parse().unwrap(),
            state: state.parse().unwrap(),
            count,
        })
        .collect()
}

/// Periods that start and end on and off hour boundaries, around and across
/// the hours rolled up.
fn periods(base: time::OffsetDateTime) -> Vec<(time::OffsetDateTime, time::OffsetDateTime)> {
    let h = |hours: i64, minutes: i64| base + Duration::hours(hours) + Duration::minutes(minutes);
    vec![
        (h(-3, 0), h(44, 0)),
        (h(0, 0), h(48, 0)),
        (h(2, 17), h(20, 41)),
        (h(10, 0), h(11, 0)),
        (h(10, 5), h(10, 50)),
        (h(23, 30), h(27, 0)),
        (h(24, 59), h(26, 1)),
        (h(25, 0), h(40, 30)),
        (h(38, 10), h(42, 0)),
    ]
}

async fn assert_overview_is_the_live_count(
    repo: &dyn Repository,
    flows: &[domain::flow::Flow],
    removed: &[domain::flow::FlowId],
    now: time::OffsetDateTime,
    base: time::OffsetDateTime,
) {
    for (from, to) in periods(base) {
        for bucket in [Bucket::Hour, Bucket::Day] {
            let q = OverviewQuery::new(from, to, bucket, now).unwrap();
            let counted = repo.overview(&q).await.unwrap();
            assert_eq!(
                counted.flows,
                counted_from(flows, removed, &q),
                "{from} to {to} per {} at {now}",
                bucket.as_str()
            );
        }
    }
}

/// 114 flows over 38 hours from `base`, at uneven minutes and seconds, in
/// every state (the open ones expiring 15 minutes after creation), then a
/// flow in review for eight hours from 25:03, last: its hour and those
/// after it stay counted from the flows until it stops changing.
async fn store_flows_over_38_hours(
    repo: &dyn Repository,
    users: &[User; 2],
    base: OffsetDateTime,
) -> Vec<Flow> {
    let types = [
        FlowType::SignIn,
        FlowType::StepUp,
        FlowType::Registration,
        FlowType::Recovery,
    ];
    let states = [
        FlowState::Completed,
        FlowState::Completed,
        FlowState::Failed,
        FlowState::Cancelled,
        FlowState::Expired,
        FlowState::Pending,
        FlowState::AwaitingVerification,
        FlowState::InReview,
        FlowState::Verified,
    ];
    let mut flows: Vec<Flow> = Vec::new();
    for i in 0..114_i64 {
        let created = base + Duration::minutes(i * 20) + Duration::seconds((i * 37) % 1200);
        let f = Flow {
            state: states[(i as usize * 5) % states.len()],
            ..flow(
                users[i as usize % 2].id,
                types[(i as usize / 3) % 4],
                created,
            )
        };
        repo.apply(&insert(&f)).await.unwrap();
        flows.push(f);
    }
    let long = Flow {
        state: FlowState::InReview,
        expires_at: base + Duration::minutes(25 * 60 + 3) + Duration::hours(8),
        ..flow(
            users[0].id,
            FlowType::Recovery,
            base + Duration::minutes(25 * 60 + 3),
        )
    };
    repo.apply(&insert(&long)).await.unwrap();
    flows.push(long);
    flows
}

/// After a roll-up up to `stop`: the long review (the last of `flows`)
/// completes, an open flow of a rolled-up hour that expired untouched is
/// written as expired, and a new flow opens 8 minutes before `later`; the
/// new flow.
async fn change_flows_after_the_roll_up(
    repo: &dyn Repository,
    flows: &mut Vec<Flow>,
    users: &[User; 2],
    now: OffsetDateTime,
    later: OffsetDateTime,
    stop: OffsetDateTime,
) -> Flow {
    let long = flows.last().unwrap().clone();
    let completed = Flow {
        state: FlowState::Completed,
        version: long.version + 1,
        updated_at: now + Duration::hours(1),
        ..long
    };
    repo.apply(&update(&completed)).await.unwrap();
    let stale = flows
        .iter()
        .position(|f| !f.state.is_terminal() && f.created_at < stop)
        .unwrap();
    let expired = Flow {
        state: FlowState::Expired,
        version: flows[stale].version + 1,
        ..flows[stale].clone()
    };
    repo.apply(&update(&expired)).await.unwrap();
    flows[stale] = expired;
    *flows.last_mut().unwrap() = completed;
    let fresh = flow(users[1].id, FlowType::SignIn, later - Duration::minutes(8));
    repo.apply(&insert(&fresh)).await.unwrap();
    flows.push(fresh.clone());
    fresh
}

/// A day and more after `later`, retention removes the flows: the counts of
/// their hours stay, and a flow of an hour not rolled up yet is kept however
/// old (a review left open for days holds the roll-up back), as is the
/// `fresh` one, less than a day past its expiry.
async fn retention_keeps_the_rolled_up_counts(
    repo: &Arc<dyn Repository>,
    flows: &mut Vec<Flow>,
    users: &[User; 2],
    fresh: &Flow,
    later: OffsetDateTime,
    base: OffsetDateTime,
) {
    let days_on = later + Duration::hours(26);
    let held = Flow {
        state: FlowState::InReview,
        expires_at: days_on + Duration::days(3),
        ..flow(
            users[0].id,
            FlowType::Recovery,
            later + Duration::minutes(20),
        )
    };
    let behind = Flow {
        state: FlowState::Completed,
        ..flow(users[1].id, FlowType::SignIn, later + Duration::minutes(40))
    };
    for f in [&held, &behind] {
        repo.apply(&insert(f)).await.unwrap();
        flows.push(f.clone());
    }
    let clock = Arc::new(domain::ManualClock::new(days_on));
    let housekeeping = domain::retention::Housekeeping::new(
        repo.clone(),
        clock,
        domain::retention::RetentionPolicy {
            flows_after_expiry: Duration::hours(24),
            ..Default::default()
        },
    );
    let report = housekeeping.run_once().await.unwrap();
    assert_eq!(report.overview_hours, 1, "{report:?}");
    // Removed: flows that expired before the hour held back began (the
    // roll-up counted their hours), not the newer ones a day past expiry.
    let held_hour = base + Duration::hours(40);
    let removed: Vec<_> = flows
        .iter()
        .filter(|f| f.expires_at < held_hour)
        .map(|f| f.id)
        .collect();
    assert!(removed.len() > 100);
    assert_eq!(report.ended_flows, removed.len() as u64, "{report:?}");
    assert!(matches!(
        repo.flow(flows[0].id).await,
        Err(domain::StoreError::NotFound)
    ));
    assert_eq!(repo.flow(fresh.id).await.unwrap(), *fresh);
    assert_eq!(repo.flow(behind.id).await.unwrap(), behind);
    assert_overview_is_the_live_count(&**repo, flows, &removed, days_on, base).await;
}

/// The roll-up's hours answer exactly what counting the flows answers: for
/// periods starting and ending inside hours and days, for flows that changed
/// after an earlier roll-up, and, for the whole hours of a period, after
/// retention removed the flows.
pub async fn rolled_up_hours_count_what_the_flows_count(repo: Arc<dyn Repository>) {
    let base = datetime!(2026-04-01 00:00:00 UTC);
    let users = [
        stored_user(&*repo, "olga").await,
        stored_user(&*repo, "omar").await,
    ];
    let mut flows = store_flows_over_38_hours(&*repo, &users, base).await;

    let now = base + Duration::hours(30);
    assert_overview_is_the_live_count(&*repo, &flows, &[], now, base).await;
    // Two replicas roll up at once: the hours are counted once.
    let (a, b) = tokio::join!(roll_up(&*repo, now), roll_up(&*repo, now));
    let rolled: u64 = [a.unwrap(), b.unwrap()]
        .iter()
        .flatten()
        .map(|r| r.hours)
        .sum();
    let first_hour = base;
    let stop = base + Duration::hours(25);
    assert_eq!(
        rolled, 25,
        "from the oldest flow's hour up to the long review's"
    );
    let again = roll_up(&*repo, now).await.unwrap().unwrap();
    assert_eq!((again.hours, again.counted_to), (0, Some(stop)));
    assert!(flows.iter().all(|f| f.created_at >= first_hour));
    assert_overview_is_the_live_count(&*repo, &flows, &[], now, base).await;

    // Later: flows change after the roll-up, and a new one opens.
    let later = now + Duration::hours(10);
    let fresh = change_flows_after_the_roll_up(&*repo, &mut flows, &users, now, later, stop).await;
    assert_overview_is_the_live_count(&*repo, &flows, &[], later, base).await;
    let step = roll_up(&*repo, later).await.unwrap().unwrap();
    assert_eq!(
        step.counted_to,
        Some(base + Duration::hours(39)),
        "up to the hour of the flow still open"
    );
    assert_overview_is_the_live_count(&*repo, &flows, &[], later, base).await;

    retention_keeps_the_rolled_up_counts(&repo, &mut flows, &users, &fresh, later, base).await;
}
