//! The Core API with API keys configured, over real HTTP on both stores: every
//! `/api/core/v1` route refuses a call without a valid key and changes
//! nothing; probes and the provider's signed webhook stay open; accepted
//! calls are audited under the fingerprint of the key that made them.

use core_api::auth::ApiKeys;
use domain::audit::Actor;
use domain::service::FlowPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::core_client::webauthn_id;
use testkit::{Store, TestApp, on_both_stores, spawn_core, spawn_core_configured};

const KEY_A: &str = "integration-key-A-0123456789abcdefghijkl";
const KEY_B: &str = "integration-key-B-0123456789abcdefghijkl";
/// `printf %s "$KEY" | sha256sum | cut -c1-16`, computed outside the product.
const KEY_A_ID: &str = "key-9c42e5c80627ddb4";
const KEY_B_ID: &str = "key-9bb04f033c5ba970";

fn client_with(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn keyed_core(store: Store) -> TestApp {
    let mut app =
        spawn_core_configured(store, FlowPolicy::default(), ApiKeys::new([KEY_A, KEY_B])).await;
    app.client = client_with(KEY_A);
    app
}

/// Every route of `/api/core/v1`, aimed at things that exist, with bodies a
/// keyed call would act on.
fn routes(alice_flow: &Value, pending: &Value) -> Vec<(Method, String, Option<Value>)> {
    let done = alice_flow["id"].as_str().unwrap();
    let open = pending["id"].as_str().unwrap();
    let run = pending["identity"]["workflow_run_id"].as_str().unwrap();
    vec![
        (
            Method::POST,
            "/api/core/v1/flows".into(),
            Some(json!({ "type": "registration", "external_user_id": "carol" })),
        ),
        (Method::GET, format!("/api/core/v1/flows/{open}"), None),
        (
            Method::POST,
            format!("/api/core/v1/flows/{open}/possession"),
            Some(json!({ "credential": {
                "id": webauthn_id("bob-phone"),
                "aaguid": "08987058-cadc-4b81-b6e1-30de50dcbe96",
                "sign_count": 0,
                "transports": ["internal"],
                "platform": "ios",
                "device_label": "Bob's phone",
            }})),
        ),
        (
            Method::POST,
            format!("/api/core/v1/flows/{open}/cancel"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/core/v1/flows/{open}/biometric-reference"),
            Some(json!({ "token": "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg==" })),
        ),
        (
            Method::POST,
            format!("/api/core/v1/flows/{done}/biometric-reference/release"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/core/v1/handoffs/claim".into(),
            Some(json!({ "code": "000000", "external_user_id": "alice" })),
        ),
        (Method::GET, "/api/core/v1/users/alice".into(), None),
        (Method::DELETE, "/api/core/v1/users/alice".into(), None),
        (
            Method::POST,
            format!("/api/core/v1/synthetic/runs/{run}/outcome"),
            Some(json!({ "outcome": "approved" })),
        ),
    ]
}

/// The OpenAPI document's path template of a concrete path.
fn template(path: &str) -> String {
    path.split('/')
        .enumerate()
        .map(|(i, segment)| match (i, segment) {
            (5, _) if path.starts_with("/api/core/v1/flows/") => "{flow_id}".to_owned(),
            (5, _) if path.starts_with("/api/core/v1/users/") => "{external_user_id}".to_owned(),
            (6, _) if path.starts_with("/api/core/v1/synthetic/runs/") => "{run_id}".to_owned(),
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_core_route_refuses_calls_without_a_valid_key(store: Store) {
    let app = keyed_core(store).await;
    app.enrolled("alice", "alice-phone").await;
    let (status, alice_flow) = app
        .post(
            "/api/core/v1/flows",
            json!({ "type": "step_up", "external_user_id": "alice" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alice_flow}");
    let pending = app
        .created(json!({ "type": "registration", "external_user_id": "bob" }))
        .await;
    let routes = routes(&alice_flow, &pending);

    // The table covers every documented route and method.
    let doc: Value = serde_json::from_str(&core_api::openapi::document()).unwrap();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/core/v1/") {
            continue;
        }
        for method in methods.as_object().unwrap().keys() {
            assert!(
                routes.iter().any(
                    |(m, p, _)| m.as_str().eq_ignore_ascii_case(method) && template(p) == *path
                ),
                "{method} {path} is not tried without a key"
            );
        }
    }

    let trail_before = app.audit_trail().await;
    let flows_before = [
        app.flow(alice_flow["id"].as_str().unwrap()).await,
        app.flow(pending["id"].as_str().unwrap()).await,
    ];
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    let wrong = [
        None,
        Some("Bearer integration-key-C-0123456789abcdefghijkl".to_owned()),
        Some(format!("Bearer {KEY_A}x")),
        Some(format!("Basic {KEY_A}")),
        Some(KEY_A.to_owned()),
    ];
    for (method, path, body) in &routes {
        for authorization in &wrong {
            let mut request = anonymous.request(method.clone(), app.url(path));
            if let Some(value) = authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"biometric-passkey-core\""
            );
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "unauthorized", "{method} {path}");
        }
    }

    // Nothing changed: no event written, the flows as they were, alice still
    // there and carol never created.
    assert_eq!(app.audit_trail().await, trail_before);
    assert_eq!(
        [
            app.flow(alice_flow["id"].as_str().unwrap()).await,
            app.flow(pending["id"].as_str().unwrap()).await,
        ],
        flows_before
    );
    let (status, alice) = app.get_json("/api/core/v1/users/alice").await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    let (status, _) = app.get_json("/api/core/v1/users/carol").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Probes need no key.
    for path in ["/api/health", "/api/ready", "/api/version"] {
        let response = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

async fn audit_events_name_the_key_of_each_call(store: Store) {
    let mut app = keyed_core(store).await;
    app.enrolled("dave", "dave-phone").await;
    app.client = client_with(KEY_B);
    let (status, body) = app
        .send(app.client.delete(app.url("/api/core/v1/users/dave")))
        .await;
    assert!(status.is_success(), "{status} {body}");

    let trail = app.audit_trail().await;
    let integration: Vec<(&str, Option<&str>)> = trail
        .iter()
        .filter(|e| e.actor.kind() == "integration")
        .map(|e| (e.event_type.as_str(), e.actor.id()))
        .collect();
    assert!(integration.len() >= 4, "{integration:?}");
    let (deleted, by_a) = integration
        .split_first()
        .expect("the deletion is the newest event");
    assert_eq!(*deleted, ("user.deleted", Some(KEY_B_ID)));
    assert!(
        by_a.iter().all(|(_, id)| *id == Some(KEY_A_ID)),
        "the enrolment was made with key A: {integration:?}"
    );
    // The synthetic provider's outcome is the provider's act, not a caller's.
    assert!(
        trail
            .iter()
            .any(|e| e.actor == Actor::Provider
                && e.event_type.as_str() == "provider.event_received")
    );
}

on_both_stores!(
    every_core_route_refuses_calls_without_a_valid_key,
    audit_events_name_the_key_of_each_call,
);

#[tokio::test]
async fn without_keys_integration_events_carry_no_key_id() {
    let app = spawn_core(Store::Sqlite).await;
    app.created(json!({ "type": "registration", "external_user_id": "erin" }))
        .await;
    let trail = app.audit_trail().await;
    assert!(!trail.is_empty());
    for event in trail.iter().filter(|e| e.actor.kind() == "integration") {
        assert_eq!(event.actor, Actor::Integration(None));
    }
}

#[tokio::test]
async fn the_signed_webhook_route_needs_no_api_key() {
    let app = testkit::spawn_core_onfido_configured(
        Store::Sqlite,
        "http://127.0.0.1:9/v3.6",
        "api-token",
        "webhook-secret",
        ApiKeys::new([KEY_A]),
    )
    .await;
    let anonymous = reqwest::Client::builder().no_proxy().build().unwrap();
    // Unsigned: refused by its signature check, not for want of an API key.
    let response = anonymous
        .post(app.url("/api/public/v1/providers/onfido/webhooks"))
        .header("content-type", "application/json")
        .body(r#"{"payload":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!response.headers().contains_key("www-authenticate"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "webhook_signature_invalid");
    // The flow API of the same runtime does need the key.
    let response = anonymous
        .post(app.url("/api/core/v1/flows"))
        .json(&json!({ "type": "registration", "external_user_id": "frank" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
