//! The shared layers, driven through a router with `oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::post;
use http_body_util::BodyExt;
use http_common::{
    ApiBody, ApiJson, ApiPath, ApiQuery, Draining, ReadinessProbe, ServiceInfo, finish,
    service_routes,
};
use proto::service::VersionInfo;
use serde_json::Value;
use tower::ServiceExt;

/// A switchable readiness probe.
struct Switch(AtomicBool);

#[async_trait]
impl ReadinessProbe for Switch {
    async fn check(&self) -> Result<(), String> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("connection refused".into())
        }
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Echo {
    name: String,
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> ApiJson<Echo> {
    ApiJson(body)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<u32>,
}

async fn page(ApiPath(n): ApiPath<u32>, ApiQuery(page): ApiQuery<Page>) -> String {
    format!("{n} {:?}", page.limit)
}

async fn raw(ApiBody(body): ApiBody) -> String {
    body.len().to_string()
}

fn app(db_up: bool) -> Router {
    app_draining(db_up, Draining::default())
}

fn app_draining(db_up: bool, draining: Draining) -> Router {
    let info = ServiceInfo {
        version: Arc::new(VersionInfo {
            version: "1.2.3".into(),
            commit: None,
            build_time: None,
            runtime: "core".into(),
        }),
        readiness: Arc::new(Switch(AtomicBool::new(db_up))),
        draining,
    };
    finish(
        service_routes(info)
            .route("/echo", post(echo))
            .route("/pages/{n}", axum::routing::get(page))
            .route(
                "/raw",
                post(raw).layer(axum::extract::DefaultBodyLimit::max(16)),
            ),
        &http_common::HttpLimits::default(),
    )
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_answers_even_when_the_database_is_down() {
    let (status, _, body) = call(app(false), get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let (status, _, body) = call(app(true), get("/api/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"], "ok");

    let (status, headers, body) = call(app(false), get("/api/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(headers[header::RETRY_AFTER], "5");
}

#[tokio::test]
async fn a_draining_runtime_is_not_ready_but_still_serves() {
    let draining = Draining::default();
    let app = app_draining(true, draining.clone());
    let (status, _, _) = call(app.clone(), get("/api/ready")).await;
    assert_eq!(status, StatusCode::OK);

    draining.begin();
    let (status, headers, body) = call(app.clone(), get("/api/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    assert_eq!(body["error"]["message"], "the runtime is shutting down");
    assert_eq!(headers[header::RETRY_AFTER], "5");
    // Liveness and the API itself go on until the listener closes.
    let (status, _, _) = call(app.clone(), get("/api/health")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(app, get("/pages/3")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn version_reports_the_build() {
    let (_, _, body) = call(app(true), get("/api/version")).await;
    assert_eq!(body["version"], "1.2.3");
    assert_eq!(body["runtime"], "core");
    assert!(body.get("commit").is_none() && body.get("build_time").is_none());
}

#[tokio::test]
async fn json_answers_are_not_stored_and_nothing_is_sniffed() {
    let requests = [
        get("/api/health"),
        get("/api/ready"),
        get("/api/version"),
        get("/nope"),
        Request::post("/echo")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"a"}"#))
            .unwrap(),
        Request::post("/echo")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{"))
            .unwrap(),
    ];
    for request in requests {
        let uri = request.uri().clone();
        let (status, headers, _) = call(app(true), request).await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{uri} {status}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
    }
    let (status, headers, _) = call(app(false), get("/api/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors_with_the_correlation_id() {
    let (status, headers, body) = call(app(true), get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "route_not_found");
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(body["error"]["correlation_id"], id);
    assert_eq!(id.len(), 36, "a generated UUID");

    let request = Request::delete("/api/health").body(Body::empty()).unwrap();
    let (status, _, body) = call(app(true), request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_well_formed_request_id_is_adopted_and_a_malformed_one_replaced() {
    let request = Request::get("/nope")
        .header("x-request-id", "edge-1234")
        .body(Body::empty())
        .unwrap();
    let (_, headers, body) = call(app(true), request).await;
    assert_eq!(headers["x-request-id"], "edge-1234");
    assert_eq!(body["error"]["correlation_id"], "edge-1234");

    let request = Request::get("/api/health")
        .header("x-request-id", "bad id with spaces")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(app(true), request).await;
    assert_ne!(headers["x-request-id"], "bad id with spaces");
}

#[tokio::test]
async fn malformed_bodies_get_stable_codes() {
    let post = |content_type: &str, body: &str| {
        Request::post("/echo")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, _, body) = call(app(true), post("application/json", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request_body");

    let (status, _, body) = call(app(true), post("application/json", r#"{"other":1}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request_body");

    let (status, _, body) = call(app(true), post("text/plain", r#"{"name":"x"}"#)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let huge = format!(
        r#"{{"name":"{}"}}"#,
        "x".repeat(http_common::DEFAULT_BODY_LIMIT)
    );
    let (status, _, body) = call(app(true), post("application/json", &huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");

    let (status, _, body) = call(app(true), post("application/json", r#"{"name":"ok"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "ok");
}

/// A router whose `/slow` answers after `pause`, and whose `/yield` gives
/// its place under the cap up before it pauses.
fn slow_app(limits: http_common::HttpLimits, pause: std::time::Duration) -> Router {
    let slow = axum::routing::get(move || async move {
        tokio::time::sleep(pause).await;
        "done"
    });
    let yielding = axum::routing::get(
        move |axum::Extension(slot): axum::Extension<http_common::RequestSlot>| async move {
            slot.release();
            tokio::time::sleep(pause).await;
            "done"
        },
    );
    finish(
        Router::new().route("/slow", slow).route("/yield", yielding),
        &limits,
    )
}

#[tokio::test]
async fn requests_past_the_cap_are_refused_at_once_as_server_busy() {
    let limits = http_common::HttpLimits {
        max_concurrent_requests: 2,
        ..http_common::HttpLimits::default()
    };
    let app = slow_app(limits, std::time::Duration::from_millis(400));
    let busy = [
        tokio::spawn(app.clone().oneshot(get("/slow"))),
        tokio::spawn(app.clone().oneshot(get("/slow"))),
    ];
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let (status, headers, body) = call(app.clone(), get("/slow")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "server_busy");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(
        started.elapsed() < std::time::Duration::from_millis(200),
        "refused without waiting"
    );
    for request in busy {
        assert_eq!(request.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let (status, _, _) = call(app, get("/slow")).await;
    assert_eq!(status, StatusCode::OK, "places are given back");
}

#[tokio::test]
async fn a_request_that_gives_its_place_up_no_longer_counts() {
    let limits = http_common::HttpLimits {
        max_concurrent_requests: 1,
        ..http_common::HttpLimits::default()
    };
    let app = slow_app(limits, std::time::Duration::from_millis(300));
    let waiting = tokio::spawn(app.clone().oneshot(get("/yield")));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, _, body) = call(app.clone(), get("/slow")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(waiting.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_past_its_time_limit_is_stopped() {
    let limits = http_common::HttpLimits {
        request_timeout: std::time::Duration::from_millis(100),
        ..http_common::HttpLimits::default()
    };
    let app = slow_app(limits, std::time::Duration::from_secs(5));
    let started = std::time::Instant::now();
    let (status, _, body) = call(app, get("/slow")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(!body["error"]["correlation_id"].as_str().unwrap().is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn the_frameworks_own_refusals_are_json_errors_with_stable_codes() {
    let (status, _, body) = call(app(true), get("/pages/7?limit=3")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Value::Null),
        "plain text answer"
    );
    let cases = [
        (
            get("/pages/x"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            get("/pages/%FF"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            get("/pages/1?limit=-1"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            get("/pages/1?other=1"),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            Request::post("/raw")
                .body(Body::from("x".repeat(17)))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Request::post("/echo")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"name":"a"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Request::post("/echo")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("x".repeat(70 * 1024)))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (request, expected_status, code) in cases {
        let uri = request.uri().clone();
        let (status, headers, body) = call(app(true), request).await;
        assert_eq!(status, expected_status, "{uri}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{uri}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let request = Request::post("/raw")
        .body(Body::from("x".repeat(16)))
        .unwrap();
    let (status, _, _) = call(app(true), request).await;
    assert_eq!(status, StatusCode::OK);
}
