//! What a runtime tells about itself: `BIOMETRIC_PASSKEY_LOG_LEVEL`, and the
//! OpenTelemetry variables of the trace export.

use url::Url;

use super::Reader;

/// `BIOMETRIC_PASSKEY_LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    pub fn as_tracing(self) -> tracing::Level {
        match self {
            Self::Debug => tracing::Level::DEBUG,
            Self::Info => tracing::Level::INFO,
            Self::Warn => tracing::Level::WARN,
            Self::Error => tracing::Level::ERROR,
        }
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        r.parsed("BIOMETRIC_PASSKEY_LOG_LEVEL", Self::Info, |raw| match raw {
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown level {other:?}; use debug, info, warn or error"
            )),
        })
    }
}

/// The OpenTelemetry variables the trace export reads (as the specification
/// defines them), checked here so that a typo refuses to start rather than
/// silently exporting nothing. Traces are off unless an OTLP endpoint is set
/// (or `OTEL_TRACES_EXPORTER=otlp` asks for the default one).
pub(super) fn read_traces(r: &mut Reader<'_>) -> crate::traces::TracesConfig {
    let disabled = r.bool("OTEL_SDK_DISABLED", false);
    let exporter = r.parsed("OTEL_TRACES_EXPORTER", None, |raw| match raw {
        "otlp" => Ok(Some(true)),
        "none" => Ok(Some(false)),
        other => Err(format!(
            "{other:?} is not supported; use otlp (OTLP over HTTP) or none"
        )),
    });
    let endpoint = read_otlp_endpoint(r);
    read_sampler(r);
    crate::traces::TracesConfig {
        enabled: !disabled && exporter.unwrap_or(endpoint),
    }
}

/// Whether an OTLP/HTTP endpoint is set (each one a URL), and its protocol
/// the one exported.
fn read_otlp_endpoint(r: &mut Reader<'_>) -> bool {
    let mut endpoint = false;
    for variable in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ] {
        if let Some(raw) = r.optional(variable) {
            match Url::parse(raw) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                    endpoint = true;
                }
                _ => r.problem(
                    variable,
                    "is not an http:// or https:// URL (the collector's OTLP/HTTP address, \
                     such as http://otel-collector:4318)",
                ),
            }
        }
    }
    for variable in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        if let Some(raw) = r.optional(variable)
            && raw != "http/protobuf"
        {
            r.problem(
                variable,
                format!("{raw:?} is not supported; traces are exported as http/protobuf"),
            );
        }
    }
    endpoint
}

/// `OTEL_TRACES_SAMPLER` and, for a ratio sampler, its argument.
fn read_sampler(r: &mut Reader<'_>) {
    let sampler = r.parsed("OTEL_TRACES_SAMPLER", "parentbased_always_on", |raw| {
        const SAMPLERS: [&str; 6] = [
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ];
        SAMPLERS.into_iter().find(|s| *s == raw).ok_or_else(|| {
            format!(
                "{raw:?} is not a sampler; use one of {}",
                SAMPLERS.join(", ")
            )
        })
    });
    if sampler.ends_with("traceidratio") {
        r.parsed("OTEL_TRACES_SAMPLER_ARG", 1.0, |raw| {
            match raw.parse::<f64>() {
                Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
                _ => Err(format!("{raw:?} is not a ratio from 0 to 1")),
            }
        });
    }
}
