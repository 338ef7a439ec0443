//! What every long-lived runtime reads: its ports, HTTP limits and shutdown
//! drain, its log level and traces, and its database.

use std::time::Duration;

use http_common::HttpLimits;

use super::reader::{parse_count, parse_port};
use super::telemetry::read_traces;
use super::{DatabaseConfig, LogLevel, Reader};

/// What every long-lived runtime needs.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub port: u16,
    /// `BIOMETRIC_PASSKEY_METRICS_PORT`: where Prometheus metrics are served,
    /// apart from the API; `None` when the operator turned them off (`0`).
    pub metrics_port: Option<u16>,
    pub log_level: LogLevel,
    pub database: DatabaseConfig,
    /// `BIOMETRIC_PASSKEY_VERSION_DETAIL`: `/api/version` shows the commit
    /// and build time (the long-lived runtimes).
    pub version_detail: bool,
    /// `BIOMETRIC_PASSKEY_HTTP_*`.
    pub http: HttpLimits,
    /// The standard `OTEL_*` variables, checked.
    pub traces: crate::traces::TracesConfig,
    /// `BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN`: how long the runtime serves on,
    /// not ready, after SIGTERM before its listener closes.
    pub shutdown_drain: Duration,
}

/// `BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN`'s default: a few of the readiness
/// probe's periods, so that every load balancer has seen it.
pub const DEFAULT_SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

const METRICS_PORT: &str = "BIOMETRIC_PASSKEY_METRICS_PORT";

/// A port from 1 to 65535, or `0`: no metrics listener.
fn parse_metrics_port(raw: &str) -> Result<Option<u16>, String> {
    match raw.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(port) => Ok(Some(port)),
        Err(_) => Err(format!(
            "{raw:?} is not a port number; use 1 to 65535 (default {}), or 0 to serve no metrics",
            crate::metrics::DEFAULT_PORT
        )),
    }
}

impl CommonConfig {
    pub(super) fn read(r: &mut Reader<'_>) -> Option<Self> {
        let port = r.parsed("PORT", 3000, parse_port);
        let metrics_port = r.parsed(
            METRICS_PORT,
            Some(crate::metrics::DEFAULT_PORT),
            parse_metrics_port,
        );
        if metrics_port == Some(port) {
            r.problem(
                METRICS_PORT,
                format!(
                    "is {port}, the API's port (PORT); metrics are served on a port of their own: \
                     choose another one, or 0 to serve no metrics"
                ),
            );
        }
        let log_level = LogLevel::read(r);
        let version_detail = r.bool("BIOMETRIC_PASSKEY_VERSION_DETAIL", false);
        let http = read_http_limits(r);
        let traces = read_traces(r);
        let shutdown_drain = r.duration("BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN", DEFAULT_SHUTDOWN_DRAIN);
        let database = DatabaseConfig::read(r)?;
        Some(Self {
            port,
            metrics_port,
            log_level,
            database,
            version_detail,
            http,
            traces,
            shutdown_drain,
        })
    }
}

/// The longest a request may be given: above the longest long-poll, so that
/// a wait always ends before its request is stopped.
const MIN_REQUEST_TIMEOUT: Duration =
    Duration::from_secs(core_api::v1::flows::MAX_WAIT_SECONDS as u64 + 5);

fn read_http_limits(r: &mut Reader<'_>) -> HttpLimits {
    let defaults = HttpLimits::default();
    let header_read_timeout = r.duration(
        "BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT",
        defaults.header_read_timeout,
    );
    if header_read_timeout.is_zero() {
        r.problem(
            "BIOMETRIC_PASSKEY_HTTP_HEADER_READ_TIMEOUT",
            "must be more than 0s",
        );
    }
    let request_timeout = r.duration(
        "BIOMETRIC_PASSKEY_HTTP_REQUEST_TIMEOUT",
        defaults.request_timeout,
    );
    if request_timeout < MIN_REQUEST_TIMEOUT {
        r.problem(
            "BIOMETRIC_PASSKEY_HTTP_REQUEST_TIMEOUT",
            format!(
                "must be at least {}s: a long-poll waits up to {}s",
                MIN_REQUEST_TIMEOUT.as_secs(),
                core_api::v1::flows::MAX_WAIT_SECONDS
            ),
        );
    }
    let max_concurrent_requests = r.parsed(
        "BIOMETRIC_PASSKEY_HTTP_MAX_CONCURRENT_REQUESTS",
        defaults.max_concurrent_requests,
        |raw| match parse_count(raw)? {
            0 => Err("must be at least 1".to_owned()),
            n => Ok(n),
        },
    );
    HttpLimits {
        header_read_timeout,
        request_timeout,
        max_concurrent_requests,
    }
}
