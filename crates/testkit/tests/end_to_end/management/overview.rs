//! The overview: real flows and refusals counted by hour and by day, under
//! `management.audit.read` and for a bounded period.

use super::*;

on_both_stores!(
    the_overview_counts_real_flows_and_refusals,
    the_overview_needs_audit_read_and_a_bounded_period,
);

/// The overview's counts, keyed for comparison: flows as
/// `(bucket_start, type, state) → count`, events as
/// `(bucket_start, type, outcome, reason) → count`.
type FlowCounts = std::collections::BTreeMap<(String, String, String), u64>;
type EventCounts = std::collections::BTreeMap<(String, String, String, String), u64>;

fn overview_counts(body: &Value) -> (FlowCounts, EventCounts) {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let flows = body["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    text(&c["bucket_start"]),
                    text(&c["type"]),
                    text(&c["state"]),
                ),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let events = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    text(&c["bucket_start"]),
                    text(&c["type"]),
                    text(&c["outcome"]),
                    text(&c["reason"]),
                ),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    (flows, events)
}

async fn the_overview_counts_real_flows_and_refusals(store: Store) {
    let s = setup(store).await;
    flows_and_refusals_to_count(&s).await;
    let from = (T0 - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = (T0 + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let hours = counted_by_hour(&s, &from, &to).await;
    counted_by_day(&s, &from, &to, &hours).await;
    each_overview_read_is_on_the_record(&s, &hours).await;
}

/// Two registrations, an identity proof declined, a counter regression
/// refused, and an operator's suspension.
async fn flows_and_refusals_to_count(s: &Setup) {
    s.core.enrolled("ana", "ana-phone").await;
    s.core.enrolled("ben", "ben-phone").await;
    // An identity proof declined.
    let declined = s
        .core
        .created(json!({ "type": "step_up", "external_user_id": "ana" }))
        .await;
    s.core.outcome(&declined, "declined").await;
    // A passkey reporting a counter that did not grow is refused.
    let first = s
        .core
        .created(json!({ "type": "sign_in", "external_user_id": "ana" }))
        .await;
    assert_eq!(
        s.core.assert_with(&first, "ana-phone", 5).await.0,
        StatusCode::OK
    );
    let second = s
        .core
        .created(json!({ "type": "sign_in", "external_user_id": "ana" }))
        .await;
    let (status, body) = s.core.assert_with(&second, "ana-phone", 4).await;
    expect_error(status, &body, StatusCode::CONFLICT, "counter_regression");
    // The fraud team suspends ben's passkey.
    let (_, ben) = s
        .get("management.users.read", "/api/management/v1/users/ben")
        .await;
    let credential = ben["credentials"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .post(
            "management.credentials.suspend",
            &format!("/api/management/v1/credentials/{credential}/suspend"),
            json!({ "reason": "reported stolen" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// By hour: each flow type and state, each event with its outcome and
/// reason, and no operator's words.
async fn counted_by_hour(s: &Setup, from: &str, to: &str) -> Value {
    let (status, hours) = s
        .get(
            "management.audit.read",
            &format!("/api/management/v1/overview?from={from}&to={to}&bucket=hour"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hours}");
    assert_eq!(hours["bucket"], "hour");
    let (flows, events) = overview_counts(&hours);
    let hour = "2026-06-01T09:00:00Z".to_owned();
    let flow = |t: &str, st: &str| (hour.clone(), t.to_owned(), st.to_owned());
    assert_eq!(
        flows,
        [
            (flow("registration", "completed"), 2),
            (flow("sign_in", "completed"), 1),
            (flow("sign_in", "verified"), 1),
            (flow("step_up", "failed"), 1),
        ]
        .into_iter()
        .collect()
    );
    let event = |t: &str, outcome: &str, reason: &str| {
        events
            .get(&(
                hour.clone(),
                t.to_owned(),
                outcome.to_owned(),
                reason.to_owned(),
            ))
            .copied()
    };
    assert_eq!(event("flow.failed", "failure", "idv_declined"), Some(1));
    assert_eq!(
        event(
            "credential.counter_regression",
            "rejected",
            "counter_regression"
        ),
        Some(1)
    );
    assert_eq!(
        event("credential.suspended", "success", ""),
        Some(1),
        "{events:?}"
    );
    assert!(
        !hours.to_string().contains("reported stolen"),
        "an operator's words are not counted"
    );
    hours
}

/// By day: the same counts in one bucket starting at midnight UTC.
async fn counted_by_day(s: &Setup, from: &str, to: &str, hours: &Value) {
    let (status, days) = s
        .get(
            "management.audit.read",
            &format!("/api/management/v1/overview?from={from}&to={to}&bucket=day"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{days}");
    let (flows, events) = overview_counts(hours);
    let (day_flows, day_events) = overview_counts(&days);
    assert!(day_flows.keys().all(|k| k.0 == "2026-06-01T00:00:00Z"));
    assert_eq!(day_flows.values().sum::<u64>(), flows.values().sum::<u64>());
    assert_eq!(
        day_events.values().sum::<u64>(),
        events.values().sum::<u64>()
    );
}

async fn each_overview_read_is_on_the_record(s: &Setup, hours: &Value) {
    let reads: Vec<_> = operator_events(&s.core)
        .await
        .into_iter()
        .filter(|e| e.details["read"] == "overview")
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].actor.id(), Some("support-agent-9"));
    assert_eq!(reads[0].details["filters"]["bucket"], "hour");
    assert_eq!(
        reads[0].details["rows"],
        hours["flows"].as_array().unwrap().len() + hours["events"].as_array().unwrap().len()
    );
}

async fn the_overview_needs_audit_read_and_a_bounded_period(store: Store) {
    let s = setup(store).await;
    let ok = "/api/management/v1/overview?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z";
    let (status, body) = s
        .get(ALL.replace("management.audit.read", "").as_str(), ok)
        .await;
    expect_error(status, &body, StatusCode::FORBIDDEN, "missing_scope");
    let (status, body) = s.get("management.audit.read", ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bucket"], "hour", "hours unless asked otherwise");
    assert_eq!(body["flows"], json!([]));

    let overview = |query: &str| format!("/api/management/v1/overview?{query}");
    for (query, code) in [
        // A month of 31 days is the longest period.
        (
            "from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:01Z&bucket=day",
            "overview_period_too_long",
        ),
        (
            "from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z",
            "invalid_parameter",
        ),
        (
            "from=2026-06-01T00:00:00Z&to=2026-06-01T00:00:00Z",
            "invalid_parameter",
        ),
        (
            "from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&bucket=week",
            "invalid_parameter",
        ),
        ("from=2026-06-01T00:00:00Z", "invalid_parameter"),
        (
            "from=yesterday&to=2026-06-02T00:00:00Z",
            "invalid_parameter",
        ),
    ] {
        s.get_refused("management.audit.read", &overview(query), code)
            .await;
    }
    let (status, _) = s
        .get(
            "management.audit.read",
            &overview("from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z&bucket=hour"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "31 days of hours");
}
