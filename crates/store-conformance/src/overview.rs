//! The overview's counts: flows by bucket of creation, type and current
//! state; the overview's audit events by bucket, type, outcome and reason.

use std::sync::Arc;

use domain::flow::{FlowState, FlowType};
use domain::overview::{Bucket, EventCount, FlowCount, OverviewQuery};
use domain::{Actor, AuditEventType, NewAuditEvent, Outcome, Repository, Subject};
use time::Duration;
use time::macros::datetime;

use crate::fixtures::{flow, insert, stored_user};

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

pub async fn the_overview_counts_flows_and_events_per_bucket(repo: Arc<dyn Repository>) {
    let alice = stored_user(&*repo, "alice").await;
    let h9 = datetime!(2026-04-01 09:00:00 UTC);
    let h10 = datetime!(2026-04-01 10:00:00 UTC);
    let now = datetime!(2026-04-01 12:00:00 UTC);
    let mut stored = Vec::new();
    for (created, flow_type, state) in [
        (
            h9 + Duration::minutes(1),
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (
            h9 + Duration::minutes(59),
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (
            h9 + Duration::minutes(5),
            FlowType::Registration,
            FlowState::Failed,
        ),
        // Open and past its expiry at `now`: counted as expired.
        (
            h10 + Duration::minutes(2),
            FlowType::StepUp,
            FlowState::AwaitingVerification,
        ),
        (
            h10 + Duration::minutes(3),
            FlowType::SignIn,
            FlowState::Cancelled,
        ),
        // Outside the period.
        (
            h9 - Duration::SECOND,
            FlowType::SignIn,
            FlowState::Completed,
        ),
        (now, FlowType::SignIn, FlowState::Completed),
    ] {
        let f = domain::flow::Flow {
            state,
            ..flow(alice.id, flow_type, created)
        };
        repo.apply(&insert(&f)).await.unwrap();
        stored.push(f);
    }
    // Open and not yet expired at `now`: counted in its state.
    let open = domain::flow::Flow {
        state: FlowState::InReview,
        expires_at: now + Duration::hours(1),
        ..flow(alice.id, FlowType::Recovery, h10 + Duration::minutes(30))
    };
    repo.apply(&insert(&open)).await.unwrap();

    let event = |event_type, outcome, reason: Option<&str>, at, actor| NewAuditEvent {
        outcome,
        reason: reason.map(str::to_owned),
        ..NewAuditEvent::new(event_type, actor, Subject::of_user(&alice), at)
    };
    let operator = || Actor::Operator("fraud-desk".to_owned());
    let integration = || Actor::Integration(None);
    for e in [
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            h9 + Duration::minutes(6),
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            h9 + Duration::minutes(7),
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowInReview,
            Outcome::Success,
            None,
            h10,
            Actor::Provider,
        ),
        event(
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("counter_regression"),
            h10 + Duration::minutes(1),
            integration(),
        ),
        event(
            AuditEventType::FlowRequestRejected,
            Outcome::Rejected,
            Some("webauthn_origin_not_allowed"),
            h10 + Duration::minutes(2),
            integration(),
        ),
        event(
            AuditEventType::CredentialCounterRegression,
            Outcome::Rejected,
            None,
            h10 + Duration::minutes(1),
            integration(),
        ),
        // An operator's reason is their own words: not grouped.
        event(
            AuditEventType::CredentialSuspended,
            Outcome::Success,
            Some("reported stolen"),
            h10 + Duration::minutes(4),
            operator(),
        ),
        event(
            AuditEventType::CredentialSuspended,
            Outcome::Success,
            Some("fraud ticket 12"),
            h10 + Duration::minutes(5),
            operator(),
        ),
        event(
            AuditEventType::CredentialRevoked,
            Outcome::Success,
            Some("recovery"),
            h10 + Duration::minutes(6),
            integration(),
        ),
        // Not an overview event, and outside the period.
        event(
            AuditEventType::FlowCompleted,
            Outcome::Success,
            None,
            h9 + Duration::minutes(2),
            integration(),
        ),
        event(
            AuditEventType::FlowFailed,
            Outcome::Failure,
            Some("idv_declined"),
            now,
            Actor::Provider,
        ),
    ] {
        repo.append_audit(&e).await.unwrap();
    }

    let hours = repo
        .overview(&OverviewQuery::new(h9, now, Bucket::Hour, now).unwrap())
        .await
        .unwrap();
    assert_eq!(
        hours.flows,
        flows(&[
            (h9, FlowType::Registration, FlowState::Failed, 1),
            (h9, FlowType::SignIn, FlowState::Completed, 2),
            (h10, FlowType::Recovery, FlowState::InReview, 1),
            (h10, FlowType::SignIn, FlowState::Cancelled, 1),
            (h10, FlowType::StepUp, FlowState::Expired, 1),
        ])
    );
    let count = |bucket_start, event_type, outcome, reason: Option<&str>, count| EventCount {
        bucket_start,
        event_type,
        outcome,
        reason: reason.map(str::to_owned),
        count,
    };
    assert_eq!(
        hours.events,
        vec![
            count(
                h9,
                AuditEventType::FlowFailed,
                Outcome::Failure,
                Some("idv_declined"),
                2
            ),
            count(
                h10,
                AuditEventType::CredentialCounterRegression,
                Outcome::Rejected,
                None,
                1
            ),
            count(
                h10,
                AuditEventType::CredentialRevoked,
                Outcome::Success,
                Some("recovery"),
                1
            ),
            count(
                h10,
                AuditEventType::CredentialSuspended,
                Outcome::Success,
                None,
                2
            ),
            count(h10, AuditEventType::FlowInReview, Outcome::Success, None, 1),
            count(
                h10,
                AuditEventType::FlowRequestRejected,
                Outcome::Rejected,
                Some("counter_regression"),
                1
            ),
            count(
                h10,
                AuditEventType::FlowRequestRejected,
                Outcome::Rejected,
                Some("webauthn_origin_not_allowed"),
                1
            ),
        ]
    );

    // By day, from mid-day: one bucket starting at midnight UTC.
    let days = repo
        .overview(&OverviewQuery::new(h9, now, Bucket::Day, now).unwrap())
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
        .overview(&OverviewQuery::new(later, later + Duration::DAY, Bucket::Hour, now).unwrap())
        .await
        .unwrap();
    assert_eq!(none, domain::overview::Overview::default());
}
