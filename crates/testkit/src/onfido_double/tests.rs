//! The double's own tests: the published signature and payload vectors,
//! and over real HTTP the API, its faults and the webhook deliveries.

mod api;
mod faults;
mod runs;
mod vectors;
mod webhooks;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use super::deliveries::OTHER_WEBHOOK_TOKEN;
use super::events::{run_completed_body, task_event_body};
use super::state::{Run, Task};
use super::*;

const TOKEN: &str = "api_sandbox.test-token";
const WEBHOOK_TOKEN: &str = "test_webhook_token_0123456789abcdef";
const WORKFLOW: &str = "0c6b0e4a-1111-4b5b-9a1e-000000000001";

/// Spec §6.3: the illustrative `workflow_run.completed` body, 786 bytes.
const ILLUSTRATIVE: &str = r#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed","object":{"id":"3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","status":"approved","completed_at_iso8601":"2026-11-23T10:15:30Z","href":"https://api.eu.onfido.com/v3.6/workflow_runs/3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c"},"resource":{"id":"3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","applicant_id":"9b2d7c41-0e6f-4a53-8c1d-5f7e3a2b4c6d","workflow_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","workflow_version_id":3,"status":"approved","customer_user_id":"cu_7Jd2kQx9Lm4pVt8R","dashboard_url":"https://dashboard.onfido.com/results/3f1c2b9e-5d4a-4c1e-9a7b-2e8d6f0a1b2c","output":{"face_match":"clear"},"reasons":[],"tags":["flow:0b6f2c1e"],"error":null,"created_at":"2026-11-23T10:14:02Z","updated_at":"2026-11-23T10:15:30Z"}}}"#;
const ILLUSTRATIVE_SIGNATURE: &str =
    "5f7bcd9a16b82bd26ae865aba254854e2cc3b3b69feb780d089e279bd5c16da1";

// --- helpers over real HTTP -------------------------------------------

/// `^[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*$`, by hand.
fn sdk_token_shaped(token: &str) -> bool {
    let head = |c: char| c.is_ascii_alphanumeric() || "-_=".contains(c);
    let tail = |c: char| c.is_ascii_alphanumeric() || "-_.+/=".contains(c);
    let Some((first, rest)) = token.split_once('.') else {
        return false;
    };
    let second = rest.find(|c: char| !head(c)).unwrap_or(rest.len());
    if first.is_empty() || !first.chars().all(head) || second == 0 {
        return false;
    }
    let after = &rest[second..];
    after.strip_prefix('.').unwrap_or(after).chars().all(tail)
}

fn lower_uuid_v4(s: &str) -> bool {
    s.len() == 36
        && s == s.to_lowercase()
        && uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4)
}

fn utc_timestamp(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 20 && time::PrimitiveDateTime::parse(s, TIMESTAMP).is_ok())
}

fn parse_ts(value: &Value) -> OffsetDateTime {
    time::PrimitiveDateTime::parse(value.as_str().unwrap(), TIMESTAMP)
        .unwrap()
        .assume_utc()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

struct Api {
    double: OnfidoDouble,
    http: reqwest::Client,
}

impl Api {
    async fn start(config: OnfidoDoubleConfig) -> Self {
        Self {
            double: OnfidoDouble::start(config).await,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.double.base_url());
        let mut request = self.http.request(method, url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, Some(&format!("Token token={TOKEN}")))
            .await
    }

    async fn applicant(&self) -> String {
        let body = json!({
            "first_name": "Biometric", "last_name": "Passkey",
            "consents": [{"name": "privacy_notices_read", "granted": true}],
        });
        let answer = self.call(Method::POST, "/applicants", Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, applicant: &str, user: Option<&str>, tags: &[&str]) -> Value {
        let mut body = json!({"workflow_id": WORKFLOW, "applicant_id": applicant, "tags": tags});
        if let Some(user) = user {
            body["customer_user_id"] = json!(user);
        }
        let answer = self.call(Method::POST, "/workflow_runs", Some(body)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body
    }
}

fn assert_envelope(answer: &Answer, status: u16, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["error"]["type"], kind, "{}", answer.body);
    assert!(
        answer.body["error"]["message"].is_string(),
        "{}",
        answer.body
    );
}

// --- webhooks ---------------------------------------------------------

type Delivery = (HeaderMap, Vec<u8>);

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    answer: Arc<AtomicU16>,
}

async fn receive(
    AxumState(receiver): AxumState<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    receiver.got.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::from_u16(receiver.answer.load(Ordering::SeqCst)).unwrap()
}

impl Receiver {
    async fn start(answer: u16) -> (Self, String) {
        let receiver = Self {
            got: Arc::default(),
            answer: Arc::new(AtomicU16::new(answer)),
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (
            receiver,
            format!("http://{addr}/api/public/v1/providers/onfido/webhooks"),
        )
    }

    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

fn signature(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-sha2-signature")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn valid(headers: &HeaderMap, body: &[u8]) -> bool {
    signature(headers).is_some_and(|s| s == sign(WEBHOOK_TOKEN, body))
}

fn event(delivery: &Delivery) -> Value {
    serde_json::from_slice(&delivery.1).unwrap()
}

/// Completes a fresh run under `fault`: what arrived, and the run.
async fn deliveries_under(
    api: &Api,
    receiver: &Receiver,
    fault: WebhookFault,
) -> (Vec<Delivery>, Value) {
    api.double.set_webhook_fault(fault);
    let applicant = api.applicant().await;
    let run = api.run(&applicant, Some("cu_w"), &["flow:w"]).await;
    let outcomes = api
        .double
        .complete_run(run["id"].as_str().unwrap(), "approved")
        .await;
    let got = receiver.take();
    assert_eq!(outcomes.len(), got.len());
    assert!(outcomes.iter().all(DeliveryOutcome::is_success));
    (got, run)
}
