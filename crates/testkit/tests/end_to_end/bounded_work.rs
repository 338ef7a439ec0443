//! Slow or numerous clients cannot hold a runtime: a client that does not
//! send its headers in time is disconnected, requests past the cap are
//! refused at once, and long-polls wait under a cap of their own.

use std::time::{Duration, Instant};

use http_common::HttpLimits;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Store, TestApp, spawn_core_bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn id(flow: &Value) -> &str {
    flow["id"].as_str().unwrap()
}

/// A signed-in user's pending sign-in flow.
async fn pending_sign_in(app: &TestApp) -> Value {
    app.enrolled("ana", "ana-phone").await;
    app.created(json!({ "type": "sign_in", "external_user_id": "ana" }))
        .await
}

/// Starts a long-poll of `flow` for changes past its current version.
fn long_poll(
    app: &TestApp,
    flow: &Value,
    seconds: u32,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let url = app.url(&format!(
        "/api/core/v1/flows/{}?after_version={}&wait_seconds={seconds}",
        id(flow),
        flow["version"]
    ));
    let client = app.client.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        (response.json().await.unwrap(), started.elapsed())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_send_their_headers_in_time_are_disconnected() {
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let app = spawn_core_bounded(Store::Sqlite, limits, 10).await;
    // Slow-loris: many connections, each sending a header line and stopping.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Everyone else is served meanwhile.
    let health = app.get("/api/health").await;
    assert_eq!(health.status(), 200);

    let started = Instant::now();
    for mut stream in slow {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        // Closed (possibly after a 408 answer), never a served request.
        let answer = String::from_utf8_lossy(&rest);
        assert!(
            read.is_err() || !answer.contains("200 OK"),
            "a slow client is not served: {answer}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "all cut off at the header timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_wait_under_their_own_cap_and_wake_on_their_flow() {
    let limits = HttpLimits {
        max_concurrent_requests: 2,
        ..HttpLimits::default()
    };
    let app = spawn_core_bounded(Store::Sqlite, limits, 4).await;
    let flow = pending_sign_in(&app).await;
    let other = app
        .created(json!({ "type": "registration", "external_user_id": "bo" }))
        .await;

    // Four waiters, twice the cap on requests being worked on.
    let mut waiters = Vec::new();
    for _ in 0..4 {
        waiters.push(long_poll(&app, &flow, 20));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Requests are still served: waiting reads do not hold places.
    for _ in 0..3 {
        let health = app.get("/api/health").await;
        assert_eq!(health.status(), 200);
    }
    // Past the waiters' cap, a read that asks to wait answers at once.
    let (unchanged, took) = long_poll(&app, &flow, 20).await.unwrap();
    assert_eq!(unchanged["version"], flow["version"]);
    assert!(took < Duration::from_secs(2), "answered at once: {took:?}");

    // Another flow's change wakes nobody; the flow's own wakes them all.
    let (status, _) = app
        .store_reference(&other, b"encrypted-biometric-token")
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    let (status, body) = app.assert_with(&flow, "ana-phone", 1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for waiter in waiters {
        let (changed, took) = waiter.await.unwrap();
        assert_eq!(changed["state"], "completed");
        assert!(
            took < Duration::from_secs(10),
            "woken by the change: {took:?}"
        );
    }
}
