//! Provider outages, rate limits and slow reads; runs whose creation was
//! ambiguous, found later and recorded with their flow; lost and early
//! webhooks caught by the reconciler.

use super::*;

on_both_stores!(
    a_provider_outage_while_starting_a_run_fails_the_flow_without_duplicates,
    a_rate_limited_read_is_retried_after_retry_after,
    an_unreadable_run_is_answered_503_and_processed_on_redelivery,
    a_slow_provider_read_is_answered_within_the_budget_and_reconciled_later,
    a_loose_tags_filter_never_adopts_an_earlier_approved_run,
    a_503_after_the_run_was_created_is_looked_up_not_retried,
    a_lost_webhook_is_caught_by_the_reconciler,
    a_lagging_read_is_applied_on_redelivery,
    a_webhook_before_its_flow_records_the_run_does_not_block_it,
    a_run_made_after_its_creation_gave_up_is_found_and_recorded_with_the_flow,
    an_applicant_made_for_a_run_that_failed_is_kept_and_forgotten_with_the_user,
);

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
