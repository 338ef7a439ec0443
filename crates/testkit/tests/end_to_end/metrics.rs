//! Prometheus metrics end to end: each runtime measured as it measures itself
//! in production, its metrics scraped over real HTTP from their own listener,
//! and never served on the API's port.

use reqwest::StatusCode;
use serde_json::json;
use testkit::onfido_double::{DeliveryOutcome, OnfidoDouble, OnfidoDoubleConfig, sign};
use testkit::{
    Store, TestApp, on_both_stores, spawn_core_metered, spawn_core_onfido_metered,
    spawn_management_metered,
};

const WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";

on_both_stores!(
    the_core_api_counts_requests_by_route_template_and_status_class,
    flows_and_refused_possession_proofs_are_counted_by_type_and_code,
    webhook_deliveries_and_provider_calls_are_counted_by_outcome,
    the_management_runtime_serves_its_own_metrics,
);

/// The exposition text from the runtime's metrics listener.
async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics.expect("spawned metered");
    let response = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the sample `name` whose labels include every one of
/// `labels`; `None` when there is no such sample.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_set) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| label_set.split(',').any(|l| l == format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().unwrap())
        })
        .reduce(|a, b| a + b)
}

#[track_caller]
fn assert_sample(text: &str, name: &str, labels: &[(&str, &str)], expected: f64) {
    assert_eq!(
        sample(text, name, labels),
        Some(expected),
        "{name}{labels:?} in:\n{text}"
    );
}

async fn the_core_api_counts_requests_by_route_template_and_status_class(store: Store) {
    let app = spawn_core_metered(store).await;
    let id = requests_of_every_kind(&app).await;
    let text = scrape(&app).await;
    requests_are_counted_by_route_template(&text, &id);
    latency_build_and_pool_are_reported(&text);
}

/// The Core API's reads of a flow as its route template labels them.
const FLOW_READ: [(&str, &str); 3] = [
    ("runtime", "core"),
    ("route", "/api/core/v1/flows/{flow_id}"),
    ("method", "GET"),
];

/// A flow created and read three times, an unknown flow, an odd user id,
/// an unknown route, and `/metrics` asked of the API's port. Gives the
/// flow's id.
async fn requests_of_every_kind(app: &TestApp) -> String {
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "ada" }))
        .await;
    let id = flow["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.flow(&id).await;
    }
    let (status, _) = app
        .get_json("/api/core/v1/flows/0190b5a4-0000-7000-8000-000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .get_json(&format!("/api/core/v1/users/{}", "x".repeat(40)))
        .await;
    assert!(status.is_success() || status.is_client_error());
    let (status, _) = app.get_json("/no/such/route/0190b5a4").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The API's own port serves no metrics: an ingress exposing it exposes none.
    let on_api_port = app.get("/metrics").await;
    assert_eq!(on_api_port.status(), StatusCode::NOT_FOUND);
    let on_api_port = on_api_port.text().await.unwrap();
    assert!(!on_api_port.contains("biometric_passkey_"), "{on_api_port}");
    id
}

fn requests_are_counted_by_route_template(text: &str, id: &str) {
    let requests = "biometric_passkey_http_requests_total";
    let read = FLOW_READ;
    assert_sample(
        text,
        requests,
        &[&read[..], &[("status", "2xx")]].concat(),
        3.0,
    );
    assert_sample(
        text,
        requests,
        &[&read[..], &[("status", "4xx")]].concat(),
        1.0,
    );
    assert_sample(
        text,
        requests,
        &[
            ("route", "/api/core/v1/flows"),
            ("method", "POST"),
            ("status", "2xx"),
        ],
        1.0,
    );
    assert_sample(
        text,
        requests,
        &[("route", "unmatched"), ("method", "GET"), ("status", "4xx")],
        2.0, // the unknown route and /metrics on the API port
    );
    // Never a raw path: no identifier reaches a label.
    assert!(!text.contains(id), "{text}");
    assert!(!text.contains("0190b5a4"), "{text}");
    assert!(!text.contains("xxxxxxxx"), "{text}");
}

/// One latency histogram per route, the build, the process and the
/// database pool.
fn latency_build_and_pool_are_reported(text: &str) {
    let read = FLOW_READ;
    // Buckets that resolve the 10 ms target.
    let latency = "biometric_passkey_http_request_duration_seconds";
    assert_sample(text, &format!("{latency}_count"), &read, 4.0);
    for le in ["0.005", "0.01", "0.025"] {
        assert!(
            sample(
                text,
                &format!("{latency}_bucket"),
                &[&read[..], &[("le", le)]].concat()
            )
            .is_some(),
            "bucket {le} in:\n{text}"
        );
    }

    assert_sample(
        text,
        "biometric_passkey_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    assert!(sample(text, "process_start_time_seconds", &[]).is_some_and(|t| t > 1.7e9));
    // Sampled on scrape: the pool holds at least the connections just used.
    assert!(
        sample(
            text,
            "biometric_passkey_db_pool_connections",
            &[("state", "open")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(text, "biometric_passkey_db_pool_max_connections", &[]).is_some_and(|n| n >= 1.0)
    );
    assert_sample(text, "biometric_passkey_db_pool_waiters", &[], 0.0);
    // Every statement above took its connection through the timed acquire.
    assert!(
        sample(
            text,
            "biometric_passkey_db_pool_acquire_duration_seconds_count",
            &[]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            text,
            "biometric_passkey_db_pool_acquire_duration_seconds_bucket",
            &[("le", "0.0001")]
        )
        .is_some(),
        "sub-millisecond buckets in:\n{text}"
    );
}

async fn flows_and_refused_possession_proofs_are_counted_by_type_and_code(store: Store) {
    let app = spawn_core_metered(store).await;
    app.enrolled("bea", "bea-phone").await;
    let (sign_in, refused_code) = a_sign_in_completes_and_two_proofs_are_refused(&app).await;
    a_step_up_is_declined_and_another_cancelled(&app).await;
    let text = scrape(&app).await;
    flows_are_counted_by_type_and_outcome(&text);
    refusals_are_counted_by_code(&text, &refused_code);
    // No user's or flow's identifier in any label.
    assert!(!text.contains("bea"), "{text}");
    assert!(!text.contains(&sign_in), "{text}");
}

/// A sign-in with a growing counter completes; the next one, whose counter
/// went backwards (a cloned authenticator?), is refused, and so is another
/// user's passkey. Gives the completed sign-in's id and the second
/// refusal's code.
async fn a_sign_in_completes_and_two_proofs_are_refused(app: &TestApp) -> (String, String) {
    let sign_in = app
        .created(json!({ "type": "sign_in", "external_user_id": "bea" }))
        .await;
    let (status, body) = app.assert_with(&sign_in, "bea-phone", 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cloned = app
        .created(json!({ "type": "sign_in", "external_user_id": "bea" }))
        .await;
    let (status, body) = app.assert_with(&cloned, "bea-phone", 3).await;
    assert_eq!(
        body["error"]["code"], "counter_regression",
        "{status} {body}"
    );
    let (status, body) = app.assert_with(&cloned, "someone-elses-phone", 9).await;
    assert!(status.is_client_error(), "{body}");
    let refused_code = body["error"]["code"].as_str().unwrap().to_owned();
    (sign_in["id"].as_str().unwrap().to_owned(), refused_code)
}

/// A step-up the provider declines fails; another is cancelled.
async fn a_step_up_is_declined_and_another_cancelled(app: &TestApp) {
    let declined = app
        .created(json!({ "type": "step_up", "external_user_id": "bea" }))
        .await;
    let (status, body) = app.outcome(&declined, "declined").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cancelled = app
        .created(json!({ "type": "step_up", "external_user_id": "bea" }))
        .await;
    let cancel = format!(
        "/api/core/v1/flows/{}/cancel",
        cancelled["id"].as_str().unwrap()
    );
    let (status, body) = app.post(&cancel, json!({})).await;
    assert!(status.is_success(), "{body}");
}

fn flows_are_counted_by_type_and_outcome(text: &str) {
    let kind = |t| [("type", t)];
    assert_sample(
        text,
        "biometric_passkey_flows_created_total",
        &kind("registration"),
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_created_total",
        &kind("sign_in"),
        2.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_created_total",
        &kind("step_up"),
        2.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_completed_total",
        &kind("registration"),
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_completed_total",
        &kind("sign_in"),
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_failed_total",
        &[("type", "step_up"), ("reason", "idv_declined")],
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_flows_cancelled_total",
        &kind("step_up"),
        1.0,
    );
}

/// Refused proofs by code, their audit events, and the provider's calls.
fn refusals_are_counted_by_code(text: &str, refused_code: &str) {
    assert_sample(
        text,
        "biometric_passkey_possession_proofs_refused_total",
        &[("code", "counter_regression")],
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_possession_proofs_refused_total",
        &[("code", refused_code)],
        1.0,
    );
    assert_sample(
        text,
        "biometric_passkey_audit_events_total",
        &[
            ("event", "credential.counter_regression"),
            ("outcome", "rejected"),
        ],
        1.0,
    );
    // The synthetic provider's calls, by operation.
    assert!(
        sample(
            text,
            "biometric_passkey_idv_requests_total",
            &[
                ("provider", "synthetic"),
                ("operation", "start_run"),
                ("outcome", "ok")
            ],
        )
        .is_some_and(|n| n >= 3.0),
        "{text}"
    );
}

async fn webhook_deliveries_and_provider_calls_are_counted_by_outcome(store: Store) {
    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido_metered(
        store,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "cyd" }))
        .await;
    let run = flow["identity"]["workflow_run_id"].as_str().unwrap();
    assert_eq!(
        double.complete_run(run, "declined").await,
        vec![DeliveryOutcome::Status(200)]
    );
    // A forged delivery is refused.
    let body = br#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed"}}"#;
    let forged = double
        .deliver_raw(body, Some(&sign("not-the-webhook-token", body)))
        .await;
    assert_eq!(forged, DeliveryOutcome::Status(401));
    // Deliveries not acted on are counted in the trail a window at a time;
    // the metric follows the trail.
    app.flush_refusal_tally(true).await;

    let text = scrape(&app).await;
    let deliveries = "biometric_passkey_webhook_deliveries_total";
    assert_sample(&text, deliveries, &[("outcome", "accepted")], 1.0);
    assert_sample(
        &text,
        deliveries,
        &[("outcome", "rejected"), ("reason", "signature_invalid")],
        1.0,
    );
    assert_sample(
        &text,
        "biometric_passkey_flows_failed_total",
        &[("type", "registration"), ("reason", "idv_declined")],
        1.0,
    );
    for operation in ["create_applicant", "start_run", "read_run"] {
        let labels = [("provider", "onfido"), ("operation", operation)];
        assert_sample(
            &text,
            "biometric_passkey_idv_requests_total",
            &[&labels[..], &[("outcome", "ok")]].concat(),
            1.0,
        );
        assert_sample(
            &text,
            "biometric_passkey_idv_request_duration_seconds_count",
            &labels,
            1.0,
        );
    }
    assert_sample(
        &text,
        "biometric_passkey_http_requests_total",
        &[
            ("route", WEBHOOK_PATH),
            ("method", "POST"),
            ("status", "4xx"),
        ],
        1.0,
    );
}

async fn the_management_runtime_serves_its_own_metrics(store: Store) {
    let app = spawn_management_metered(store).await;
    for _ in 0..2 {
        assert_eq!(app.get("/api/health").await.status(), StatusCode::OK);
    }
    let unauthorised = app.get("/api/management/v1/me").await;
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    // The API's port serves no metrics (a path it does not know is the
    // dashboard's to answer).
    let on_api_port = app.get("/metrics").await.text().await.unwrap();
    assert!(!on_api_port.contains("biometric_passkey_"), "{on_api_port}");

    let text = scrape(&app).await;
    let requests = "biometric_passkey_http_requests_total";
    assert_sample(
        &text,
        requests,
        &[
            ("runtime", "management"),
            ("route", "/api/health"),
            ("status", "2xx"),
        ],
        2.0,
    );
    assert_sample(
        &text,
        requests,
        &[
            ("runtime", "management"),
            ("route", "/api/management/v1/me"),
            ("status", "4xx"),
        ],
        1.0,
    );
    assert_eq!(sample(&text, requests, &[("runtime", "core")]), None);
}
