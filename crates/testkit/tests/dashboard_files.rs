//! The dashboard's files as the management runtime serves them, over real HTTP:
//! caching, the Content-Security-Policy, deep links, and the API's own 404s.
//! Needs `dashboard/dist` (built by `scripts/build-dashboard`, which
//! `scripts/test` runs first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use testkit::{Store, TestApp, spawn_management};

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
