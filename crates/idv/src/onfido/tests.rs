use domain::flow::IdentityOutcome;
use domain::idv::{IdentityProvider, IdvError, RunStatus, StartRun, Workflow};
use domain::user::Pseudonym;
use reqwest::{StatusCode, Url};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::client::resource_of;
use super::failure::Failure;
use super::runs::{flow_tag, is_run_of};
use super::*;

#[test]
fn statuses_map_to_outcomes_and_unknown_ones_stay_open() {
    assert_eq!(
        run_status("approved"),
        RunStatus::Done(IdentityOutcome::Approved)
    );
    assert_eq!(
        run_status("review"),
        RunStatus::Done(IdentityOutcome::Review)
    );
    assert_eq!(run_status("awaiting_client_input"), RunStatus::Open);
    assert_eq!(run_status("paused"), RunStatus::Unknown("paused".into()));
}

fn provider(base_url: &str) -> Result<OnfidoProvider, IdvError> {
    let workflows = Workflows {
        registration: "r".into(),
        step_up: "s".into(),
        recovery_verify: "v".into(),
    };
    OnfidoProvider::new(OnfidoSettings::new(
        Url::parse(base_url).unwrap(),
        SecretString::from("api_token"),
        workflows,
    ))
}

/// A provider answering with a redirect is refused once; the client
/// neither follows it nor retries.
#[tokio::test]
async fn a_redirect_is_refused_not_followed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0; 8192];
                // Each read is one small bodiless GET.
                while socket.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{addr}/v3.6/elsewhere\r\ncontent-length: 0\r\n\r\n"
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let provider = provider(&format!("http://{addr}/v3.6")).unwrap();
    let err = provider.read_run("run-1").await.unwrap_err();
    assert!(
        matches!(&err, IdvError::Refused(m) if m.starts_with("307")),
        "{err:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[test]
fn paths_and_queries_go_under_the_base_url() {
    let regional = provider("https://api.eu.onfido.com/v3.6/").unwrap();
    assert_eq!(
        regional.url("/workflow_runs/abc").as_str(),
        "https://api.eu.onfido.com/v3.6/workflow_runs/abc"
    );
    assert_eq!(
        regional
            .url("/workflow_runs?applicant_id=a&tags=t")
            .as_str(),
        "https://api.eu.onfido.com/v3.6/workflow_runs?applicant_id=a&tags=t"
    );
    let double = provider("http://127.0.0.1:8080").unwrap();
    assert_eq!(
        double.url("/applicants").as_str(),
        "http://127.0.0.1:8080/applicants"
    );
}

#[test]
fn a_base_url_without_a_host_or_with_a_query_or_fragment_is_refused_at_start() {
    for bad in ["https://x/v3.6?a=b", "https://x/v3.6#f", "mailto:x@y"] {
        assert!(provider(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn an_api_token_that_cannot_be_a_header_is_refused_at_start() {
    let workflows = Workflows {
        registration: "r".into(),
        step_up: "s".into(),
        recovery_verify: "v".into(),
    };
    let refused = OnfidoProvider::new(OnfidoSettings::new(
        Url::parse("https://api.eu.onfido.com/v3.6").unwrap(),
        SecretString::from("api\ntoken"),
        workflows,
    ));
    let Err(IdvError::Refused(message)) = refused else {
        panic!("a token with a line break was accepted");
    };
    assert!(
        !message.contains("api\ntoken"),
        "the message must not carry the token"
    );
}

#[test]
fn the_authorization_header_is_sensitive() {
    let provider = provider("https://api.eu.onfido.com/v3.6").unwrap();
    assert!(provider.authorization.is_sensitive());
    assert_eq!(provider.authorization, "Token token=api_token");
}

#[test]
fn only_safe_or_unprocessed_calls_are_retried() {
    let status = |code: u16| Failure::Status {
        status: StatusCode::from_u16(code).unwrap(),
        kind: "x".into(),
        retry_after: None,
    };
    assert!(Failure::NotSent("refused".into()).retryable(false));
    assert!(!Failure::Ambiguous("timeout".into()).retryable(false));
    assert!(Failure::Ambiguous("timeout".into()).retryable(true));
    assert!(status(429).retryable(false));
    assert!(status(503).retryable(false));
    assert!(!status(500).retryable(false));
    assert!(status(500).retryable(true));
    assert!(!status(422).retryable(true));
}

#[test]
fn only_timeouts_and_server_errors_may_have_created_a_run() {
    let status = |code: u16| Failure::Status {
        status: StatusCode::from_u16(code).unwrap(),
        kind: "x".into(),
        retry_after: None,
    };
    assert!(Failure::Ambiguous("timeout".into()).may_have_processed());
    assert!(status(500).may_have_processed());
    assert!(!status(422).may_have_processed());
    assert!(!status(429).may_have_processed());
    assert!(!Failure::NotSent("refused".into()).may_have_processed());
}

#[test]
fn a_listed_run_is_adopted_only_when_it_is_provably_the_flows() {
    let workflows = Workflows {
        registration: "0c6b0e4a-1111-4b5b-9a1e-000000000001".into(),
        step_up: "0C6B0E4A-1111-4B5B-9A1E-000000000002".into(),
        recovery_verify: "0c6b0e4a-1111-4b5b-9a1e-000000000003".into(),
    };
    let pseudonym = Pseudonym::generate();
    let flow_id = domain::flow::FlowId(uuid::Uuid::nil());
    let request = StartRun {
        workflow: Workflow::StepUp,
        customer_user_id: &pseudonym,
        applicant_id: "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d",
        flow_id,
        deadline: std::time::Instant::now(),
    };
    let good = json!({
        "id": "3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c",
        "applicant_id": "9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d",
        "workflow_id": "0c6b0e4a-1111-4b5b-9a1e-000000000002",
        "customer_user_id": pseudonym.as_str(),
        "tags": ["other", flow_tag(&request)],
        "status": "awaiting_input",
    });
    assert!(is_run_of(&good, &request, &workflows));
    let changed = |field: &str, value: Value| {
        let mut run = good.clone();
        run[field] = value;
        run
    };
    for (field, value) in [
        ("tags", json!([format!("flow:{}", uuid::Uuid::max())])),
        ("tags", json!([])),
        ("tags", Value::Null),
        (
            "applicant_id",
            json!("11111111-0e6f-4a53-8c1d-5f7e3a2b4c6d"),
        ),
        ("workflow_id", json!("0c6b0e4a-1111-4b5b-9a1e-000000000001")),
        ("customer_user_id", json!("cu_someone_else")),
        ("customer_user_id", Value::Null),
    ] {
        assert!(
            !is_run_of(&changed(field, value.clone()), &request, &workflows),
            "{field} = {value}"
        );
    }
}

#[tokio::test]
async fn errors_carry_no_url_with_its_ids() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = provider(&format!("http://{addr}/v3.6")).unwrap();
    let err = provider
        .delete_applicant("9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d")
        .await
        .unwrap_err();
    assert!(matches!(err, IdvError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("9b2d7c41"), "{err}");
}

#[test]
fn log_lines_name_the_resource_without_ids() {
    assert_eq!(resource_of("/applicants/9b2d7c41"), "applicants");
    assert_eq!(
        resource_of("/workflow_runs?applicant_id=a&tags=flow:x"),
        "workflow_runs"
    );
    assert_eq!(resource_of("/biometric_tokens/cu_abc"), "biometric_tokens");
}

#[test]
fn errors_never_carry_the_providers_message() {
    let err = Failure::Status {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        kind: "validation_error".into(),
        retry_after: None,
    }
    .into_error();
    assert_eq!(err, IdvError::Refused("422 validation_error".into()));
}
