//! Structured JSON logs on stdout, one object per line. Every line written
//! while a request is served carries its span, and so its correlation id.

use std::io::BufWriter;

use tracing::Level;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

/// Keeps the log writer running: dropping it writes out the lines still
/// queued, so a command holds it until it returns.
#[must_use = "log lines still queued are lost unless this lives until the command returns"]
pub struct Logs {
    _writer: Option<WorkerGuard>,
}

/// How much of a backlog of queued lines the log thread writes at once.
const WRITE_BATCH: usize = 64 * 1024;

/// Installs the global subscriber, writing to stdout from a thread of its own:
/// a slow log collector then delays that thread, never the request handlers
/// (which only queue their lines). When the queue is full, a handler waits
/// rather than drop a line. The thread writes whatever has queued up in one
/// system call (whole lines, up to [`WRITE_BATCH`]) and flushes as soon as the
/// queue is empty, so a line is never held back waiting for others. A second
/// call (tests) is a no-op.
pub fn init(level: LogLevel) -> Logs {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::with_capacity(WRITE_BATCH, std::io::stdout()));
    Logs {
        _writer: install(level, writer).then_some(guard),
    }
}

/// For commands whose report is their stdout: logs go to stderr, as written.
pub fn init_for_command(level: LogLevel) {
    install(level, std::io::stderr);
}

/// The dependencies that speak only when something is wrong: their debug
/// output is noise, and the HTTP/TLS stacks' could echo headers.
const QUIET_DEPENDENCIES: [&str; 6] = ["hyper", "h2", "rustls", "reqwest", "sqlx", "tower_http"];

/// What is logged: `level` and above, but only warnings and errors from
/// [`QUIET_DEPENDENCIES`].
///
/// A static per-target filter rather than `EnvFilter`: that one also tracks
/// every span it lets through (a lock taken each time a request's span is
/// entered or left, several times per request) to support span-field
/// directives, which a fixed list of targets never uses.
fn filter(level: LogLevel) -> Targets {
    QUIET_DEPENDENCIES.into_iter().fold(
        Targets::new().with_default(level.as_tracing()),
        |targets, dependency| targets.with_target(dependency, Level::WARN),
    )
}

/// Whether this call installed the subscriber.
fn install<W>(level: LogLevel, writer: W) -> bool
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter(level))
        .with(format)
        .try_init()
        .is_ok()
}
