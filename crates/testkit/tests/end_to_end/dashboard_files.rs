//! The dashboard's files as the management runtime serves them, over real HTTP:
//! caching, the Content-Security-Policy (with the origins of the identity
//! provider's discovery document), deep links, and the API's own 404s.
//! Needs `dashboard/dist` (built by `scripts/build-dashboard`, which
//! `scripts/test` runs first).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use serde_json::{Value, json};
use testkit::{Store, TestApp, management_config, spawn_management, spawn_management_with};
use tokio::net::TcpListener;

async fn app() -> TestApp {
    assert!(
        management::dashboard::Dashboard::is_built(),
        "dashboard/dist is missing: run scripts/build-dashboard first"
    );
    spawn_management(Store::Sqlite).await
}

fn hashed_script(index: &str) -> String {
    let start = index
        .find("/assets/")
        .expect("index.html links a hashed script");
    let end = index[start..].find('"').unwrap() + start;
    index[start..end].to_owned()
}

#[tokio::test]
async fn pages_are_the_app_shell_never_cached_under_a_strict_policy() {
    let app = app().await;
    for path in [
        "/",
        "/login",
        "/auth/callback?code=x&state=y",
        "/users/u-1",
        "/audit?type=x",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers[CACHE_CONTROL], "no-cache", "{path}");
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:9;"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        let body = response.text().await.unwrap();
        assert!(body.contains("<div id=\"root\"></div>"));
        assert!(!body.contains("<script>"), "no inline script");
    }
}

#[tokio::test]
async fn hashed_assets_are_cached_for_a_year_and_revalidate_by_etag() {
    let app = app().await;
    let index = app.get("/").await.text().await.unwrap();
    let script = hashed_script(&index);
    let response = app.get(&script).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let etag = response.headers()[ETAG].clone();
    let again = app
        .client
        .get(app.url(&script))
        .header(IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn a_missing_asset_is_a_404_not_the_app_shell() {
    let app = app().await;
    let response = app.get("/assets/index-missing.js").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(!response.text().await.unwrap().contains("<div id=\"root\">"));
}

#[tokio::test]
async fn the_api_keeps_its_json_404s_and_pages_refuse_other_methods() {
    let app = app().await;
    let response = app.get("/api/management/v1/nothing-here").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");

    let post = app.client.post(app.url("/users")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = post.json().await.unwrap();
    assert_eq!(body["error"]["code"], "route_not_found");
}

#[tokio::test]
async fn runtime_config_is_still_served_as_json() {
    let app = app().await;
    let response = app.get("/runtime-config.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["oidc"]["authority"], "http://127.0.0.1:9/");
}

/// An identity provider's discovery document on `127.0.0.1:<random port>`
/// (the issuer), and a second listener on another port: a second origin.
struct Provider {
    issuer: String,
    second_origin: String,
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl Provider {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second_origin = format!("http://localhost:{}", second.local_addr().unwrap().port());
        let document = Arc::new(Mutex::new(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{second_origin}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            // Neither may reach the policy: a wildcard host, plain http off loopback.
            "userinfo_endpoint": "https://*.example.com/userinfo",
            "revocation_endpoint": "http://idp.example.net/revoke",
        })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/.well-known/openid-configuration",
            get({
                let document = document.clone();
                let fetches = fetches.clone();
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Json(document.lock().unwrap().clone())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::spawn(async move { axum::serve(second, axum::Router::new()).await.unwrap() });
        Self {
            issuer,
            second_origin,
            document,
            fetches,
        }
    }

    async fn management(&self) -> TestApp {
        let mut config = management_config();
        config.auth.issuer = self.issuer.clone();
        config.auth.jwks_url = format!("{}/jwks", self.issuer);
        spawn_management_with(Store::Sqlite, config).await
    }
}

async fn connect_src(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    let csp = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    let start = csp.find("connect-src ").unwrap();
    let end = csp[start..].find(';').unwrap() + start;
    csp[start..end].to_owned()
}

#[tokio::test]
async fn a_token_endpoint_on_a_second_origin_is_allowed_from_the_discovery_document() {
    let provider = Provider::start().await;
    let app = provider.management().await;
    for path in ["/", "/auth/callback?code=x&state=y"] {
        assert_eq!(
            connect_src(&app, path).await,
            format!(
                "connect-src 'self' {} {}",
                provider.issuer, provider.second_origin
            ),
            "{path}"
        );
    }
    // Cached: one fetch for both pages.
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_document_is_refreshed_after_ten_minutes() {
    let provider = Provider::start().await;
    let app = provider.management().await;
    assert!(
        connect_src(&app, "/")
            .await
            .ends_with(&provider.second_origin)
    );
    provider.document.lock().unwrap()["token_endpoint"] =
        json!(format!("{}/token", provider.issuer));
    app.clock.advance(time::Duration::minutes(9));
    assert!(
        connect_src(&app, "/")
            .await
            .ends_with(&provider.second_origin)
    );
    app.clock.advance(time::Duration::minutes(1));
    assert_eq!(
        connect_src(&app, "/").await,
        format!("connect-src 'self' {}", provider.issuer)
    );
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_document_naming_another_issuer_adds_nothing() {
    let provider = Provider::start().await;
    provider.document.lock().unwrap()["issuer"] = json!("https://impostor.example.com");
    let app = provider.management().await;
    assert_eq!(
        connect_src(&app, "/").await,
        format!("connect-src 'self' {}", provider.issuer)
    );
}
