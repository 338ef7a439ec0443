//! The Management API's operator authentication against hostile tokens, with
//! a JWKS served on loopback.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::jwks_double::{JwksDouble, SigningKey};
use testkit::{Store, T0, TestApp, management_config, spawn_management_with};

const ISSUER: &str = "http://127.0.0.1:9/issuer";
const AUDIENCE: &str = "biometric-passkey-management-api";

struct Setup {
    jwks: JwksDouble,
    key: SigningKey,
    app: TestApp,
}

async fn setup_with_prefix(prefix: &str) -> Setup {
    let key = SigningKey::generate("key-1");
    let jwks = JwksDouble::start(&[&key]).await;
    let mut config = management_config();
    config.auth.issuer = ISSUER.into();
    config.auth.audience = AUDIENCE.into();
    config.auth.jwks_url = jwks.url.clone();
    config.auth.scope_prefix = prefix.into();
    let app = spawn_management_with(Store::Sqlite, config).await;
    Setup { jwks, key, app }
}

async fn setup() -> Setup {
    setup_with_prefix("").await
}

fn claims(scope: &str) -> Value {
    let now = T0.unix_timestamp();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "operator-7",
        "iat": now, "nbf": now, "exp": now + 300,
        "scope": scope,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value, Option<String>) {
    let response = app
        .client
        .get(app.url("/api/management/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        challenge,
    )
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let (status, body, challenge) = me(app, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{why}");
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "{why}: WWW-Authenticate"
    );
    assert_eq!(
        body["error"]["message"], "the bearer token is not valid",
        "{why}: no detail leaks"
    );
}

#[tokio::test]
async fn a_valid_token_identifies_the_operator_and_their_scopes() {
    let s = setup().await;
    let token = s.key.sign(&claims(
        "openid management.users.read management.audit.read",
    ));
    let (status, body, _) = me(&s.app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "sub": "operator-7", "scopes": ["management.users.read", "management.audit.read"] })
    );
    // An array claim and an audience array are accepted too.
    let array = with(claims(""), "scope", json!(["management.flows.read"]));
    let array = with(array, "aud", json!(["other-api", AUDIENCE]));
    let (status, body, _) = me(&s.app, &s.key.sign(&array)).await;
    assert_eq!(
        (status, body["scopes"].clone()),
        (StatusCode::OK, json!(["management.flows.read"]))
    );
}

#[tokio::test]
async fn missing_and_malformed_tokens_are_refused() {
    let s = setup().await;
    let response = s
        .app
        .client
        .get(s.app.url("/api/management/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_refused(&s.app, "not-a-jwt", "garbage").await;
}

#[tokio::test]
async fn tokens_outside_their_time_window_are_refused() {
    let s = setup().await;
    let now = T0.unix_timestamp();
    // The configured skew is 30 s.
    assert_refused(
        &s.app,
        &s.key.sign(&with(claims(""), "exp", json!(now - 31))),
        "expired",
    )
    .await;
    assert_refused(
        &s.app,
        &s.key.sign(&with(claims(""), "nbf", json!(now + 31))),
        "not yet valid",
    )
    .await;
    assert_refused(
        &s.app,
        &s.key.sign(&with(claims(""), "iat", json!(now + 3600))),
        "issued in the future",
    )
    .await;
    let (status, _, _) = me(
        &s.app,
        &s.key.sign(&with(claims(""), "exp", json!(now - 20))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "within the skew");
    let mut no_exp = claims("");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(&s.app, &s.key.sign(&no_exp), "no exp").await;
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_refused() {
    let s = setup().await;
    assert_refused(
        &s.app,
        &s.key
            .sign(&with(claims(""), "iss", json!("https://evil.example.com/"))),
        "issuer",
    )
    .await;
    assert_refused(
        &s.app,
        &s.key.sign(&with(claims(""), "aud", json!("another-api"))),
        "audience",
    )
    .await;
}

#[tokio::test]
async fn algorithm_confusion_is_refused() {
    let s = setup().await;
    let body =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("management.users.read")).unwrap());
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"key-1"}"#);
    assert_refused(&s.app, &format!("{none_header}.{body}."), "alg none").await;

    // HS256 "signed" with the public key as the HMAC secret.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("key-1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims("management.users.read"),
        &jsonwebtoken::EncodingKey::from_secret(s.key.public_key_bytes()),
    )
    .unwrap();
    assert_refused(&s.app, &forged, "HS256 with the public key").await;
}

#[tokio::test]
async fn unknown_and_impersonated_keys_are_refused() {
    let s = setup().await;
    let stranger = SigningKey::generate("key-unknown");
    assert_refused(&s.app, &stranger.sign(&claims("")), "unknown kid").await;
    // A foreign key claiming the known kid.
    let impostor = SigningKey::generate("key-1");
    assert_refused(
        &s.app,
        &impostor.sign_as("key-1", &claims("")),
        "foreign key, known kid",
    )
    .await;
    // Forged kids do not make the runtime hammer the provider.
    let before = s.jwks.fetches();
    for i in 0..5 {
        assert_refused(
            &s.app,
            &stranger.sign_as(&format!("forged-{i}"), &claims("")),
            "forged kid",
        )
        .await;
    }
    assert!(s.jwks.fetches() - before <= 1, "refreshes are rate-limited");
}

#[tokio::test]
async fn a_rotated_key_is_picked_up() {
    let s = setup().await;
    assert_eq!(me(&s.app, &s.key.sign(&claims(""))).await.0, StatusCode::OK);
    let next = SigningKey::generate("key-2");
    s.jwks.publish(&[&next]);
    s.app.clock.advance(time::Duration::seconds(11));
    let (status, body, _) = me(
        &s.app,
        &next.sign(&with(claims(""), "exp", json!(T0.unix_timestamp() + 600))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_unreachable_jwks_fails_closed() {
    let s = setup().await;
    s.jwks.set_available(false);
    let (status, body, _) = me(&s.app, &s.key.sign(&claims("management.users.read"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("service_unavailable"))
    );
}

#[tokio::test]
async fn scopes_gate_each_action() {
    let s = setup().await;
    let path = "/api/management/v1/users/nobody";
    let call = |token: String| {
        let app = &s.app;
        async move {
            let r = app
                .client
                .get(app.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = call(s.key.sign(&claims("management.audit.read"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("missing_scope"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("management.users.read")
    );
    let (status, body) = call(s.key.sign(&claims("management.users.read"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("user_not_found"))
    );
    // A namespaced scope is not honoured unless the prefix is configured.
    let (status, _) = call(s.key.sign(&claims("api://bp/management.users.read"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_configured_prefix_is_stripped() {
    let s = setup_with_prefix("api://bp/").await;
    let (status, body, _) = me(
        &s.app,
        &s.key.sign(&claims(
            "api://bp/management.users.read management.flows.read",
        )),
    )
    .await;
    assert_eq!(
        (status, body["scopes"].clone()),
        (StatusCode::OK, json!(["management.users.read"]))
    );
}

/// Claims valid for three hours from [`T0`].
fn lasting(scope: &str) -> Value {
    with(claims(scope), "exp", json!(T0.unix_timestamp() + 3 * 3600))
}

#[tokio::test]
async fn an_outage_is_ridden_out_on_the_last_keys_then_fails_closed() {
    let s = setup().await;
    let token = s.key.sign(&lasting(""));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
    s.jwks.set_available(false);
    // Past the keys' ten minutes, the provider down: the last keys still serve.
    s.app.clock.advance(time::Duration::minutes(11));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
    s.app.clock.advance(time::Duration::minutes(40));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
    // Past the grace period: closed.
    s.app.clock.advance(time::Duration::minutes(30));
    let (status, body, _) = me(&s.app, &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("service_unavailable"))
    );
    // Back up: fetched again at the next attempt after the backoff.
    s.jwks.set_available(true);
    s.app.clock.advance(time::Duration::minutes(2));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_provider_that_is_down_is_asked_with_backoff_not_per_request() {
    let s = setup().await;
    s.jwks.set_available(false);
    let token = s.key.sign(&lasting(""));
    for _ in 0..20 {
        assert_eq!(me(&s.app, &token).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(s.jwks.fetches(), 1, "one attempt, then the backoff");
    s.app.clock.advance(time::Duration::seconds(1));
    me(&s.app, &token).await;
    assert_eq!(s.jwks.fetches(), 2);
    // The wait doubles: one second later is too soon.
    s.app.clock.advance(time::Duration::seconds(1));
    me(&s.app, &token).await;
    assert_eq!(s.jwks.fetches(), 2);
    s.jwks.set_available(true);
    s.app.clock.advance(time::Duration::seconds(1));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_holds_up_only_the_requests_that_need_it() {
    let s = setup().await;
    let token = s.key.sign(&lasting(""));
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
    s.jwks.set_delay(std::time::Duration::from_secs(2));
    s.app.clock.advance(time::Duration::seconds(11));
    // An unknown kid starts a refresh that takes two seconds...
    let stranger = SigningKey::generate("key-new");
    let refresh = tokio::spawn({
        let (client, url, token) = (
            s.app.client.clone(),
            s.app.url("/api/management/v1/me"),
            stranger.sign(&claims("")),
        );
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // ...while a token whose key is cached is answered at once.
    let started = std::time::Instant::now();
    assert_eq!(me(&s.app, &token).await.0, StatusCode::OK);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "not held up by the fetch: {:?}",
        started.elapsed()
    );
    assert_eq!(refresh.await.unwrap(), StatusCode::UNAUTHORIZED);
    // Requests that need the provider wait for the one fetch in progress.
    let before = s.jwks.fetches();
    s.app.clock.advance(time::Duration::minutes(11));
    let waiting: Vec<_> = (0..5)
        .map(|_| {
            let (client, url, token) = (
                s.app.client.clone(),
                s.app.url("/api/management/v1/me"),
                token.clone(),
            );
            tokio::spawn(async move {
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for request in waiting {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(s.jwks.fetches() - before, 1, "one fetch for all of them");
}

#[tokio::test]
async fn a_token_that_is_not_an_access_token_is_refused() {
    let s = setup().await;
    let scope = "management.users.read";
    for typ in ["at+jwt", "application/at+jwt", "JWT"] {
        let (status, body, _) = me(&s.app, &s.key.sign_typed(typ, &claims(scope))).await;
        assert_eq!(status, StatusCode::OK, "{typ}: {body}");
    }
    let bearer = with(claims(scope), "typ", json!("Bearer"));
    assert_eq!(me(&s.app, &s.key.sign(&bearer)).await.0, StatusCode::OK);
    for typ in ["id_token+jwt", "logout+jwt", "dpop+jwt"] {
        assert_refused(&s.app, &s.key.sign_typed(typ, &claims(scope)), typ).await;
    }
    // Keycloak marks its ID and refresh tokens in a claim.
    for typ in ["ID", "Refresh"] {
        let token = s.key.sign(&with(claims(scope), "typ", json!(typ)));
        assert_refused(&s.app, &token, typ).await;
    }
}
