//! Route faults and the rate limit.

use super::*;

#[tokio::test]
async fn route_faults_hit_exactly_the_next_calls() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});

    api.double
        .set_route_fault(Route::CreateRun, Fault::ServerError, 2);
    for _ in 0..2 {
        let answer = api
            .call(Method::POST, "/workflow_runs", Some(body.clone()))
            .await;
        assert_envelope(&answer, 500, "internal_server_error");
    }
    assert_eq!(api.double.runs_created(), 0, "a 500 processes nothing");
    let created = api
        .call(Method::POST, "/workflow_runs", Some(body.clone()))
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(api.double.runs_created(), 1);

    api.double
        .set_route_fault(Route::ListRuns, Fault::NonJsonBadGateway, 1);
    let gateway = api.call(Method::GET, "/workflow_runs", None).await;
    assert_eq!(gateway.status, 502);
    assert!(
        gateway.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(gateway.body.is_string(), "not JSON");
    assert_eq!(
        api.call(Method::GET, "/workflow_runs", None).await.status,
        200
    );

    // A delay past the client's timeout: the run exists although the client saw nothing.
    api.double.set_route_fault(
        Route::CreateRun,
        Fault::Delay(Duration::from_millis(800)),
        1,
    );
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = impatient
        .post(format!("{}/workflow_runs", api.double.base_url()))
        .header("Authorization", format!("Token token={TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(api.double.runs_created(), 2);

    // A dropped connection: no answer at all, though the request was processed.
    api.double
        .set_route_fault(Route::CreateApplicant, Fault::DropConnection, 1);
    let err = api
        .http
        .post(format!("{}/applicants", api.double.base_url()))
        .header("Authorization", format!("Token token={TOKEN}"))
        .json(&json!({"first_name": "A", "last_name": "B"}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    assert_eq!(api.double.applicants_created(), 2);
    api.applicant().await;
    assert_eq!(api.double.applicants_created(), 3);

    api.double
        .set_route_fault(Route::BiometricTokens, Fault::ServerError, 1);
    assert_eq!(
        api.call(Method::GET, "/biometric_tokens/u", None)
            .await
            .status,
        500
    );
    assert_eq!(
        api.call(Method::GET, "/biometric_tokens/u", None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_and_without_retry_after() {
    let api = Api::start(OnfidoDoubleConfig {
        rate_limit_per_minute: Some(3),
        ..OnfidoDoubleConfig::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(api.call(Method::GET, "/ping", None).await.status, 200);
    }
    let limited = api.call(Method::GET, "/ping", None).await;
    assert_envelope(&limited, 429, "rate_limit");
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    let api = Api::start(OnfidoDoubleConfig::default()).await;
    api.double
        .set_route_fault(Route::ReadRun, Fault::RateLimited { retry_after: None }, 1);
    let path = format!("/workflow_runs/{}", new_id());
    let bare = api.call(Method::GET, &path, None).await;
    assert_envelope(&bare, 429, "rate_limit");
    assert!(bare.headers.get("retry-after").is_none());
    api.double.set_route_fault(
        Route::ReadRun,
        Fault::RateLimited {
            retry_after: Some(7),
        },
        1,
    );
    let hinted = api.call(Method::GET, &path, None).await;
    assert_envelope(&hinted, 429, "rate_limit");
    assert_eq!(hinted.headers["retry-after"], "7");
    assert_eq!(api.call(Method::GET, &path, None).await.status, 404);
}

#[tokio::test]
async fn a_503_after_processing_created_the_run() {
    let api = Api::start(OnfidoDoubleConfig::default()).await;
    let applicant = api.applicant().await;
    api.double
        .set_route_fault(Route::CreateRun, Fault::UnavailableAfterProcessing, 1);
    let body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant});
    let answer = api.call(Method::POST, "/workflow_runs", Some(body)).await;
    assert_envelope(&answer, 503, "service_unavailable");
    assert_eq!(api.double.runs_created(), 1);
}
