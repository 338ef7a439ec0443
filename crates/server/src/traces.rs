//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) to a collector,
//! off unless configured with the standard `OTEL_*` variables.
//!
//! Spans: each request (`server`, named `METHOD /route/{template}`, the
//! caller's W3C `traceparent` as its parent, the correlation id as an
//! attribute), the flow operation it runs (`flow.*`, from the domain), each
//! call to the store (`db.*`, one transaction each) and to the IDV provider
//! (`idv.*`, `client`), whose HTTP requests carry the trace on in their own
//! `traceparent`.
//!
//! All of them are made at [`SPAN_TARGET`], which the runtime's subscriber
//! enables only while traces are exported: otherwise every span's call site
//! is disabled once and for all, the request, store and provider decorators
//! are not installed, and the hot path pays nothing for tracing.
//!
//! The exporter sends through the runtime's own HTTP client (reqwest with
//! rustls, on the runtime's Tokio runtime) rather than the one the
//! OpenTelemetry crates bundle, which would add a second HTTP stack.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;

/// The target of every span the product makes for tracing.
pub const SPAN_TARGET: &str = "biometric_passkey::span";

/// How long one export may take (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// At most one warning about failed exports in this long.
const WARN_EVERY: Duration = Duration::from_secs(60);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Exports that failed (the collector out of reach, or answering other than
/// 2xx): counted for the metrics, and logged at most once a minute with how
/// many failed since the last line, so a collector that is down neither goes
/// unnoticed nor floods the log.
#[derive(Debug, Default)]
pub struct ExportFailures {
    total: AtomicU64,
    /// Failures since the last warning, and when that was.
    unreported: Mutex<(u64, Option<Instant>)>,
}

impl ExportFailures {
    /// Failed exports since the process started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    fn failed(&self, reason: &dyn std::fmt::Display) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let Ok(mut unreported) = self.unreported.lock() else {
            return;
        };
        unreported.0 += 1;
        let now = Instant::now();
        if unreported
            .1
            .is_none_or(|last| now.duration_since(last) >= WARN_EVERY)
        {
            tracing::warn!(
                failed = unreported.0,
                error = %reason,
                "traces could not be exported to the OTLP endpoint; spans are being dropped"
            );
            *unreported = (0, Some(now));
        }
    }
}

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `OTEL_*` settings, as checked by the configuration (see
/// `config::read_traces`); the OpenTelemetry SDK reads the variables itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TracesConfig {
    /// An OTLP endpoint is configured, and neither `OTEL_SDK_DISABLED` nor
    /// `OTEL_TRACES_EXPORTER=none` turns export off.
    pub enabled: bool,
}

/// The running exporter; [`Traces::shutdown`] sends what is still queued.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    failures: Arc<ExportFailures>,
}

impl Traces {
    /// Starts exporting when `config` asks for it, naming the service
    /// `biometric-passkey-<runtime>` unless `OTEL_SERVICE_NAME` names it.
    /// Call from within the Tokio runtime.
    pub fn start(config: TracesConfig, runtime: &str) -> anyhow::Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        Self::export(None, runtime).map(Some)
    }

    /// Starts exporting to `endpoint` (the full URL, `…/v1/traces`), whatever
    /// the `OTEL_EXPORTER_OTLP_*` variables say.
    pub fn start_to(endpoint: &str, runtime: &str) -> anyhow::Result<Self> {
        Self::export(Some(endpoint), runtime)
    }

    fn export(endpoint: Option<&str>, runtime: &str) -> anyhow::Result<Self> {
        let failures = Arc::<ExportFailures>::default();
        let client = Exporting {
            client: reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
                .context("while building the trace exporter's HTTP client")?,
            runtime: tokio::runtime::Handle::current(),
            failures: failures.clone(),
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(client);
        if let Some(endpoint) = endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter
            .build()
            .context("while configuring the OTLP trace exporter")?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none_or(|name| name.is_empty()) {
            resource = resource.with_service_name(format!("biometric-passkey-{runtime}"));
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("biometric-passkey");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Self {
            provider,
            tracer,
            failures,
        })
    }

    /// The exports that failed so far, for the metrics.
    pub fn failures(&self) -> Arc<ExportFailures> {
        self.failures.clone()
    }

    /// Sends the spans ended so far.
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let done = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "traces were not exported");
        }
    }

    /// The subscriber layer that turns the product's spans into exported ones.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_tracked_inactivity(false)
    }

    /// Sends the spans still queued, then stops the exporter.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The exporter's thread sends on this runtime: wait off its workers.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "the last traces were not exported");
        }
    }
}

/// Traces every request `router` answers (nothing when traces are off).
pub fn trace_requests(router: Router) -> Router {
    if !enabled() {
        return router;
    }
    router.layer(axum::middleware::from_fn(traced))
}

async fn traced(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::metrics::http::UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = crate::metrics::http::method_label(request.method());
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    // A `traceparent` that does not parse leaves an empty context: a new trace.
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if let Some(id) = response
        .headers()
        .get(&http_common::correlation::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        span.record("correlation_id", id);
    }
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

/// A span for one call to the store.
pub fn db_span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "db",
        otel.name = format!("db.{operation}"),
        otel.kind = "client",
        db.operation.name = operation,
    )
}

/// A span for one call to the IDV provider.
pub fn provider_span(provider: &'static str, operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "idv",
        otel.name = format!("idv.{operation}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        idv.provider = provider,
        idv.operation = operation,
    )
}

/// Adds the current span's `traceparent` to an outgoing request's headers
/// (nothing when traces are off).
pub fn inject_trace_context(headers: &mut HeaderMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The exporter's HTTP client: the runtime's reqwest, driven on its Tokio
/// runtime (the exporter calls it from a thread of its own).
#[derive(Debug)]
struct Exporting {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    failures: Arc<ExportFailures>,
}

#[async_trait]
impl HttpClient for Exporting {
    async fn send_bytes(
        &self,
        request: axum::http::Request<Bytes>,
    ) -> Result<axum::http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let request = reqwest::Request::try_from(request)?;
        let answer = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                let mut answer = axum::http::Response::new(body);
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                Ok::<_, HttpError>(answer)
            })
            .await?;
        match &answer {
            Ok(response) if !response.status().is_success() => self.failures.failed(&format_args!(
                "the collector answered {}",
                response.status()
            )),
            Ok(_) => {}
            Err(e) => self.failures.failed(e),
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_export_the_collector_never_receives_is_counted() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let failures = Arc::<ExportFailures>::default();
        let client = Exporting {
            client: reqwest::Client::new(),
            runtime: tokio::runtime::Handle::current(),
            failures: failures.clone(),
        };
        let request = axum::http::Request::post(format!("http://{closed}/v1/traces"))
            .body(Bytes::from_static(b"spans"))
            .unwrap();
        assert!(client.send_bytes(request).await.is_err());
        assert_eq!(failures.total(), 1);
    }

    #[test]
    fn failures_are_logged_once_a_minute_and_all_counted() {
        let failures = ExportFailures::default();
        for _ in 0..5 {
            failures.failed(&"connection refused");
        }
        assert_eq!(failures.total(), 5);
        // The first was logged; the four after it wait for the next line.
        assert_eq!(failures.unreported.lock().unwrap().0, 4);
    }
}
