//! Structured JSON logs on stdout, one object per line. Every line written
//! while a request is served carries its `correlation_id`.

mod batch;

use std::cell::RefCell;

use http_common::CorrelationId;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogLevel;
use crate::traces::{SPAN_TARGET, Traces};

/// Keeps the log writer running: dropping it writes out the lines still
/// waiting, so a command holds it until it returns.
#[must_use = "log lines still waiting are lost unless this lives until the command returns"]
pub struct Logs {
    _writer: Option<batch::Flusher>,
}

/// Installs the global subscriber, writing to stdout from a thread of its own
/// (see [`batch`]): request handlers only copy their lines into a buffer, and
/// a slow log collector delays that thread, not them. A second call (tests) is
/// a no-op.
pub fn init(level: LogLevel) -> Logs {
    init_traced(level, None)
}

/// As [`init`], exporting the product's spans through `traces` when given.
pub fn init_traced(level: LogLevel, traces: Option<&Traces>) -> Logs {
    match batch::start(std::io::stdout()) {
        Ok((writer, flusher)) => Logs {
            _writer: install(level, writer, traces).then_some(flusher),
        },
        Err(e) => {
            eprintln!("no log thread ({e}): log lines are written as they come");
            install(level, std::io::stdout, traces);
            Logs { _writer: None }
        }
    }
}

/// For commands whose report is their stdout: logs go to stderr, as written.
pub fn init_for_command(level: LogLevel) {
    install(level, std::io::stderr, None);
}

/// The dependencies that speak only when something is wrong: their debug
/// output is noise, and the HTTP/TLS stacks' could echo headers.
const QUIET_DEPENDENCIES: [&str; 6] = ["hyper", "h2", "rustls", "reqwest", "sqlx", "tower_http"];

/// What is logged: `level` and above, but from [`QUIET_DEPENDENCIES`] only
/// warnings and errors (only errors at `error`). The product's tracing spans
/// ([`SPAN_TARGET`]) pass only when `traced`: otherwise their call sites are
/// disabled for good and cost nothing.
///
/// A static per-target filter rather than `EnvFilter`: that one also tracks
/// every span it lets through (a lock taken each time a request's span is
/// entered or left, several times per request) to support span-field
/// directives, which a fixed list of targets never uses.
fn filter(level: LogLevel, traced: bool) -> Targets {
    let level = level.as_tracing();
    // tracing orders levels by verbosity: the smaller is the quieter.
    let dependencies = level.min(Level::WARN);
    let spans = if traced {
        LevelFilter::INFO
    } else {
        LevelFilter::OFF
    };
    QUIET_DEPENDENCIES
        .into_iter()
        .fold(Targets::new().with_default(level), |targets, dependency| {
            targets.with_target(dependency, dependencies)
        })
        .with_target(SPAN_TARGET, spans)
}

/// Whether this call installed the subscriber.
fn install<W>(level: LogLevel, writer: W, traces: Option<&Traces>) -> bool
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    match traces {
        None => subscriber(level, writer).try_init().is_ok(),
        Some(traces) => tracing_subscriber::registry()
            .with(filter(level, true))
            .with(format(writer))
            .with(traces.layer())
            .try_init()
            .is_ok(),
    }
}

/// JSON lines, filtered by [`filter`], written to `writer`.
fn subscriber<W>(level: LogLevel, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter(level, false))
        .with(format(writer))
}

/// The JSON lines layer: events only, never span fields.
fn format<S, W>(writer: W) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::format()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true);
    tracing_subscriber::fmt::layer()
        .json()
        .event_format(WithCorrelationId(json))
        .with_writer(writer)
}

/// A JSON event format whose lines, while a request is served, begin with the
/// request's `"correlation_id"` (read from its task-local, see
/// [`CorrelationId::with_current`]).
struct WithCorrelationId<F>(F);

thread_local! {
    /// The line as the inner format writes it, before the id is put in front:
    /// kept between lines so that formatting one does not allocate.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for WithCorrelationId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut written = Ok(());
        let in_request = CorrelationId::with_current(|id| {
            written = LINE.with(|line| {
                // An event logged while this line is formatted (none is)
                // would find the buffer taken: it gets one of its own.
                let mut own = String::new();
                let mut taken = line.try_borrow_mut();
                let line = taken.as_deref_mut().unwrap_or(&mut own);
                line.clear();
                self.0.format_event(ctx, Writer::new(line), event)?;
                // The inner format writes one JSON object; the id's characters
                // (`CorrelationId::adopt`) need no escaping.
                match line.strip_prefix('{') {
                    Some(rest) => write!(writer, "{{\"correlation_id\":\"{id}\",{rest}"),
                    None => writer.write_str(line),
                }
            });
        });
        if in_request {
            written
        } else {
            self.0.format_event(ctx, writer, event)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect(line))
                .collect()
        }
    }

    #[tokio::test]
    async fn lines_logged_while_a_request_is_served_carry_its_correlation_id() {
        let output = Captured::default();
        let writer = output.clone();
        let _installed =
            tracing::subscriber::set_default(subscriber(LogLevel::Info, move || writer.clone()));
        let app = http_common::finish(
            axum::Router::new().route(
                "/probe",
                axum::routing::get(|| async {
                    tracing::warn!(reason = "probing", "inside the request");
                    "ok"
                }),
            ),
            &http_common::HttpLimits::default(),
        );
        for id in ["probe-1", "probe-2"] {
            let request = Request::get("/probe")
                .header("x-request-id", id)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.headers()["x-request-id"], id);
        }
        tracing::info!("between requests");

        let lines = output.lines();
        let inside: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "inside the request")
            .collect();
        assert_eq!(inside.len(), 2, "{lines:?}");
        for (line, id) in inside.iter().zip(["probe-1", "probe-2"]) {
            assert_eq!(line["correlation_id"], id);
            assert_eq!(line["reason"], "probing");
            assert_eq!(line["level"], "WARN");
            assert!(line["timestamp"].is_string());
        }
        let served: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "request served")
            .map(|l| (l["correlation_id"].clone(), l["status"].clone()))
            .collect();
        assert_eq!(
            served,
            [
                (serde_json::json!("probe-1"), serde_json::json!(200)),
                (serde_json::json!("probe-2"), serde_json::json!(200)),
            ]
        );
        let outside = lines
            .iter()
            .find(|l| l["message"] == "between requests")
            .unwrap();
        assert!(outside.get("correlation_id").is_none(), "{outside}");
    }

    #[tokio::test]
    async fn the_access_line_names_the_route_never_the_identifiers_in_the_path() {
        let output = Captured::default();
        let writer = output.clone();
        let _installed =
            tracing::subscriber::set_default(subscriber(LogLevel::Info, move || writer.clone()));
        let app = http_common::finish(
            axum::Router::new().route(
                "/api/core/v1/users/{external_user_id}",
                axum::routing::get(|| async { "ok" }),
            ),
            &http_common::HttpLimits::default(),
        );
        for path in [
            "/api/core/v1/users/customer-4711",
            "/api/core/v1/users/customer-4711/nothing-here",
        ] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }

        let lines = output.lines();
        assert!(
            !serde_json::to_string(&lines)
                .unwrap()
                .contains("customer-4711"),
            "{lines:?}"
        );
        let served: Vec<_> = lines
            .iter()
            .filter(|l| l["message"] == "request served")
            .map(|l| (l["path"].clone(), l["status"].clone()))
            .collect();
        assert_eq!(
            served,
            [
                (
                    serde_json::json!("/api/core/v1/users/{external_user_id}"),
                    serde_json::json!(200)
                ),
                (serde_json::json!("/api/…"), serde_json::json!(404)),
            ]
        );
    }

    #[test]
    fn the_product_logs_at_its_level_and_quiet_dependencies_at_most_warnings() {
        let info = filter(LogLevel::Info, false);
        assert!(info.would_enable("server::app", &Level::INFO));
        assert!(!info.would_enable("server::app", &Level::DEBUG));
        assert!(info.would_enable("sqlx::query", &Level::WARN));
        assert!(!info.would_enable("sqlx::query", &Level::INFO));

        let debug = filter(LogLevel::Debug, false);
        assert!(debug.would_enable("domain::service", &Level::DEBUG));
        assert!(!debug.would_enable("hyper::proto", &Level::DEBUG));
        assert!(!debug.would_enable("rustls::conn", &Level::INFO));
    }

    #[test]
    fn at_error_the_quiet_dependencies_keep_their_warnings_to_themselves() {
        let error = filter(LogLevel::Error, false);
        assert!(!error.would_enable("server::app", &Level::WARN));
        for dependency in QUIET_DEPENDENCIES {
            assert!(
                !error.would_enable(dependency, &Level::WARN),
                "{dependency}"
            );
            assert!(
                error.would_enable(dependency, &Level::ERROR),
                "{dependency}"
            );
        }
    }

    #[test]
    fn the_products_spans_pass_only_while_traces_are_exported() {
        for level in [LogLevel::Debug, LogLevel::Info, LogLevel::Error] {
            assert!(!filter(level, false).would_enable(SPAN_TARGET, &Level::INFO));
            assert!(filter(level, true).would_enable(SPAN_TARGET, &Level::INFO));
        }
    }
}
