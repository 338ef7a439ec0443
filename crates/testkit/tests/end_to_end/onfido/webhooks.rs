//! The webhook's defences: forged, malformed, replayed and flooding deliveries,
//! events not acted on, events for unknown runs, and the webhook secret's
//! rotation.

use super::*;

on_both_stores!(
    forged_and_malformed_deliveries_are_refused_and_counted,
    events_not_acted_on_and_stale_completions_are_acknowledged_and_counted,
    a_flood_of_forged_deliveries_adds_a_row_per_reason_and_minute,
    behind_a_trusted_proxy_a_flood_cuts_off_its_own_source_only,
    replayed_and_reformatted_deliveries_count_once,
    events_for_unknown_runs_are_acknowledged_and_audited,
    during_a_secret_rotation_both_secrets_verify_and_the_audit_says_which,
    without_a_previous_secret_a_delivery_signed_with_the_old_one_is_refused,
);

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
