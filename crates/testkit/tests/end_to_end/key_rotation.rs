//! A data-encryption key rotation while serving, on both stores: values sealed
//! under the earlier key stay readable while it is configured, new values are
//! sealed under the current one, and the audit trail verifies across the
//! rotation point.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::audit::integrity::Finding;
use domain::audit::trail::{AuditPolicy, AuditTrail};
use domain::flow::FlowId;
use domain::sealing::{DataKey, KeyId, sealed_key_id};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use domain::rotation::SealedColumn;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Store, TestApp, on_both_stores, spawn_core, spawn_core_over, test_key};

on_both_stores!(
    values_sealed_before_a_rotation_stay_readable_and_the_trail_verifies,
    a_reseal_next_to_live_traffic_leaves_nothing_under_the_earlier_key,
    a_value_under_a_key_that_is_not_configured_is_named_never_skipped,
);

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

fn trail(app: &TestApp, key: &DataKey) -> AuditTrail {
    AuditTrail::new(
        app.repo.clone(),
        app.clock.clone(),
        key.audit_keys(),
        AuditPolicy::default(),
    )
}

/// The reference a step-up releases, decoded.
async fn released_reference(app: &TestApp, step_up: &Value) -> Vec<u8> {
    let (status, released) = app
        .post(
            &format!(
                "/api/core/v1/flows/{}/biometric-reference/release",
                id(step_up)
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    URL_SAFE_NO_PAD
        .decode(released["token"].as_str().unwrap())
        .unwrap()
}

async fn sealed_under(app: &TestApp, flow: &Value) -> String {
    let stored = app
        .repo
        .flow(FlowId(id(flow).parse().unwrap()))
        .await
        .unwrap();
    sealed_key_id(&stored.transaction_context_sealed.unwrap()).unwrap()
}

async fn values_sealed_before_a_rotation_stay_readable_and_the_trail_verifies(store: Store) {
    let context = json!({ "payee": "ACME Ltd", "amount": "120.00" });
    let before = spawn_core(store).await;
    before.enrolled("ana", "ana-phone").await;
    let waiting = before
        .created(
            json!({ "type": "step_up", "external_user_id": "ana", "transaction_context": context }),
        )
        .await;
    assert_eq!(sealed_under(&before, &waiting).await, "test");
    assert!(trail(&before, &test_key()).maintain().await.is_ok());

    // The operator rotates: a new current key, the old one kept for reading.
    let (new, _) = DataKey::generate(KeyId::parse("key-2026").unwrap());
    let ring = new.with_earlier(&[test_key()]).unwrap();
    let after = spawn_core_over(&before, ring.clone()).await;

    let read = after.flow(id(&waiting)).await;
    assert_eq!(read["transaction_context"], context);
    assert_eq!(
        read["transaction_context_sha256"],
        waiting["transaction_context_sha256"]
    );
    assert_eq!(
        released_reference(&after, &waiting).await,
        b"encrypted-biometric-token",
        "the reference sealed under the earlier key opens"
    );
    after.assert_with(&waiting, "ana-phone", 1).await;
    after.outcome(&waiting, "approved").await;
    assert_eq!(after.flow(id(&waiting)).await["state"], "completed");

    let fresh = after
        .created(
            json!({ "type": "step_up", "external_user_id": "ana", "transaction_context": context }),
        )
        .await;
    assert_eq!(sealed_under(&after, &fresh).await, "key-2026");
    assert_eq!(
        fresh["transaction_context_sha256"], waiting["transaction_context_sha256"],
        "the integration's digest does not depend on the key"
    );

    // The store tells what each key still seals.
    let counts = after.repo.sealed_values().await.unwrap();
    let count = |column: &str, key_id: &str| {
        counts
            .iter()
            .find(|c| c.column == column && c.key_id == key_id)
            .map_or(0, |c| c.values)
    };
    assert_eq!(count("flows.transaction_context_sealed", "test"), 1);
    assert_eq!(count("flows.transaction_context_sealed", "key-2026"), 1);
    assert_eq!(count("biometric_references.sealed", "test"), 1);
    assert_eq!(count("users.idv_applicant_sealed", "test"), 1);
    assert!(count("audit_seals.key_id", "test") >= 1);

    // The trail: seals under both keys, one chain, verified with both.
    let rotated = trail(&after, &ring);
    assert!(rotated.maintain().await.is_ok());
    let report = rotated.verify(None).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert!(report.seals >= 2);
    let counts = after.repo.sealed_values().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c.column == "audit_seals.key_id" && c.key_id == "key-2026"),
        "{counts:?}"
    );
    // Without the earlier key, its seals are reported, not taken for tampering.
    let report = trail(&after, &new_only(&ring)).verify(None).await.unwrap();
    assert!(!report.findings.is_empty());
    assert!(
        report
            .findings
            .iter()
            .all(|f| matches!(f, Finding::UnverifiableSeal { key_id, .. } if key_id == "test")),
        "{:?}",
        report.findings
    );
}

/// The current key of `ring` alone.
fn new_only(ring: &DataKey) -> DataKey {
    ring.clone().with_earlier(&[]).unwrap()
}

/// How many values each key id seals, over every sealed column and the
/// audit seals, as `keys status` reads them.
async fn under(app: &TestApp, key_id: &str) -> Vec<(String, u64)> {
    app.repo
        .sealed_values()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.key_id == key_id && c.values > 0)
        .map(|c| (c.column, c.values))
        .collect()
}

/// One round of every flow type for a new user `n`, and a recovery of the
/// user enrolled before the rotation as `old-n`: each must succeed.
async fn every_flow_type(app: &TestApp, n: u32, steps: &AtomicU32) {
    let step = || steps.fetch_add(1, Ordering::SeqCst);
    let user = format!("live-{n}");
    app.enrolled(&user, &format!("{user}-phone")).await;
    step();
    let sign_in = app
        .created(json!({ "type": "sign_in", "external_user_id": user }))
        .await;
    step();
    let (status, body) = app.assert_with(&sign_in, &format!("{user}-phone"), 1).await;
    step();
    assert_eq!(status, StatusCode::OK, "{body}");
    let step_up = app
        .created(json!({ "type": "step_up", "external_user_id": user,
            "transaction_context": { "payee": "ACME Ltd", "amount": n } }))
        .await;
    step();
    let (status, body) = app.assert_with(&step_up, &format!("{user}-phone"), 2).await;
    step();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.outcome(&step_up, "approved").await;
    step();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.flow(id(&step_up)).await["state"], "completed");
    let old = format!("old-{}", n % OLD_USERS);
    let recovery = app
        .created(json!({ "type": "recovery", "external_user_id": old }))
        .await;
    step();
    let (status, body) = app
        .register_credential(&recovery, &format!("{old}-new-{n}"))
        .await;
    step();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.outcome(&recovery, "approved").await;
    step();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.flow(id(&recovery)).await["state"], "completed");
}

const OLD_USERS: u32 = 12;

/// What key A sealed before the rotation: the staged registration, and the
/// step-ups waiting with their idempotent requests.
struct SealedUnderA {
    staged: Value,
    waiting: Vec<(Value, Value)>,
    values: Vec<(String, u64)>,
}

async fn a_reseal_next_to_live_traffic_leaves_nothing_under_the_earlier_key(store: Store) {
    let before = spawn_core(store).await;
    let sealed = seal_every_column_under_a(&before).await;

    // The operator makes B current, keeps A for reading, and re-seals while
    // the Core API serves every flow type.
    let (b, _) = DataKey::generate(KeyId::parse("key-b").unwrap());
    let ring = b.with_earlier(&[test_key()]).unwrap();
    let after = Arc::new(spawn_core_over(&before, ring.clone()).await);
    reseal_while_every_flow_type_is_served(&after, &ring, sealed.values.len()).await;

    // Nothing is left under A: the operator removes it.
    assert_eq!(under(&after, "test").await, Vec::<(String, u64)>::new());
    let again = server::keys::reseal(after.repo.as_ref(), &ring, 3, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.resealed, again.passes),
        (0, 1),
        "a second run has nothing to do"
    );
    let only_b = spawn_core_over(&before, new_only(&ring)).await;
    everything_reads_under_b_alone(&only_b, &ring, &sealed).await;
    drop(only_b);
    drop(after);
}

/// Key A ("test") seals users' applicants and references, flows' SDK tokens
/// and transaction contexts, a staged reference, idempotent responses and
/// the audit seals.
async fn seal_every_column_under_a(before: &TestApp) -> SealedUnderA {
    for n in 0..OLD_USERS {
        before
            .enrolled(&format!("old-{n}"), &format!("old-{n}-phone"))
            .await;
    }
    let staged = before
        .created(json!({ "type": "registration", "external_user_id": "half-way" }))
        .await;
    assert_eq!(
        before.store_reference(&staged, b"staged-token").await.0,
        StatusCode::OK
    );
    // Recovery needs the enrolment to be a while ago.
    before.clock.advance(time::Duration::days(30));
    let mut waiting = Vec::new();
    for n in 0..4 {
        let body = json!({ "type": "step_up", "external_user_id": format!("old-{n}"),
            "transaction_context": { "payee": "ACME Ltd", "amount": n } });
        let (status, flow) = before
            .send(
                before
                    .client
                    .post(before.url("/api/core/v1/flows"))
                    .header("Idempotency-Key", format!("pay-{n}"))
                    .json(&body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{flow}");
        waiting.push((body, flow));
    }
    assert!(trail(before, &test_key()).maintain().await.is_ok());
    let values = under(before, "test").await;
    for column in SealedColumn::ALL
        .iter()
        .filter(|c| **c != SealedColumn::FlowCeremony && **c != SealedColumn::CleanupApplicant)
    {
        assert!(
            values.iter().any(|(c, _)| *c == column.name()),
            "{column:?} has values under A: {values:?}"
        );
    }
    SealedUnderA {
        staged,
        waiting,
        values,
    }
}

/// Re-seals and re-keys the audit trail in small batches while `after`
/// serves every flow type, and checks that requests completed in between.
async fn reseal_while_every_flow_type_is_served(
    after: &Arc<TestApp>,
    ring: &DataKey,
    sealed_under_a: usize,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU32::new(0));
    let traffic = tokio::spawn({
        let (app, stop, steps) = (after.clone(), stop.clone(), steps.clone());
        async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                every_flow_type(&app, n, &steps).await;
                n += 1;
            }
            n
        }
    });
    while steps.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Which traffic steps had finished at the first and at the last batch.
    // After the first batch the re-seal waits (this test's thread only; the
    // runtime's workers carry on) until the traffic has completed another
    // step, so live writes land between its batches however busy the machine.
    let mut seen: Vec<u32> = Vec::new();
    let resealed = server::keys::reseal(after.repo.as_ref(), ring, 2, &mut |_, _| {
        let now = steps.load(Ordering::SeqCst);
        if seen.is_empty() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while steps.load(Ordering::SeqCst) == now && std::time::Instant::now() < deadline {
                #[allow(clippy::disallowed_methods)] // The test's own thread, not a worker.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        seen.push(now)
    })
    .await
    .unwrap();
    let rekeyed = trail(after, ring).rekey().await.unwrap().unwrap();
    stop.store(true, Ordering::SeqCst);
    let rounds = traffic.await.unwrap();
    assert!(rounds >= 1);
    assert!(resealed.settled, "{resealed:?}");
    assert!(resealed.unreadable.is_empty(), "{resealed:?}");
    assert!(resealed.resealed >= sealed_under_a as u64, "{resealed:?}");
    assert!(seen.len() > 3, "small batches: {}", seen.len());
    assert!(
        seen.last() > seen.first(),
        "requests completed while the re-seal ran: {seen:?}"
    );
    assert!(rekeyed.refused.is_empty(), "{rekeyed:?}");
    assert!(rekeyed.seals >= 1 && rekeyed.retagged >= 1, "{rekeyed:?}");
    assert!(trail(after, ring).maintain().await.is_ok());
}

/// With B alone configured: the waiting flows' contexts read, their stored
/// responses replay, every old user's applicant and reference open, and the
/// audit trail verifies.
async fn everything_reads_under_b_alone(only_b: &TestApp, ring: &DataKey, sealed: &SealedUnderA) {
    for (body, flow) in &sealed.waiting {
        let read = only_b.flow(id(flow)).await;
        assert_eq!(read["transaction_context"], body["transaction_context"]);
        assert_eq!(
            read["transaction_context_sha256"],
            flow["transaction_context_sha256"]
        );
        let (status, replayed) = only_b
            .send(
                only_b
                    .client
                    .post(only_b.url("/api/core/v1/flows"))
                    .header(
                        "Idempotency-Key",
                        format!("pay-{}", body["transaction_context"]["amount"]),
                    )
                    .json(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{replayed}");
        assert_eq!(replayed["id"], flow["id"], "the stored response replays");
    }
    for n in 0..OLD_USERS {
        let user = format!("old-{n}");
        let step_up = only_b
            .created(json!({ "type": "step_up", "external_user_id": user }))
            .await;
        assert!(
            step_up["identity"]["sdk_token"].is_string(),
            "the applicant opens: {step_up}"
        );
        assert_eq!(
            released_reference(only_b, &step_up).await,
            b"encrypted-biometric-token"
        );
    }
    assert_eq!(only_b.flow(id(&sealed.staged)).await["state"], "expired");
    let report = trail(only_b, &new_only(ring)).verify(None).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert!(report.seals >= 2);
}

async fn a_value_under_a_key_that_is_not_configured_is_named_never_skipped(store: Store) {
    let before = spawn_core(store).await;
    before.enrolled("ana", "ana-phone").await;
    let waiting = before
        .created(json!({ "type": "step_up", "external_user_id": "ana",
            "transaction_context": { "payee": "ACME Ltd" } }))
        .await;
    // B is made current without A: what A sealed cannot be opened.
    let (b, _) = DataKey::generate(KeyId::parse("key-b").unwrap());
    let only_b = spawn_core_over(&before, b.clone()).await;

    let counts = only_b.repo.sealed_values().await.unwrap();
    let (report, all_configured) = server::keys::status_report(&counts, &["key-b"]);
    assert!(!all_configured);
    assert!(
        report.lines().any(|l| l.starts_with("test ")
            && l.contains("flows.transaction_context_sealed")
            && l.ends_with("NOT CONFIGURED")),
        "{report}"
    );

    let (status, body) = only_b
        .get_json(&format!("/api/core/v1/flows/{}", id(&waiting)))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal_error", "{body}");
    let flows = only_b.flows.clone().unwrap();
    let flow = only_b
        .repo
        .flow(FlowId(id(&waiting).parse().unwrap()))
        .await
        .unwrap();
    let refused = flows.view(flow, None).await.unwrap_err();
    let detail = refused.internal.unwrap_or_default();
    assert!(
        detail.contains("\"test\", which is not configured"),
        "the logged detail names the key: {detail}"
    );

    // A re-seal leaves them as they are, and says so.
    let resealed = server::keys::reseal(only_b.repo.as_ref(), &b, 10, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(resealed.resealed, 0);
    assert!(
        resealed
            .unreadable
            .keys()
            .all(|reason| reason.contains("\"test\", which is not configured")),
        "{resealed:?}"
    );
    assert!(
        resealed.unreadable.values().sum::<u64>() >= 4,
        "{resealed:?}"
    );
    assert_eq!(
        sealed_under(&only_b, &waiting).await,
        "test",
        "left untouched"
    );
}
