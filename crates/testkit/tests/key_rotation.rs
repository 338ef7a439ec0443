//! A data-encryption key rotation while serving, on both stores: values sealed
//! under the earlier key stay readable while it is configured, new values are
//! sealed under the current one, and the audit trail verifies across the
//! rotation point.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::audit::integrity::Finding;
use domain::audit::trail::{AuditPolicy, AuditTrail};
use domain::flow::FlowId;
use domain::sealing::{DataKey, KeyId, sealed_key_id};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Store, TestApp, on_both_stores, spawn_core, spawn_core_over, test_key};

on_both_stores!(values_sealed_before_a_rotation_stay_readable_and_the_trail_verifies);

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
    let (status, released) = after
        .post(
            &format!(
                "/api/core/v1/flows/{}/biometric-reference/release",
                id(&waiting)
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(released["token"].as_str().unwrap())
            .unwrap(),
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
