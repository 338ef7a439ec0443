//! OpenTelemetry traces as a collector receives them: a Core API in `onfido`
//! mode exports its spans over OTLP/HTTP to a receiver that decodes them with
//! the protocol's own definitions; one registration's spans, their parents,
//! and the `traceparent` the provider double received.
//!
//! Exporting installs the process's global subscriber and propagator:
//! nextest runs each test in a process of its own, so no other test logs or
//! traces through them (under `cargo test`, the tests that run after this
//! one in the same process do, which none of them asserts on).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;
use server::config::LogLevel;
use server::telemetry;
use server::traces::Traces;
use testkit::onfido_double::{OnfidoDouble, OnfidoDoubleConfig};
use testkit::{Store, spawn_core_onfido};
use tokio::net::TcpListener;

const WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";
/// The caller's trace: W3C trace context, version 00, sampled.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Received spans, with their service name.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<(String, Span)>>>);

async fn receive(State(collector): State<Collector>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut spans = collector.0.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push((service.clone(), span));
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_spans_reach_the_collector_with_their_parents_and_the_provider_gets_the_trace() {
    let (collector, endpoint) = start_collector().await;
    let traces = Traces::start_to(&endpoint, "core").unwrap();
    let _logs = telemetry::init_traced(LogLevel::Info, Some(&traces));

    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let app = spawn_core_onfido(
        Store::Sqlite,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(app.url(WEBHOOK_PATH));

    let response = app
        .client
        .post(app.url("/api/core/v1/flows"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({ "type": "registration", "external_user_id": "tess" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let correlation_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    traces.flush().await;

    let spans = spans_of_the_callers_trace(&collector);
    let operation = the_operation_inside_the_request(&spans, correlation_id);
    let provider_calls = store_and_provider_calls_inside(&spans, operation);
    the_provider_received_the_trace(&double, &provider_calls);
    traces.shutdown().await;
}

/// A collector on loopback; gives its OTLP/HTTP traces endpoint.
async fn start_collector() -> (Collector, String) {
    let collector = Collector::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let receiver = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(collector.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    (collector, endpoint)
}

/// The spans received in the caller's trace, all from the Core API.
fn spans_of_the_callers_trace(collector: &Collector) -> Vec<Span> {
    let received = collector.0.lock().unwrap();
    assert!(
        received
            .iter()
            .all(|(service, _)| service == "biometric-passkey-core"),
        "the service is named after the runtime"
    );
    received
        .iter()
        .map(|(_, span)| span.clone())
        .filter(|span| hex::encode(&span.trace_id) == TRACE_ID)
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        panic!("no span {name} among {names:?}")
    })
}

/// The request: a server span, child of the caller's, with the correlation
/// id that links it to the logs and the audit trail; the flow operation
/// inside it, which this gives.
fn the_operation_inside_the_request(spans: &[Span], correlation_id: String) -> &Span {
    let request = named(spans, "POST /api/core/v1/flows");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(hex::encode(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(attribute(request, "correlation_id"), Some(correlation_id));
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/api/core/v1/flows")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("201")
    );
    let operation = named(spans, "flow.create");
    assert_eq!(operation.parent_span_id, request.span_id);
    operation
}

/// The store's transactions and the provider's calls, inside the operation;
/// gives the provider's calls.
fn store_and_provider_calls_inside<'a>(spans: &'a [Span], operation: &Span) -> Vec<&'a Span> {
    let children = |prefix: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix) && s.parent_span_id == operation.span_id)
            .collect()
    };
    assert!(!children("db.").is_empty(), "store calls are traced");
    let provider_calls = children("idv.");
    assert!(
        provider_calls.iter().any(|s| s.name == "idv.start_run"),
        "{:?}",
        provider_calls.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(
        provider_calls
            .iter()
            .all(|s| s.kind == SpanKind::Client as i32)
    );
    provider_calls
}

/// The provider received the trace, each request as a child of its call.
fn the_provider_received_the_trace(double: &OnfidoDouble, provider_calls: &[&Span]) {
    let sent: Vec<String> = double
        .requests()
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(name, _)| name == "traceparent")
                .map(|(_, value)| value.clone())
        })
        .collect();
    assert!(
        !sent.is_empty(),
        "the provider's requests carry traceparent"
    );
    for traceparent in &sent {
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts[1], TRACE_ID, "{traceparent}");
        assert!(
            provider_calls
                .iter()
                .any(|s| hex::encode(&s.span_id) == parts[2]),
            "{traceparent} names one of the provider calls' spans"
        );
    }
}
