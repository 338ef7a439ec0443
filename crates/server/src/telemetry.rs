//! Structured JSON logs on stdout, one object per line. Every line written
//! while a request is served carries its span, and so its correlation id.

mod batch;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::LogLevel;

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
    match batch::start(std::io::stdout()) {
        Ok((writer, flusher)) => Logs {
            _writer: install(level, writer).then_some(flusher),
        },
        Err(e) => {
            eprintln!("no log thread ({e}): log lines are written as they come");
            install(level, std::io::stdout);
            Logs { _writer: None }
        }
    }
}

/// For commands whose report is their stdout: logs go to stderr, as written.
pub fn init_for_command(level: LogLevel) {
    install(level, std::io::stderr);
}

/// The dependencies that speak only when something is wrong: their debug
/// output is noise, and the HTTP/TLS stacks' could echo headers.
const QUIET_DEPENDENCIES: [&str; 6] = ["hyper", "h2", "rustls", "reqwest", "sqlx", "tower_http"];

/// What is logged: `level` and above, but from [`QUIET_DEPENDENCIES`] only
/// warnings and errors (only errors at `error`).
///
/// A static per-target filter rather than `EnvFilter`: that one also tracks
/// every span it lets through (a lock taken each time a request's span is
/// entered or left, several times per request) to support span-field
/// directives, which a fixed list of targets never uses.
fn filter(level: LogLevel) -> Targets {
    let level = level.as_tracing();
    // tracing orders levels by verbosity: the smaller is the quieter.
    let dependencies = level.min(Level::WARN);
    QUIET_DEPENDENCIES
        .into_iter()
        .fold(Targets::new().with_default(level), |targets, dependency| {
            targets.with_target(dependency, dependencies)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_logs_at_its_level_and_quiet_dependencies_at_most_warnings() {
        let info = filter(LogLevel::Info);
        assert!(info.would_enable("server::app", &Level::INFO));
        assert!(!info.would_enable("server::app", &Level::DEBUG));
        assert!(info.would_enable("sqlx::query", &Level::WARN));
        assert!(!info.would_enable("sqlx::query", &Level::INFO));

        let debug = filter(LogLevel::Debug);
        assert!(debug.would_enable("domain::service", &Level::DEBUG));
        assert!(!debug.would_enable("hyper::proto", &Level::DEBUG));
        assert!(!debug.would_enable("rustls::conn", &Level::INFO));
    }

    #[test]
    fn at_error_the_quiet_dependencies_keep_their_warnings_to_themselves() {
        let error = filter(LogLevel::Error);
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
}
