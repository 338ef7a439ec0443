//! Structured JSON logs on stdout, one object per line. Every line written
//! while a request is served carries its span, and so its correlation id.

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(level: LogLevel) {
    install(level, Output::Stdout);
}

/// For commands whose report is their stdout: logs go to stderr.
pub fn init_for_command(level: LogLevel) {
    install(level, Output::Stderr);
}

enum Output {
    Stdout,
    Stderr,
}

fn install(level: LogLevel, output: Output) {
    // Dependencies speak only when something is wrong: their debug output is
    // noise, and the HTTP/TLS stacks' could echo headers.
    let directives = format!(
        "{level},hyper=warn,h2=warn,rustls=warn,reqwest=warn,sqlx=warn,tower_http=warn",
        level = level.as_str()
    );
    let filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true);
    let _ = match output {
        Output::Stdout => builder.with_writer(std::io::stdout).try_init(),
        Output::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
}
