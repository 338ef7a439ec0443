//! `onfido` mode end to end, against the provider's HTTP test double: every
//! flow type, provider outages and rate limits, and the webhook's defences.

use core_api::refusals::{DEFAULT_WEBHOOK_REFUSALS, RefusalLimits};
use domain::{AuditEventType, AuditQuery};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::core_client::expect_error;
use testkit::onfido_double::{
    DeliveryOutcome, Fault, OnfidoDouble, OnfidoDoubleConfig, Route, WebhookFault, sign,
};
use testkit::{
    OnfidoOptions, Store, TestApp, on_both_stores, spawn_core_onfido, spawn_core_onfido_rotating,
    spawn_core_onfido_with,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";

on_both_stores!(
    registration_step_up_and_recovery_run_against_the_provider,
    the_provider_never_sees_the_customers_identifier,
    a_provider_outage_while_starting_a_run_fails_the_flow_without_duplicates,
    a_user_past_the_run_limit_is_refused_before_the_provider_is_asked,
    a_rate_limited_read_is_retried_after_retry_after,
    an_unreadable_run_is_answered_503_and_processed_on_redelivery,
    forged_and_malformed_deliveries_are_refused_and_counted,
    events_not_acted_on_and_stale_completions_are_acknowledged_and_counted,
    a_flood_of_forged_deliveries_adds_a_row_per_reason_and_minute,
    behind_a_trusted_proxy_a_flood_cuts_off_its_own_source_only,
    a_slow_provider_read_is_answered_within_the_budget_and_reconciled_later,
    a_loose_tags_filter_never_adopts_an_earlier_approved_run,
    a_503_after_the_run_was_created_is_looked_up_not_retried,
    an_applicant_gone_at_the_provider_is_replaced_on_the_next_step_up,
    a_run_approved_at_creation_verifies_its_flow,
    replayed_and_reformatted_deliveries_count_once,
    events_for_unknown_runs_are_acknowledged_and_audited,
    deleting_a_user_forgets_them_at_the_provider,
    a_lost_webhook_is_caught_by_the_reconciler,
    a_lagging_read_is_applied_on_redelivery,
    a_webhook_before_its_flow_records_the_run_does_not_block_it,
    a_run_made_after_its_creation_gave_up_is_found_and_recorded_with_the_flow,
    an_applicant_made_for_a_run_that_failed_is_kept_and_forgotten_with_the_user,
    during_a_secret_rotation_both_secrets_verify_and_the_audit_says_which,
    without_a_previous_secret_a_delivery_signed_with_the_old_one_is_refused,
);

struct Setup {
    double: OnfidoDouble,
    app: TestApp,
    config: OnfidoDoubleConfig,
}

async fn setup(store: Store) -> Setup {
    setup_with(store, OnfidoDoubleConfig::default()).await
}

async fn setup_with(store: Store, config: OnfidoDoubleConfig) -> Setup {
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido(
        store,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    Setup {
        double,
        app,
        config,
    }
}

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

fn run_id(flow: &Value) -> &str {
    flow["identity"]["workflow_run_id"].as_str().unwrap()
}

async fn complete(s: &Setup, flow: &Value, status: &str) -> Vec<DeliveryOutcome> {
    s.double.complete_run(run_id(flow), status).await
}

async fn registered(s: &Setup, user: &str, credential: &str) -> Value {
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": user }))
        .await;
    s.app
        .store_reference(&flow, b"encrypted-biometric-token")
        .await;
    let (status, body) = s.app.register_credential(&flow, credential).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        complete(s, &flow, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    let done = s.app.flow(id(&flow)).await;
    assert_eq!(done["state"], "completed", "{done}");
    done
}

async fn registration_step_up_and_recovery_run_against_the_provider(store: Store) {
    let s = setup(store).await;
    let registration = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "alice" }))
        .await;
    assert_eq!(registration["identity"]["provider"], "onfido");
    let run = s.double.run(run_id(&registration)).unwrap();
    assert_eq!(
        registration["identity"]["sdk_token"], run["sdk_token"],
        "the run's own SDK token"
    );
    assert_eq!(run["status"], "awaiting_input");
    assert_eq!(run["workflow_id"], "0c6b0e4a-1111-4b5b-9a1e-000000000001");
    s.app.store_reference(&registration, b"ebt").await;
    s.app
        .register_credential(&registration, "alice-phone")
        .await;
    assert_eq!(
        complete(&s, &registration, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&registration)).await["state"], "completed");

    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "alice" }))
        .await;
    assert_eq!(
        s.double.run(run_id(&step_up)).unwrap()["workflow_id"],
        "0c6b0e4a-1111-4b5b-9a1e-000000000002"
    );
    s.app.assert_with(&step_up, "alice-phone", 1).await;
    complete(&s, &step_up, "approved").await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");

    let declined = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "alice" }))
        .await;
    complete(&s, &declined, "declined").await;
    let failed = s.app.flow(id(&declined)).await;
    assert_eq!(
        (failed["state"].as_str(), failed["failure_reason"].as_str()),
        (Some("failed"), Some("idv_declined"))
    );

    let recovery = s
        .app
        .created(json!({ "type": "recovery", "external_user_id": "alice" }))
        .await;
    assert_eq!(
        s.double.run(run_id(&recovery)).unwrap()["workflow_id"],
        "0c6b0e4a-1111-4b5b-9a1e-000000000003"
    );
    s.app
        .register_credential(&recovery, "alice-new-phone")
        .await;
    complete(&s, &recovery, "approved").await;
    assert_eq!(s.app.flow(id(&recovery)).await["state"], "completed");

    assert_eq!(
        s.double.applicants_created(),
        1,
        "one applicant per user, reused"
    );
    assert_eq!(s.double.runs_created(), 4);
}

async fn the_provider_never_sees_the_customers_identifier(store: Store) {
    let s = setup(store).await;
    registered(&s, "customer-4711", "c4711-phone").await;
    let requests = s.double.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.authorized),
        "every call carries the API token"
    );
    let sent = format!("{requests:?}");
    assert!(
        !sent.contains("customer-4711"),
        "the provider saw the customer's identifier"
    );
    let run = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/workflow_runs"))
        .unwrap();
    assert!(
        run.body["customer_user_id"]
            .as_str()
            .unwrap()
            .starts_with("cu_")
    );
    assert!(run.body["tags"][0].as_str().unwrap().starts_with("flow:"));
}

/// Runs may be billed: a user past the day's limit never reaches the provider.
async fn a_user_past_the_run_limit_is_refused_before_the_provider_is_asked(store: Store) {
    let s = setup(store).await;
    let limits = domain::service::FlowPolicy::default();
    let mut started = 0;
    // Open flows are limited too: let each batch expire (its runs still count).
    while started < limits.max_idv_runs_per_user_per_day {
        for _ in 0..limits
            .max_open_flows_per_user
            .min(limits.max_idv_runs_per_user_per_day - started)
        {
            s.app
                .created(json!({ "type": "registration", "external_user_id": "rita" }))
                .await;
            started += 1;
        }
        s.app.clock.advance(time::Duration::minutes(20));
    }
    assert_eq!(s.double.runs_created(), started as usize);
    let (status, body) = s.app.create_flow("registration", "rita").await;
    expect_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "idv_run_limit_reached",
    );
    assert_eq!(
        s.double.runs_created(),
        started as usize,
        "no run was created"
    );
}

async fn a_provider_outage_while_starting_a_run_fails_the_flow_without_duplicates(store: Store) {
    let s = setup(store).await;
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 10);
    let (status, body) = s.app.create_flow("registration", "bob").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    assert_eq!(s.double.runs_created(), 0);

    s.double
        .set_route_fault(Route::CreateApplicant, Fault::NonJsonBadGateway, 10);
    let (status, body) = s.app.create_flow("registration", "bob").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );

    s.double
        .set_route_fault(Route::CreateApplicant, Fault::ServerError, 0);
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 0);
    registered(&s, "bob", "bob-phone").await;
    assert_eq!(
        s.double.runs_created(),
        1,
        "failed attempts created no runs"
    );
}

async fn a_rate_limited_read_is_retried_after_retry_after(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "cleo" }))
        .await;
    s.app.store_reference(&flow, b"ebt").await;
    s.app.register_credential(&flow, "cleo-phone").await;
    s.double.set_route_fault(
        Route::ReadRun,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        1,
    );
    let started = std::time::Instant::now();
    assert_eq!(
        complete(&s, &flow, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "waited for Retry-After"
    );
    assert_eq!(s.app.flow(id(&flow)).await["state"], "completed");

    // Without Retry-After the client backs off on its own.
    let second = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "cleo2" }))
        .await;
    s.double
        .set_route_fault(Route::ReadRun, Fault::RateLimited { retry_after: None }, 1);
    assert_eq!(
        complete(&s, &second, "declined").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&second)).await["state"], "failed");
}

async fn an_unreadable_run_is_answered_503_and_processed_on_redelivery(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "dino" }))
        .await;
    s.double
        .set_route_fault(Route::ReadRun, Fault::ServerError, 100);
    let outcomes = complete(&s, &flow, "declined").await;
    assert_eq!(outcomes[0], DeliveryOutcome::Status(503));
    assert_eq!(
        s.app.flow(id(&flow)).await["state"],
        "awaiting_verification",
        "nothing recorded"
    );
    s.double
        .set_route_fault(Route::ReadRun, Fault::ServerError, 0);
    // The provider's retry of the same event is processed normally.
    let body = completed_body(run_id(&flow), "declined", domain::Clock::now(&*s.app.clock));
    let outcome = s
        .double
        .deliver_raw(&body, Some(&sign(&s.config.webhook_token, &body)))
        .await;
    assert_eq!(outcome, DeliveryOutcome::Status(200));
    assert_eq!(s.app.flow(id(&flow)).await["state"], "failed");
}

/// A `workflow_run.completed` event as the provider sends it (compact JSON).
fn completed_body(run_id: &str, status: &str, at: OffsetDateTime) -> Vec<u8> {
    let at = at.format(&Rfc3339).unwrap();
    serde_json::to_vec(&json!({ "payload": {
        "resource_type": "workflow_run",
        "action": "workflow_run.completed",
        "object": { "id": run_id, "status": status, "completed_at_iso8601": at,
                    "href": format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run_id}") },
    }}))
    .unwrap()
}

/// The counts of deliveries not acted on, as written for windows that have
/// ended: `(event type, reason, count)`, sorted.
async fn tallied(app: &TestApp) -> Vec<(String, String, u64)> {
    let mut rows: Vec<(String, String, u64)> = app
        .audit_trail()
        .await
        .into_iter()
        .filter(|e| ["webhook.rejected", "webhook.ignored"].contains(&e.event_type.as_str()))
        .map(|e| {
            assert!(e.details["first_at"].is_string() && e.details["last_at"].is_string());
            (
                e.event_type.as_str().to_owned(),
                e.reason.unwrap_or_default(),
                e.details["count"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Ends the current counting window and writes its counts, as the Core
/// API's background work does every 30 seconds.
async fn end_tally_window(app: &TestApp) {
    app.clock.advance(Duration::minutes(2));
    app.flush_refusal_tally(false).await;
}

/// The reasons of the deliveries refused so far, once per delivery, sorted.
async fn rejections(app: &TestApp) -> Vec<String> {
    end_tally_window(app).await;
    tallied(app)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "webhook.rejected")
        .flat_map(|(_, reason, count)| std::iter::repeat_n(reason, count as usize))
        .collect()
}

async fn post_delivery(s: &Setup, body: &[u8], signature: Option<&str>) -> (StatusCode, Value) {
    let mut request = s
        .app
        .client
        .post(s.app.url(WEBHOOK_PATH))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-SHA2-Signature", signature);
    }
    s.app.send(request).await
}

async fn forged_and_malformed_deliveries_are_refused_and_counted(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "erin" }))
        .await;
    // The provider has approved the run, but the deliveries below are hostile.
    s.double.set_webhook_fault(WebhookFault::NoDelivery);
    complete(&s, &flow, "approved").await;
    let now = domain::Clock::now(&*s.app.clock);
    let good = completed_body(run_id(&flow), "approved", now);
    let token = &s.config.webhook_token;
    let mut changed = good.clone();
    let last = changed.len() - 3;
    changed[last] = b'X';
    let signature = sign(token, &good);
    let unauthorized = (StatusCode::UNAUTHORIZED, "webhook_signature_invalid");
    let malformed = (StatusCode::BAD_REQUEST, "webhook_malformed");
    // (body, signature, expected answer, reason counted)
    type Case<'a> = (Vec<u8>, Option<String>, (StatusCode, &'a str), &'a str);
    let cases: Vec<Case> = vec![
        (
            changed.clone(),
            Some(sign(token, &good)),
            unauthorized,
            "signature_invalid",
        ),
        (
            good.clone(),
            Some(sign("another-webhook-token", &good)),
            unauthorized,
            "signature_invalid",
        ),
        (
            good.clone(),
            Some(signature.to_uppercase()),
            unauthorized,
            "signature_malformed",
        ),
        (
            good.clone(),
            Some(signature[..40].to_owned()),
            unauthorized,
            "signature_malformed",
        ),
        (good.clone(), None, unauthorized, "signature_missing"),
        (
            good.clone(),
            Some(String::new()),
            unauthorized,
            "signature_missing",
        ),
        {
            let junk = b"{\"payload\":{\"object\":{}}}".to_vec();
            let sig = sign(token, &junk);
            (junk, Some(sig), malformed, "malformed")
        },
        {
            let junk = b"not json".to_vec();
            let sig = sign(token, &junk);
            (junk, Some(sig), malformed, "malformed")
        },
    ];
    let mut expected = Vec::new();
    for (body, signature, (status_wanted, code), reason) in cases {
        let (status, answer) = post_delivery(&s, &body, signature.as_deref()).await;
        expect_error(status, &answer, status_wanted, code);
        expected.push(reason.to_owned());
        let unchanged = s.app.flow(id(&flow)).await;
        assert_eq!(
            unchanged["state"], "awaiting_verification",
            "{reason} changed the flow"
        );
    }
    assert!(
        tallied(&s.app).await.is_empty(),
        "counted, not written one by one"
    );
    expected.sort();
    assert_eq!(rejections(&s.app).await, expected);
    // The genuine delivery still works afterwards.
    let good = completed_body(run_id(&flow), "approved", domain::Clock::now(&*s.app.clock));
    assert_eq!(
        s.double.deliver_raw(&good, Some(&sign(token, &good))).await,
        DeliveryOutcome::Status(200)
    );
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
}

/// A webhook registered without an `events` list receives every event type:
/// those not acted on, and completions too old to act on, are acknowledged
/// (a refusal would only make the provider deliver them again), counted, and
/// change nothing; the reconciler picks the run's result up.
async fn events_not_acted_on_and_stale_completions_are_acknowledged_and_counted(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "ezra" }))
        .await;
    s.double.set_webhook_fault(WebhookFault::NoDelivery);
    complete(&s, &flow, "approved").await;
    let now = domain::Clock::now(&*s.app.clock);
    let run = run_id(&flow);
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (
            json!({"payload": {"resource_type": "workflow_task", "action": "workflow_task.started",
                "object": {"id": "profile_1eb92", "status": "started", "workflow_run_id": run,
                           "started_at_iso8601": at(now - Duration::days(3))}}})
            .to_string()
            .into_bytes(),
            "ignored",
        ),
        (
            json!({"payload": {"resource_type": "audit_log", "action": "audit_log.created",
                "object": {"id": "a1b2"}}})
            .to_string()
            .into_bytes(),
            "ignored",
        ),
        (
            json!({"payload": {"resource_type": "watchlist_monitor",
                "action": "watchlist_monitor.matches_updated", "object": {"id": "w1"}}})
            .to_string()
            .into_bytes(),
            "ignored",
        ),
        (
            completed_body(run, "approved", now - Duration::minutes(16)),
            "stale",
        ),
        (
            completed_body(run, "approved", now + Duration::minutes(5)),
            "stale",
        ),
        (
            json!({"payload": {"resource_type": "workflow_run", "action": "workflow_run.completed",
                "object": {"id": run, "status": "approved"}}})
            .to_string()
            .into_bytes(),
            "stale",
        ),
    ];
    for (body, result) in &bodies {
        let signature = sign(&s.config.webhook_token, body);
        let (status, answer) = post_delivery(&s, body, Some(&signature)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["result"], *result);
        let unchanged = s.app.flow(id(&flow)).await;
        assert_eq!(unchanged["identity"]["status"], "pending", "{answer}");
    }
    end_tally_window(&s.app).await;
    let row = |kind: &str, reason: &str, count: u64| (kind.to_owned(), reason.to_owned(), count);
    assert_eq!(
        tallied(&s.app).await,
        vec![
            row("webhook.ignored", "audit_log.created", 1),
            row("webhook.ignored", "watchlist_monitor.matches_updated", 1),
            row("webhook.ignored", "workflow_task.started", 1),
            row("webhook.rejected", "future_timestamp", 1),
            row("webhook.rejected", "stale", 2),
        ]
    );
    // The reconciler reads the run and moves the flow.
    s.app.clock.advance(Duration::minutes(1));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.checked, pass.applied), (1, 1));
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
}

/// Thousands of forged deliveries from one address: only the first
/// [`DEFAULT_WEBHOOK_REFUSALS`] are even checked, the rest are answered 429 at
/// once; the audit trail gains one row per reason and minute, and real traffic
/// is served meanwhile and afterwards.
async fn a_flood_of_forged_deliveries_adds_a_row_per_reason_and_minute(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "fred" }))
        .await;
    let rows_before = s.app.audit_trail().await.len();
    let body = completed_body(run_id(&flow), "approved", domain::Clock::now(&*s.app.clock));
    let forged = sign("not-the-webhook-token", &body);
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let client = s.app.client.clone();
            let url = s.app.url(WEBHOOK_PATH);
            let body = body.clone();
            let forged = forged.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..500 {
                    let response = client
                        .post(&url)
                        .header("X-SHA2-Signature", &forged)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        assert!(response.headers().contains_key("retry-after"));
                    }
                    statuses.push(response.status());
                }
                statuses
            })
        })
        .collect();
    // Real traffic meanwhile: the database is there for it.
    let mut others = Vec::new();
    for n in 0..5 {
        let user = format!("gwen-{n}");
        others.push(
            s.app
                .created(json!({ "type": "registration", "external_user_id": user }))
                .await,
        );
        assert_eq!(s.app.get("/api/ready").await.status(), StatusCode::OK);
    }
    let mut statuses = Vec::new();
    for flood in floods {
        statuses.extend(flood.await.unwrap());
    }
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    // A refusal counts once answered: the four clients' requests already in
    // flight when the limit is reached are still checked.
    let checked = count(StatusCode::UNAUTHORIZED);
    let limit = DEFAULT_WEBHOOK_REFUSALS as usize;
    assert!((limit..=limit + 4).contains(&checked), "{checked} checked");
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 2000 - checked);

    let trail = s.app.audit_trail().await;
    let written = &trail[..trail.len() - rows_before];
    assert!(
        written
            .iter()
            .all(|e| !e.event_type.as_str().starts_with("webhook.")),
        "no row per delivery"
    );
    let mut real = 0;
    for other in &others {
        real += 1 + s.app.audit_types(id(other)).await.len();
    }
    assert!(
        written.len() <= real,
        "only the other registrations' events (their users, their flows)"
    );
    // Ending the window also ends the source's minute.
    end_tally_window(&s.app).await;
    assert_eq!(
        tallied(&s.app).await,
        vec![
            (
                "webhook.rejected".to_owned(),
                "signature_invalid".to_owned(),
                checked as u64
            ),
            (
                "webhook.rejected".to_owned(),
                "source_limited".to_owned(),
                (2000 - checked) as u64
            ),
        ]
    );
    assert_eq!(
        complete(&s, &flow, "declined").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&flow)).await["state"], "failed");
}

/// Behind a trusted proxy, the limit applies to the address the proxy
/// names: a forger flooding through it is cut off while the provider's own
/// deliveries, from another address, go through at once; an address the
/// forger writes into `X-Forwarded-For` itself changes nothing.
async fn behind_a_trusted_proxy_a_flood_cuts_off_its_own_source_only(store: Store) {
    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let limits = RefusalLimits {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..RefusalLimits::default()
    };
    let app = spawn_core_onfido_with(
        store,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
        OnfidoOptions {
            refusals: limits,
            ..OnfidoOptions::default()
        },
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    let s = Setup {
        double,
        app,
        config,
    };
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "fred" }))
        .await;
    let body = completed_body(run_id(&flow), "approved", domain::Clock::now(&*s.app.clock));
    let forged = sign("not-the-webhook-token", &body);
    let mut statuses = Vec::new();
    for _ in 0..DEFAULT_WEBHOOK_REFUSALS + 20 {
        let response = s
            .app
            .client
            .post(s.app.url(WEBHOOK_PATH))
            // The forger's own left-most entry is not believed; the proxy's is.
            .header("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
            .header("X-SHA2-Signature", &forged)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "the forger's address is over its limit"
    );
    // The provider reaches the same replica through the same proxy, from
    // another address: not limited.
    assert_eq!(
        complete(&s, &flow, "declined").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&flow)).await["state"], "failed");
}

/// The provider counts a delivery not answered within 10 seconds as failed:
/// a slow re-read is given up within the budget, answered 503 with nothing
/// recorded, and the reconciler moves the flow later.
async fn a_slow_provider_read_is_answered_within_the_budget_and_reconciled_later(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "hana" }))
        .await;
    s.double.set_route_fault(
        Route::ReadRun,
        Fault::Delay(std::time::Duration::from_secs(15)),
        1,
    );
    let started = std::time::Instant::now();
    let outcomes = complete(&s, &flow, "approved").await;
    let took = started.elapsed();
    assert_eq!(outcomes, vec![DeliveryOutcome::Status(503)]);
    assert!(
        took < std::time::Duration::from_secs(9),
        "answered after {took:?}; the provider waits 10 s"
    );
    assert!(took >= domain::idv::WEBHOOK_READ_BUDGET, "{took:?}");
    assert_eq!(s.app.flow(id(&flow)).await["identity"]["status"], "pending");
    s.app.clock.advance(Duration::minutes(3));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.checked, pass.applied), (1, 1));
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
}

/// The user's applicant carries every run of theirs. If the provider's list
/// ignored its `tags` filter (nothing official pins down how it matches), a
/// step-up whose run creation failed ambiguously must not adopt the user's
/// earlier approved run: it would be verified without a capture.
async fn a_loose_tags_filter_never_adopts_an_earlier_approved_run(store: Store) {
    let s = setup_with(
        store,
        OnfidoDoubleConfig {
            loose_tags_filter: true,
            ..OnfidoDoubleConfig::default()
        },
    )
    .await;
    let registration = registered(&s, "ivan", "ivan-phone").await;
    let approved = run_id(&registration).to_owned();
    assert_eq!(s.double.run(&approved).unwrap()["status"], "approved");

    // The creation fails (nothing created): the look-up lists only the
    // approved run, and nothing is adopted.
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 10);
    let (status, body) = s.app.create_flow("step_up", "ivan").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    assert_eq!(s.double.runs_created(), 1);
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 0);
    let trail = s.app.audit_trail().await;
    let verified: Vec<_> = trail
        .iter()
        .filter(|e| e.event_type.as_str() == "flow.verified")
        .collect();
    assert_eq!(verified.len(), 1, "only the registration is verified");
    assert_eq!(
        verified[0].subject.flow_id.unwrap().to_string(),
        id(&registration)
    );
    let failed = trail
        .iter()
        .find(|e| e.event_type.as_str() == "flow.failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("idv_unavailable"));

    // The run is created but its answer is lost: the look-up lists the
    // approved run first, and adopts only the run made for this flow.
    s.double
        .set_route_fault(Route::CreateRun, Fault::DropConnection, 1);
    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "ivan" }))
        .await;
    assert_eq!(s.double.runs_created(), 2);
    assert_ne!(run_id(&step_up), approved);
    let run = s.double.run(run_id(&step_up)).unwrap();
    assert_eq!(run["status"], "awaiting_input");
    assert_eq!(run["tags"], json!([format!("flow:{}", id(&step_up))]));
    assert_eq!(step_up["identity"]["status"], "pending");
    assert_eq!(step_up["state"], "awaiting_verification");
}

/// A gateway in front of the provider can answer 503 after the run was
/// created: the run is looked up before the creation is retried.
async fn a_503_after_the_run_was_created_is_looked_up_not_retried(store: Store) {
    let s = setup(store).await;
    s.double
        .set_route_fault(Route::CreateRun, Fault::UnavailableAfterProcessing, 1);
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "jack" }))
        .await;
    assert_eq!(s.double.runs_created(), 1, "one run, not two");
    assert_eq!(s.double.run_ids(), vec![run_id(&flow).to_owned()]);
    assert!(flow["identity"]["sdk_token"].is_string());
    // A refusal that surely created nothing is retried.
    s.double.set_route_fault(
        Route::CreateRun,
        Fault::RateLimited { retry_after: None },
        1,
    );
    s.app
        .created(json!({ "type": "registration", "external_user_id": "jill" }))
        .await;
    assert_eq!(s.double.runs_created(), 2);
}

/// Applicants can be deleted at the provider, or scheduled for deletion: the
/// user's next flow gets a new applicant instead of failing for good, and the
/// user's deletion still removes the applicant they have.
async fn an_applicant_gone_at_the_provider_is_replaced_on_the_next_step_up(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    registered(&s, "kate", "kate-phone").await;
    let first = s.double.applicant_ids().pop().unwrap();
    s.double.delete_applicant(&first);

    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    assert_eq!(s.double.applicants_created(), 2);
    let applicant_of = |flow: &Value| {
        s.double.run(run_id(flow)).unwrap()["applicant_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let second = applicant_of(&step_up);
    assert_ne!(second, first);
    s.app.assert_with(&step_up, "kate-phone", 1).await;
    complete(&s, &step_up, "approved").await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");

    // Scheduled for deletion: replaced too, and deleted at once.
    s.double.schedule_applicant_deletion(&second);
    let again = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    let third = applicant_of(&again);
    assert_ne!(third, second);
    assert_eq!(s.double.applicants_created(), 3);
    let deleted = |applicant: &str| {
        s.double
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/applicants/{applicant}")))
    };
    assert!(deleted(&second));
    // The next flow uses the new applicant as it is.
    let next = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "kate" }))
        .await;
    assert_eq!(applicant_of(&next), third);
    assert_eq!(s.double.applicants_created(), 3);

    let (status, _) = s
        .app
        .send(s.app.client.delete(s.app.url("/api/core/v1/users/kate")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        flows.process_provider_cleanups(10).await.unwrap().forgotten,
        1
    );
    assert!(deleted(&third));
}

/// The official clients' tests expect a run approved at creation to carry an
/// SDK token too; its flow is verified from the start.
async fn a_run_approved_at_creation_verifies_its_flow(store: Store) {
    let s = setup_with(
        store,
        OnfidoDoubleConfig {
            non_interactive_workflow_id: Some("0c6b0e4a-1111-4b5b-9a1e-000000000002".into()),
            ..OnfidoDoubleConfig::default()
        },
    )
    .await;
    registered(&s, "liam", "liam-phone").await;
    let step_up = s
        .app
        .created(json!({ "type": "step_up", "external_user_id": "liam" }))
        .await;
    assert!(s.double.run(run_id(&step_up)).unwrap()["sdk_token"].is_string());
    assert_eq!(step_up["identity"]["status"], "verified", "{step_up}");
    s.app.assert_with(&step_up, "liam-phone", 1).await;
    assert_eq!(s.app.flow(id(&step_up)).await["state"], "completed");
}

async fn replayed_and_reformatted_deliveries_count_once(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "finn" }))
        .await;
    s.double.set_webhook_fault(WebhookFault::Duplicate);
    let outcomes = complete(&s, &flow, "approved").await;
    assert_eq!(
        outcomes,
        vec![DeliveryOutcome::Status(200), DeliveryOutcome::Status(200)]
    );
    let after_first = s.app.flow(id(&flow)).await;
    assert_eq!(after_first["identity"]["status"], "verified");

    let now = domain::Clock::now(&*s.app.clock);
    let compact = completed_body(run_id(&flow), "approved", now);
    let value: Value = serde_json::from_slice(&compact).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    for body in [&compact, &compact, &pretty] {
        let outcome = s
            .double
            .deliver_raw(body, Some(&sign(&s.config.webhook_token, body)))
            .await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Status(200),
            "a correctly signed delivery is accepted"
        );
    }
    let after_all = s.app.flow(id(&flow)).await;
    assert_eq!(
        after_all["version"], after_first["version"],
        "replays changed nothing"
    );
    let verified = s
        .app
        .audit_types(id(&flow))
        .await
        .into_iter()
        .filter(|t| t == "flow.verified")
        .count();
    assert_eq!(verified, 1);
    assert!(rejections(&s.app).await.is_empty());
}

async fn events_for_unknown_runs_are_acknowledged_and_audited(store: Store) {
    let s = setup(store).await;
    let body = completed_body(
        "7d0e6f52-0000-4000-8000-00000000abcd",
        "approved",
        domain::Clock::now(&*s.app.clock),
    );
    let outcome = s
        .double
        .deliver_raw(&body, Some(&sign(&s.config.webhook_token, &body)))
        .await;
    assert_eq!(
        outcome,
        DeliveryOutcome::Status(200),
        "acknowledged, so the provider does not retry forever"
    );
    let trail = s.app.audit_trail().await;
    let event = &trail[0];
    assert_eq!(event.event_type.as_str(), "provider.event_received");
    assert_eq!(event.reason.as_deref(), Some("unknown_run"));
    assert!(
        !s.app
            .repo
            .provider_event_seen(&domain::service::provider_event_key(
                "onfido",
                "7d0e6f52-0000-4000-8000-00000000abcd",
                "approved"
            ))
            .await
            .unwrap(),
        "not recorded as seen: the run's flow may not be written yet"
    );
    // Other event types are acknowledged and ignored.
    let task = br#"{"payload":{"resource_type":"workflow_task","action":"workflow_task.started","object":{"id":"profile_1eb92","status":"started","started_at_iso8601":"TIME"}}}"#;
    let task = String::from_utf8_lossy(task).replace(
        "TIME",
        &domain::Clock::now(&*s.app.clock).format(&Rfc3339).unwrap(),
    );
    let outcome = s
        .double
        .deliver_raw(
            task.as_bytes(),
            Some(&sign(&s.config.webhook_token, task.as_bytes())),
        )
        .await;
    assert_eq!(outcome, DeliveryOutcome::Status(200));
}

async fn deleting_a_user_forgets_them_at_the_provider(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    registered(&s, "gina", "gina-phone").await;
    // The provider is down when the user is deleted: the deletion still happens at once.
    s.double
        .set_route_fault(Route::BiometricTokens, Fault::ServerError, 100);
    let (status, _) = s
        .app
        .send(s.app.client.delete(s.app.url("/api/core/v1/users/gina")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.app.get_json("/api/core/v1/users/gina").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let down = flows.process_provider_cleanups(10).await.unwrap();
    assert_eq!(
        (down.forgotten, down.retrying.len()),
        (0, 1),
        "the provider is down"
    );
    let queued = s.app.repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(
        (queued.len(), queued[0].attempts),
        (1, 1),
        "kept for a later pass"
    );

    s.double
        .set_route_fault(Route::BiometricTokens, Fault::ServerError, 0);
    s.app
        .clock
        .advance(domain::service::provider_cleanup_backoff(1));
    assert_eq!(
        flows.process_provider_cleanups(10).await.unwrap().forgotten,
        1
    );
    assert!(
        s.app
            .repo
            .pending_provider_cleanups(10)
            .await
            .unwrap()
            .is_empty()
    );
    let requests = s.double.requests();
    let pseudonym = queued[0].customer_user_id.as_str();
    assert!(requests.iter().any(
        |r| r.method == "DELETE" && r.path.ends_with(&format!("/biometric_tokens/{pseudonym}"))
    ));
    assert!(
        requests
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains("/applicants/"))
    );
}

async fn a_lost_webhook_is_caught_by_the_reconciler(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "hugo" }))
        .await;
    s.double.set_webhook_fault(WebhookFault::NoDelivery);
    assert!(
        complete(&s, &flow, "approved").await.is_empty(),
        "no delivery at all"
    );

    let early = flows.reconcile(50).await.unwrap();
    assert_eq!(early.checked, 0, "too early: the webhook may still come");
    s.app.clock.advance(Duration::minutes(3));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.checked, pass.applied), (1, 1));
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
    let again = flows.reconcile(50).await.unwrap();
    assert_eq!(again.checked, 0, "checked flows wait for the next interval");

    // The webhook arriving late changes nothing more.
    let late = completed_body(run_id(&flow), "approved", domain::Clock::now(&*s.app.clock));
    assert_eq!(
        s.double
            .deliver_raw(&late, Some(&sign(&s.config.webhook_token, &late)))
            .await,
        DeliveryOutcome::Status(200)
    );
    let verified = s
        .app
        .audit_types(id(&flow))
        .await
        .into_iter()
        .filter(|t| t == "flow.verified")
        .count();
    assert_eq!(verified, 1);
}

async fn a_lagging_read_is_applied_on_redelivery(store: Store) {
    let s = setup(store).await;
    let flow = s
        .app
        .created(json!({ "type": "registration", "external_user_id": "iris" }))
        .await;
    s.double.set_read_lag(3);
    // The webhook says approved, but reads still show the old status for a while.
    assert_eq!(
        complete(&s, &flow, "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(s.app.flow(id(&flow)).await["identity"]["status"], "pending");
    // Its re-delivery is not taken for a duplicate once the read has caught up.
    let body = completed_body(run_id(&flow), "approved", domain::Clock::now(&*s.app.clock));
    let signature = sign(&s.config.webhook_token, &body);
    for _ in 0..3 {
        s.double.deliver_raw(&body, Some(&signature)).await;
    }
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
}

async fn a_webhook_before_its_flow_records_the_run_does_not_block_it(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    // The provider creates the run at once but answers late, and the user is
    // quick: the run completes, and its webhook arrives, before the flow has
    // recorded which run is its own.
    s.double.set_route_fault(
        Route::CreateRun,
        Fault::Delay(std::time::Duration::from_millis(700)),
        1,
    );
    let creating = {
        let app_url = s.app.url("/api/core/v1/flows");
        let client = s.app.client.clone();
        tokio::spawn(async move {
            client
                .post(app_url)
                .json(&json!({ "type": "registration", "external_user_id": "jonas" }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let run = loop {
        if let Some(run) = s.double.run_ids().pop() {
            break run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        s.double.complete_run(&run, "approved").await,
        vec![DeliveryOutcome::Status(200)],
        "acknowledged as a run not known yet"
    );
    let flow = creating.await.unwrap();
    assert_eq!(run_id(&flow), run);
    assert_eq!(flow["identity"]["status"], "pending");
    // The reconciler reads the run later, and the flow moves.
    s.app.clock.advance(Duration::minutes(3));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.checked, pass.applied), (1, 1));
    assert_eq!(
        s.app.flow(id(&flow)).await["identity"]["status"],
        "verified"
    );
}

/// The provider makes the run but answers after the flow's creation has given
/// up (and its list of runs is as late): the creation is answered 503 within
/// 5 seconds, and the reconciler later finds the run and records it with the
/// failed flow, so that no run at the provider is left without its flow.
async fn a_run_made_after_its_creation_gave_up_is_found_and_recorded_with_the_flow(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    registered(&s, "lena", "lena-phone").await;
    let late = Fault::Delay(std::time::Duration::from_secs(8));
    s.double.set_route_fault(Route::CreateRun, late.clone(), 1);
    s.double.set_route_fault(Route::ListRuns, late, 1);
    let runs_before = s.double.runs_created();
    let known = s.double.run_ids();
    let started = std::time::Instant::now();
    let (status, body) = s.app.create_flow("step_up", "lena").await;
    let took = started.elapsed();
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "answered after {took:?}"
    );
    assert_eq!(s.double.runs_created(), runs_before + 1, "the run was made");
    let made = s
        .double
        .run_ids()
        .into_iter()
        .find(|run| !known.contains(run))
        .unwrap();
    let found_events = || async {
        s.app
            .repo
            .audit_events(&AuditQuery {
                event_type: Some(AuditEventType::FlowIdvRunFound),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .items
    };

    // Not before `BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER`: the provider may
    // still be working on the request.
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.looked_up, pass.found), (0, 0));
    s.app.clock.advance(Duration::minutes(3));
    // Two replicas' reconcilers at once: the run is recorded once, and the
    // one that lost the race is not an error.
    let (one, other) = tokio::join!(flows.reconcile(50), flows.reconcile(50));
    let (one, other) = (one.unwrap(), other.unwrap());
    assert_eq!(one.found + other.found, 1);
    let events = found_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.details["run_id"], made.as_str());
    let flow_id = events[0].event.subject.flow_id.unwrap().to_string();
    let flow = s.app.flow(&flow_id).await;
    assert_eq!(flow["state"], "failed", "{flow}");
    assert_eq!(flow["failure_reason"], "idv_unavailable", "{flow}");
    assert_eq!(run_id(&flow), made, "{flow}");

    // Looked up once: the next pass has nothing to do, and no second run
    // was started.
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.looked_up, pass.found), (0, 0));
    assert_eq!(found_events().await.len(), 1);
    assert_eq!(s.double.runs_created(), runs_before + 1);

    // A creation answered 500 made nothing: looked up, nothing found, done.
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 10);
    let (status, body) = s.app.create_flow("step_up", "lena").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    s.app.clock.advance(Duration::minutes(3));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.looked_up, pass.found), (1, 0));
    let pass = flows.reconcile(50).await.unwrap();
    assert_eq!((pass.looked_up, pass.found), (0, 0));
    assert_eq!(found_events().await.len(), 1);
}

async fn an_applicant_made_for_a_run_that_failed_is_kept_and_forgotten_with_the_user(store: Store) {
    let s = setup(store).await;
    let flows = s.app.flows.clone().unwrap();
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 10);
    let (status, body) = s.app.create_flow("registration", "kira").await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "idv_unavailable",
    );
    assert_eq!(
        (s.double.applicants_created(), s.double.runs_created()),
        (1, 0)
    );
    let user = s
        .app
        .repo
        .user_by_external_id(&domain::ExternalUserId::parse("kira").unwrap())
        .await
        .unwrap();
    assert!(
        user.idv_applicant_sealed.is_some(),
        "the provider keeps an applicant: the user knows it"
    );
    // The next attempt uses the same applicant.
    s.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 0);
    s.app
        .created(json!({ "type": "registration", "external_user_id": "kira" }))
        .await;
    assert_eq!(s.double.applicants_created(), 1);

    let (status, _) = s
        .app
        .send(s.app.client.delete(s.app.url("/api/core/v1/users/kira")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        flows.process_provider_cleanups(10).await.unwrap().forgotten,
        1
    );
    let applicant = s
        .double
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/workflow_runs"))
        .map(|r| r.body["applicant_id"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(
        s.double
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/applicants/{applicant}")))
    );
}

/// The secret the Core API is switched to while the provider (the double)
/// still signs with its configured `webhook_token`.
const NEW_WEBHOOK_SECRET: &str = "rotated_webhook_token_00112233445566778899";

/// The `signature` detail of the `provider.event_received` events of a flow.
async fn received_signatures(app: &TestApp, flow: &Value) -> Vec<Value> {
    app.audit_trail()
        .await
        .into_iter()
        .filter(|e| e.event_type.as_str() == "provider.event_received")
        .filter(|e| e.subject.flow_id.map(|f| f.to_string()).as_deref() == Some(id(flow)))
        .map(|e| e.details["signature"].clone())
        .collect()
}

async fn during_a_secret_rotation_both_secrets_verify_and_the_audit_says_which(store: Store) {
    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido_rotating(
        store,
        &double.base_url(),
        &config.api_token,
        NEW_WEBHOOK_SECRET,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    // The provider still signs with the secret being rotated out.
    let old = app
        .created(json!({ "type": "registration", "external_user_id": "lena" }))
        .await;
    assert_eq!(
        double.complete_run(run_id(&old), "approved").await,
        vec![DeliveryOutcome::Status(200)]
    );
    assert_eq!(app.flow(id(&old)).await["identity"]["status"], "verified");
    assert_eq!(
        received_signatures(&app, &old).await,
        vec![json!("previous")]
    );
    // Once switched at the provider, deliveries are signed with the new one.
    let new = app
        .created(json!({ "type": "registration", "external_user_id": "mira" }))
        .await;
    double.set_webhook_fault(WebhookFault::NoDelivery);
    double.complete_run(run_id(&new), "declined").await;
    let body = completed_body(run_id(&new), "declined", domain::Clock::now(&*app.clock));
    assert_eq!(
        double
            .deliver_raw(&body, Some(&sign(NEW_WEBHOOK_SECRET, &body)))
            .await,
        DeliveryOutcome::Status(200)
    );
    assert_eq!(app.flow(id(&new)).await["state"], "failed");
    assert_eq!(
        received_signatures(&app, &new).await,
        vec![json!("current")]
    );
    assert!(rejections(&app).await.is_empty());
}

async fn without_a_previous_secret_a_delivery_signed_with_the_old_one_is_refused(store: Store) {
    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido(
        store,
        &double.base_url(),
        &config.api_token,
        NEW_WEBHOOK_SECRET,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "nora" }))
        .await;
    double.set_webhook_fault(WebhookFault::NoDelivery);
    double.complete_run(run_id(&flow), "approved").await;
    let body = completed_body(run_id(&flow), "approved", domain::Clock::now(&*app.clock));
    let (status, answer) = app
        .send(
            app.client
                .post(app.url(WEBHOOK_PATH))
                .header("X-SHA2-Signature", sign(&config.webhook_token, &body))
                .header("Content-Type", "application/json")
                .body(body.clone()),
        )
        .await;
    expect_error(
        status,
        &answer,
        StatusCode::UNAUTHORIZED,
        "webhook_signature_invalid",
    );
    let after = app.flow(id(&flow)).await;
    assert_eq!(after["state"], "awaiting_verification", "{after}");
    assert_eq!(after["identity"]["status"], "pending", "{after}");
    assert!(received_signatures(&app, &flow).await.is_empty());
    assert_eq!(rejections(&app).await, vec!["signature_invalid"]);
}
