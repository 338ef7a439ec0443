//! What the Core API keeps and for how long: idempotent responses replayed
//! and refused on reuse, stored naming no user; ended flows' SDK tokens and
//! retention; the provider clean-up's retries; a user's deletion.

use super::*;

on_both_stores!(
    idempotency_keys_replay_and_refuse_reuse,
    idempotency_records_name_no_user_and_leave_with_the_user_or_their_day,
    ended_flows_keep_no_sdk_token_and_leave_after_their_retention,
    the_purge_rests_after_each_full_batch_and_not_after_the_last,
    a_run_capped_at_its_batches_does_not_rest_after_the_last,
    a_failing_provider_cleanup_retries_with_backoff_and_dies_without_blocking_the_rest,
    deleting_a_user_removes_everything_but_the_trail,
);

async fn idempotency_keys_replay_and_refuse_reuse(store: Store) {
    let app = spawn_core(store).await;
    let body = json!({ "type": "registration", "external_user_id": "quinn" });
    let send = |body: Value| {
        app.client
            .post(app.url("/api/core/v1/flows"))
            .header("Idempotency-Key", "create-quinn-1")
            .json(&body)
    };
    let first = send(body.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_headers = first.headers().clone();
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    for response in [&first_headers, again.headers()] {
        assert_eq!(response["cache-control"], "no-store");
        assert_eq!(response["x-content-type-options"], "nosniff");
    }
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the same response, SDK token included");
    assert_eq!(
        app.audit_types(id(&first))
            .await
            .iter()
            .filter(|t| *t == "flow.created")
            .count(),
        1
    );

    let (status, other) = app
        .send(send(
            json!({ "type": "registration", "external_user_id": "quinn2" }),
        ))
        .await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    let (status, bad) = app
        .send(
            app.client
                .post(app.url("/api/core/v1/flows"))
                .header("Idempotency-Key", "")
                .json(&body),
        )
        .await;
    expect_error(
        status,
        &bad,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    );
}

/// The stored idempotency records, as a re-seal lists them: (scope, key).
async fn idempotency_rows(app: &TestApp) -> Vec<(String, String)> {
    use domain::rotation::{RowKey, SealedColumn};
    app.repo
        .sealed_not_under(SealedColumn::IdempotentResponse, "no-such-key", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|row| match row.row {
            RowKey::Idempotency { scope, key } => (scope, key),
            RowKey::Id(id) => panic!("an idempotency record keyed by {id}"),
        })
        .collect()
}

async fn idempotency_records_name_no_user_and_leave_with_the_user_or_their_day(store: Store) {
    let app = spawn_core(store).await;
    let create = |user: &str, key: &str| {
        app.client
            .post(app.url("/api/core/v1/flows"))
            .header("Idempotency-Key", key)
            .json(&json!({ "type": "registration", "external_user_id": user }))
    };
    let (status, _) = app.send(create("wanda-7781", "create-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app.send(create("vera-5512", "create-2")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .send(
            app.client
                .delete(app.url("/api/core/v1/users/wanda-7781"))
                .header("Idempotency-Key", "delete-1"),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let mut rows = idempotency_rows(&app).await;
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let keys: Vec<&str> = rows.iter().map(|(_, key)| key.as_str()).collect();
    assert_eq!(
        keys,
        ["create-2", "delete-1"],
        "the deleted user's flow went with them"
    );
    assert_eq!(rows[0].0, "POST /api/core/v1/flows");
    let deletion = &rows[1].0;
    assert!(
        deletion.starts_with("DELETE /api/core/v1/users/~") && !deletion.contains("wanda"),
        "the user's id is stored as a keyed digest: {deletion}"
    );

    // Their day over, the rest go with the Core API's housekeeping.
    let housekeeping = domain::retention::Housekeeping::new(
        app.repo.clone(),
        app.clock.clone(),
        domain::retention::RetentionPolicy::default(),
    );
    assert_eq!(
        housekeeping.run_once().await.unwrap().idempotency_records,
        0
    );
    app.clock.advance(time::Duration::hours(24));
    let report = housekeeping.run_once().await.unwrap();
    assert_eq!(report.idempotency_records, 2);
    assert!(idempotency_rows(&app).await.is_empty());
}

async fn ended_flows_keep_no_sdk_token_and_leave_after_their_retention(store: Store) {
    let app = spawn_core(store).await;
    app.enrolled("greta", "greta-phone").await;
    let cancelled = step_up(&app, "greta").await;
    let untouched = step_up(&app, "greta").await;
    let stored = |flow: &Value| {
        let id = domain::flow::FlowId(id(flow).parse().unwrap());
        let repo = app.repo.clone();
        async move { repo.flow(id).await }
    };
    assert!(stored(&cancelled).await.unwrap().sdk_token_sealed.is_some());
    let (status, _) = app
        .post(
            &format!("/api/core/v1/flows/{}/cancel", id(&cancelled)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored(&cancelled).await.unwrap().sdk_token_sealed,
        None,
        "the write that ends the flow clears its token"
    );

    // The untouched flow expires without a write: housekeeping clears it.
    let housekeeping = domain::retention::Housekeeping::new(
        app.repo.clone(),
        app.clock.clone(),
        domain::retention::RetentionPolicy::default(),
    );
    app.clock.advance(time::Duration::minutes(16));
    let report = housekeeping.run_once().await.unwrap();
    assert_eq!(report.expired_flow_secrets, 1, "{report:?}");
    let expired = stored(&untouched).await.unwrap();
    assert_eq!(expired.sdk_token_sealed, None);
    assert_eq!(expired.state.as_str(), "awaiting_verification");

    // Thirty days after their expiry, the flows themselves go.
    app.clock.advance(time::Duration::days(30));
    let report = housekeeping.run_once().await.unwrap();
    assert!(report.ended_flows >= 2, "{report:?}");
    let (status, _) = app
        .get_json(&format!("/api/core/v1/flows/{}", id(&untouched)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, user) = app.get_json("/api/core/v1/users/greta").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the user and their passkey stay: {user}"
    );
}

/// How many times the purge rested.
#[derive(Default)]
struct Rests(std::sync::Mutex<u32>);

#[async_trait::async_trait]
impl domain::retention::Rest for Rests {
    async fn after_batch(&self, _worked: std::time::Duration) {
        *self.0.lock().unwrap() += 1;
    }
}

/// Housekeeping over `app`'s store in batches of two, at most `max_batches`
/// a kind, counting its rests.
fn counting_rests(
    app: &TestApp,
    max_batches: u32,
) -> (domain::retention::Housekeeping, std::sync::Arc<Rests>) {
    let rests = std::sync::Arc::new(Rests::default());
    let housekeeping = domain::retention::Housekeeping::new(
        app.repo.clone(),
        app.clock.clone(),
        domain::retention::RetentionPolicy::default(),
    )
    .with_pace(domain::retention::PurgePace {
        batch: 2,
        max_batches,
    })
    .with_rest(rests.clone());
    (housekeeping, rests)
}

/// Three step-up flows of one user, past their lifetime.
async fn three_expired_flows(store: Store) -> TestApp {
    let app = spawn_core(store).await;
    app.enrolled("hana", "hana-phone").await;
    for _ in 0..3 {
        step_up(&app, "hana").await;
    }
    app.clock.advance(time::Duration::minutes(16));
    app
}

async fn the_purge_rests_after_each_full_batch_and_not_after_the_last(store: Store) {
    let app = three_expired_flows(store).await;
    let (housekeeping, rests) = counting_rests(&app, 10);
    let report = housekeeping.run_once().await.unwrap();
    // Three expired flows in batches of two: a full batch, a rest, then a
    // batch of one that ends the kind; the kinds with nothing to remove
    // (an empty first batch) rest not at all.
    assert_eq!(report.expired_flow_secrets, 3, "{report:?}");
    assert_eq!(*rests.0.lock().unwrap(), 1);
}

async fn a_run_capped_at_its_batches_does_not_rest_after_the_last(store: Store) {
    let app = three_expired_flows(store).await;
    let (housekeeping, rests) = counting_rests(&app, 1);
    let report = housekeeping.run_once().await.unwrap();
    // One full batch, the run's only one: nothing follows it to rest for.
    assert_eq!(report.expired_flow_secrets, 2, "{report:?}");
    assert_eq!(*rests.0.lock().unwrap(), 0);
}

/// A deleted user whose stored applicant id cannot be decrypted fails every
/// attempt: the users deleted after them are still forgotten, the failing one
/// is retried with backoff and, after its last attempt, marked dead.
async fn a_failing_provider_cleanup_retries_with_backoff_and_dies_without_blocking_the_rest(
    store: Store,
) {
    use domain::service::{FlowService, provider_cleanup_backoff};
    use domain::{AuditEventType, Clock, ExternalUserId, NewAuditEvent, Subject, User};

    let app = spawn_core(store).await;
    let policy = FlowPolicy {
        provider_cleanup_max_attempts: 3,
        ..FlowPolicy::default()
    };
    let flows = FlowService::new(
        app.repo.clone(),
        app.synthetic.clone(),
        app.clock.clone(),
        testkit::test_key(),
        policy,
    );
    let mut users = Vec::new();
    for (n, name) in ["broken", "fine-1", "fine-2"].into_iter().enumerate() {
        let mut user = User::new(ExternalUserId::parse(name).unwrap(), testkit::T0);
        if n == 0 {
            user.idv_applicant_sealed = Some(b"not a sealed value".to_vec());
        }
        let event = |t| {
            NewAuditEvent::new(
                t,
                domain::Actor::Integration(None),
                Subject::default(),
                app.clock.now(),
            )
        };
        app.repo
            .create_user(&user, &event(AuditEventType::UserCreated))
            .await
            .unwrap();
        app.repo
            .delete_user(user.id, &event(AuditEventType::UserDeleted))
            .await
            .unwrap();
        app.clock.advance(time::Duration::seconds(1));
        users.push(user);
    }

    let first = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(
        first.forgotten, 2,
        "the failing item blocks nothing: {first:?}"
    );
    assert_eq!(first.retrying.len(), 1);
    assert_eq!(first.retrying[0].user_id, users[0].id);
    assert!(first.retrying[0].reason.contains("cannot be opened"));
    let queued = app.repo.pending_provider_cleanups(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].next_attempt_at,
        Some(app.clock.now() + provider_cleanup_backoff(1))
    );

    // Not due before its backoff; the second attempt waits twice as long.
    let early = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(early, Default::default());
    app.clock.advance(provider_cleanup_backoff(1));
    let second = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!(second.retrying.len(), 1);
    assert_eq!(provider_cleanup_backoff(2), provider_cleanup_backoff(1) * 2);
    app.clock.advance(provider_cleanup_backoff(2));
    let third = flows.process_provider_cleanups(50).await.unwrap();
    assert_eq!((third.retrying.len(), third.dead.len()), (0, 1));
    assert_eq!(third.dead[0].attempts, 3);

    let dead = &app.repo.pending_provider_cleanups(10).await.unwrap()[0];
    assert_eq!(dead.dead_at, Some(app.clock.now()));
    app.clock.advance(time::Duration::days(1));
    assert_eq!(
        flows.process_provider_cleanups(50).await.unwrap(),
        Default::default(),
        "a dead clean-up is not tried again"
    );
}

async fn deleting_a_user_removes_everything_but_the_trail(store: Store) {
    let app = spawn_core(store).await;
    let done = app.enrolled("xena", "xena-phone").await;
    let (status, _) = app
        .send(app.client.delete(app.url("/api/core/v1/users/xena")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get_json("/api/core/v1/users/xena").await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "user_not_found");
    let (status, _) = app
        .get_json(&format!("/api/core/v1/flows/{}", id(&done)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        app.repo
            .credential_by_webauthn_id(&webauthn_id("xena-phone"))
            .await
            .is_err()
    );
    let trail = app.audit_trail().await;
    let deleted = &trail[0];
    assert_eq!(deleted.event_type.as_str(), "user.deleted");
    assert!(deleted.subject.user_pseudonym.is_some());
    assert!(
        !format!("{trail:?}").contains("xena"),
        "the trail keeps no customer identifier"
    );
    // The identifier can be enrolled again.
    app.enrolled("xena", "xena-phone").await;
}
