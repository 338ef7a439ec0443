//! Structured JSON logs on stdout, one object per line. Every line written
//! while a request is served carries its span, and so its correlation id.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogLevel;

/// Keeps the log writer running: dropping it writes out the lines still
/// queued, so a command holds it until it returns.
#[must_use = "log lines still queued are lost unless this lives until the command returns"]
pub struct Logs {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber, writing to stdout from a thread of its own:
/// a slow log collector then delays that thread, never the request handlers
/// (which only queue their lines). When the queue is full, a handler waits
/// rather than drop a line. A second call (tests) is a no-op.
pub fn init(level: LogLevel) -> Logs {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    Logs {
        _writer: install(level, writer).then_some(guard),
    }
}

/// For commands whose report is their stdout: logs go to stderr, as written.
pub fn init_for_command(level: LogLevel) {
    install(level, std::io::stderr);
}

/// Whether this call installed the subscriber.
fn install<W>(level: LogLevel, writer: W) -> bool
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    // Dependencies speak only when something is wrong: their debug output is
    // noise, and the HTTP/TLS stacks' could echo headers.
    let directives = format!(
        "{level},hyper=warn,h2=warn,rustls=warn,reqwest=warn,sqlx=warn,tower_http=warn",
        level = level.as_str()
    );
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_writer(writer)
        .try_init()
        .is_ok()
}
