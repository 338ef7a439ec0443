//! The operator configuration contract: environment variables, their defaults
//! and their rules, as the deployment guide gives them.
//!
//! Raw environment ([`Env`]) in, typed configuration out. Each runtime reads
//! only what it needs, collects every problem, and refuses to start with one
//! line per problem naming the variable and the fix. Messages never contain a
//! secret's value.

pub mod duration;
pub mod env;
pub mod possession;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use domain::retention::{MIN_FLOW_RETENTION, RetentionPolicy};
use domain::sealing::{DataKey, KeyId};
use domain::service::FlowPolicy;
use http_common::HttpLimits;
use management::{ManagementAuth, ManagementUi};
use secrecy::{ExposeSecret, SecretString};
use store_postgres::{PgSettings, PoolerMode, SslMode};
use store_sqlite::SqliteSettings;
use url::Url;

pub use self::duration::parse_go_duration;
pub use self::env::Env;
pub use self::possession::{PossessionConfig, PossessionPolicies};

/// One refused setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Every refused setting of one runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

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
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    Postgres(PgSettings),
    Sqlite(SqliteSettings),
}

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

/// `BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdvMode {
    Onfido,
    Synthetic,
}

/// The IDV provider's settings, as the Core API needs them.
#[derive(Debug, Clone)]
pub struct IdvConfig {
    pub mode: IdvMode,
    pub registration_workflow_id: String,
    pub step_up_workflow_id: String,
    pub recovery_verify_workflow_id: String,
    pub onfido: OnfidoConfig,
}

#[derive(Debug, Clone)]
pub struct OnfidoConfig {
    pub region: String,
    /// The regional URL, or the override, without a trailing slash.
    pub base_url: Url,
    /// Present whenever the mode is `onfido`.
    pub api_token: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    /// The secret being rotated out; deliveries signed with it are accepted
    /// until it is removed.
    pub webhook_previous_secret: Option<SecretString>,
    pub webhook_max_age: Duration,
}

/// `BIOMETRIC_PASSKEY_AUDIT_PARTITION_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditConfig {
    pub partition_maintenance_enabled: bool,
    /// 0 keeps every month forever.
    pub retention_months: u32,
}

/// The Core API runtime.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub common: CommonConfig,
    pub data_key: DataKey,
    pub idv: IdvConfig,
    pub audit: AuditConfig,
    pub policy: FlowPolicy,
    /// Who may call `/api/core/v1`.
    pub api_auth: CoreApiAuth,
    /// Who verifies WebAuthn.
    pub possession: PossessionConfig,
    /// How long rows are kept past their purpose.
    pub retention: RetentionPolicy,
    /// `BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS`: long-polls waiting at once.
    pub long_poll_max_waiters: u32,
    /// `BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE`,
    /// `BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE` and
    /// `BIOMETRIC_PASSKEY_TRUSTED_PROXIES`.
    pub refusals: core_api::refusals::RefusalLimits,
}

/// `BIOMETRIC_PASSKEY_CORE_API_AUTH` with `BIOMETRIC_PASSKEY_CORE_API_KEYS`.
#[derive(Debug, Clone)]
pub enum CoreApiAuth {
    /// `api_key` (the default): every call needs one of these keys (never empty).
    ApiKeys(Vec<SecretString>),
    /// `none`: calls are not authenticated; only the network protects the API.
    None,
}

impl CoreApiAuth {
    /// The accepted keys; none when calls are not authenticated.
    pub fn keys(&self) -> &[SecretString] {
        match self {
            Self::ApiKeys(keys) => keys,
            Self::None => &[],
        }
    }
}

/// The management runtime.
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    pub common: CommonConfig,
    pub auth: ManagementAuth,
    pub ui: ManagementUi,
    pub audit: AuditConfig,
    /// `BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE`: the authenticator metadata
    /// (a FIDO Metadata Service BLOB or an AAGUID-to-name list), read and
    /// verified when the runtime is built.
    pub metadata_file: Option<std::path::PathBuf>,
}

/// The `audit` commands (maintain, verify, archive): the database, and the
/// data-encryption key the audit key is derived from.
#[derive(Debug, Clone)]
pub struct AuditToolConfig {
    pub log_level: LogLevel,
    pub database: DatabaseConfig,
    pub data_key: DataKey,
    pub audit: AuditConfig,
}

/// The migration job.
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    pub log_level: LogLevel,
    pub database: DatabaseConfig,
}

/// Reads variables and collects problems, so one run reports all of them.
struct Reader<'a> {
    env: &'a Env,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    fn new(env: &'a Env) -> Self {
        Self {
            env,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    fn optional(&self, variable: &'static str) -> Option<&'a str> {
        self.env.get(variable)
    }

    fn required(&mut self, variable: &'static str, hint: &str) -> Option<&'a str> {
        let value = self.env.get(variable);
        if value.is_none() {
            self.problem(variable, format!("is required; {hint}"));
        }
        value
    }

    /// A secret: its value is never part of any message.
    fn secret(
        &mut self,
        variable: &'static str,
        required_hint: Option<&str>,
    ) -> Option<SecretString> {
        match (self.env.get(variable), required_hint) {
            (Some(value), _) => Some(SecretString::from(value.to_owned())),
            (None, Some(hint)) => {
                self.problem(variable, format!("is required; {hint}"));
                None
            }
            (None, None) => None,
        }
    }

    fn parsed<T>(
        &mut self,
        variable: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.env.get(variable) {
            None => default,
            Some(raw) => parse(raw).unwrap_or_else(|message| {
                self.problem(variable, message);
                default
            }),
        }
    }

    fn duration(&mut self, variable: &'static str, default: Duration) -> Duration {
        self.parsed(variable, default, parse_go_duration)
    }

    fn bool(&mut self, variable: &'static str, default: bool) -> bool {
        self.parsed(variable, default, parse_bool)
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Problems> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(Problems(self.problems)),
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean; use true or false")),
    }
}

/// The Core API's refusal limits (see `core_api::refusals`).
fn read_refusal_limits(r: &mut Reader<'_>) -> core_api::refusals::RefusalLimits {
    use core_api::refusals::{DEFAULT_HANDOFF_REFUSALS, DEFAULT_WEBHOOK_REFUSALS, RefusalLimits};
    RefusalLimits {
        webhook_per_minute: r.parsed(
            "BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE",
            DEFAULT_WEBHOOK_REFUSALS,
            parse_count,
        ),
        handoff_per_minute: r.parsed(
            "BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE",
            DEFAULT_HANDOFF_REFUSALS,
            parse_count,
        ),
        trusted_proxies: r.parsed(
            "BIOMETRIC_PASSKEY_TRUSTED_PROXIES",
            Vec::new(),
            parse_networks,
        ),
    }
}

/// Addresses and networks (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`), separated
/// by commas or spaces; a single address is a network of its own.
fn parse_networks(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split([',', ' ', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{item:?} is not an IP address or a network such as 10.0.0.0/8")
                })
        })
        .collect()
}

fn parse_count(raw: &str) -> Result<u32, String> {
    raw.parse::<u32>()
        .map_err(|_| format!("{raw:?} is not a whole number of zero or more"))
}

impl LogLevel {
    fn read(r: &mut Reader<'_>) -> Self {
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

/// A pool size to suggest when `DB_MAX_OPEN_CONNS=0` ("no limit" in the
/// reference runtime) is refused: sqlx's pool needs a bound.
pub const UNLIMITED_POOL_SIZE: u32 = 100;

impl DatabaseConfig {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        let store = r.optional("BIOMETRIC_PASSKEY_STORE").unwrap_or("postgres");
        match store {
            "postgres" => read_postgres(r).map(Self::Postgres),
            "sqlite" => {
                let path = r
                    .optional("BIOMETRIC_PASSKEY_SQLITE_PATH")
                    .unwrap_or("biometric-passkey.sqlite3");
                Some(Self::Sqlite(SqliteSettings::new(PathBuf::from(path))))
            }
            other => {
                r.problem(
                    "BIOMETRIC_PASSKEY_STORE",
                    format!(
                        "unknown store {other:?}; use postgres (production) or sqlite (single node)"
                    ),
                );
                None
            }
        }
    }
}

fn read_postgres(r: &mut Reader<'_>) -> Option<PgSettings> {
    let host_raw = r.required(
        "DB_HOST",
        "set it to the PostgreSQL host name, optionally with :port",
    );
    let user = r.required("DB_USER", "set it to the PostgreSQL user");
    let database = r.required("DB_NAME", "set it to the PostgreSQL database name");
    let password = r.secret("DB_PASSWORD", None);
    let (host, host_port) = host_raw.map(split_host_port).unwrap_or_default();
    let host_port = match host_port {
        Some(Ok(port)) => Some(port),
        Some(Err(())) => {
            r.problem(
                "DB_HOST",
                "the port after ':' is not a number from 1 to 65535; fix it or set DB_PORT",
            );
            None
        }
        None => None,
    };
    let port = r.parsed("DB_PORT", host_port.unwrap_or(5432), parse_port);
    let ssl_mode = r.parsed("DB_SSLMODE", SslMode::Disable, |raw| {
        raw.parse()
            .map_err(|()| format!("unknown mode {raw:?}; use one of {}", SslMode::NAMES))
    });
    let max_open = r.parsed("DB_MAX_OPEN_CONNS", 4, |raw| match parse_count(raw)? {
        0 => Err(format!(
            "0 (no limit) is not supported: the pool needs a bound; set the most connections \
             one replica may open, e.g. {UNLIMITED_POOL_SIZE} or PostgreSQL's max_connections \
             divided among the replicas"
        )),
        n => Ok(n),
    });
    let max_idle = r.parsed("DB_MAX_IDLE_CONNS", 4, parse_count);
    if max_open > 0 && max_idle > max_open {
        r.problem(
            "DB_MAX_IDLE_CONNS",
            format!("is {max_idle}, more than DB_MAX_OPEN_CONNS ({max_open}); lower it to at most {max_open}"),
        );
    }
    let lifetime = r.duration(
        "DB_CONN_MAX_LIFETIME",
        PgSettings::DEFAULT_CONN_MAX_LIFETIME,
    );
    let idle_time = r.duration(
        "DB_CONN_MAX_IDLE_TIME",
        PgSettings::DEFAULT_CONN_MAX_IDLE_TIME,
    );
    let pooler_mode = r.parsed("DB_POOLER_MODE", PoolerMode::Session, |raw| {
        raw.parse().map_err(|()| {
            format!(
                "unknown mode {raw:?}; use session (PostgreSQL itself, or a pooler in session \
                 mode) or transaction (a pooler in transaction mode, such as PgBouncer's \
                 pool_mode = transaction)"
            )
        })
    });
    host_raw?;
    Some(PgSettings {
        host: host.to_owned(),
        port,
        user: user?.to_owned(),
        password,
        database: database?.to_owned(),
        ssl_mode,
        max_open_conns: max_open,
        max_idle_conns: max_idle,
        conn_max_lifetime: lifetime,
        conn_max_idle_time: idle_time,
        pooler_mode,
    })
}

/// `db.example.com:5433` → host and port; `[::1]:5433` → `::1` and port; a bare
/// IPv6 address or a host without a port is returned whole.
fn split_host_port(raw: &str) -> (&str, Option<Result<u16, ()>>) {
    if let Some(rest) = raw.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (
            host,
            after.strip_prefix(':').map(|p| parse_port(p).map_err(drop)),
        );
    }
    match raw.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(parse_port(port).map_err(drop))),
        _ => (raw, None),
    }
}

fn parse_port(raw: &str) -> Result<u16, String> {
    raw.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{raw:?} is not a port number from 1 to 65535"))
}

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
    fn read(r: &mut Reader<'_>) -> Option<Self> {
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

/// The OpenTelemetry variables the trace export reads (as the specification
/// defines them), checked here so that a typo refuses to start rather than
/// silently exporting nothing. Traces are off unless an OTLP endpoint is set
/// (or `OTEL_TRACES_EXPORTER=otlp` asks for the default one).
fn read_traces(r: &mut Reader<'_>) -> crate::traces::TracesConfig {
    let disabled = r.bool("OTEL_SDK_DISABLED", false);
    let exporter = r.parsed("OTEL_TRACES_EXPORTER", None, |raw| match raw {
        "otlp" => Ok(Some(true)),
        "none" => Ok(Some(false)),
        other => Err(format!(
            "{other:?} is not supported; use otlp (OTLP over HTTP) or none"
        )),
    });
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
    crate::traces::TracesConfig {
        enabled: !disabled && exporter.unwrap_or(endpoint),
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

/// `http://` is accepted only for loopback hosts (local development).
fn require_https(r: &mut Reader<'_>, variable: &'static str, raw: &str) -> Option<Url> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            r.problem(variable, format!("is not a URL ({e}); expected https://…"));
            return None;
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Some(url),
        "http" if loopback => Some(url),
        _ => {
            r.problem(
                variable,
                "must use https:// (plain http:// is accepted only for loopback hosts in local development)",
            );
            None
        }
    }
}

const PREVIOUS_WEBHOOK_SECRET: &str = "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_PREVIOUS_SECRET";

/// A required workflow id; in `onfido` mode a UUID, as the provider's
/// workflow ids are (anything else makes every run creation fail with 422).
fn workflow_id<'a>(
    r: &mut Reader<'a>,
    mode: Option<IdvMode>,
    variable: &'static str,
    hint: &str,
) -> Option<&'a str> {
    let value = r.required(variable, hint)?;
    if mode == Some(IdvMode::Onfido) && !is_hyphenated_uuid(value) {
        r.problem(
            variable,
            format!(
                "must be the workflow's UUID as the provider's dashboard shows it \
                 (8-4-4-4-12 hex digits, e.g. 0c6b0e4a-1111-4b5b-9a1e-000000000001), got {value:?}"
            ),
        );
        return None;
    }
    Some(value)
}

/// `8-4-4-4-12` hex digits: how the provider writes a workflow's id.
fn is_hyphenated_uuid(value: &str) -> bool {
    value.len() == 36
        && value.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The provider's API for a region: `https://api.{region}.onfido.com/v3.6`.
pub fn regional_base_url(region: &str) -> Url {
    #[allow(clippy::expect_used)]
    // Regions are validated to [a-z]{2}; the URL is always well-formed.
    Url::parse(&format!("https://api.{region}.onfido.com/v3.6"))
        .expect("a well-formed regional URL")
}

impl IdvConfig {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        let mode = r.parsed(
            "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE",
            Some(IdvMode::Onfido),
            |raw| match raw {
                "onfido" => Ok(Some(IdvMode::Onfido)),
                "synthetic" => Ok(Some(IdvMode::Synthetic)),
                other => Err(format!(
                    "unknown mode {other:?}; use onfido (production) or synthetic (non-production)"
                )),
            },
        );
        let hint = "set it to the IDV workflow id configured for this deployment";
        let registration = workflow_id(
            r,
            mode,
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            hint,
        );
        let step_up = workflow_id(r, mode, "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID", hint);
        let recovery = workflow_id(
            r,
            mode,
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            hint,
        );
        let region = r
            .parsed(
                "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION",
                Some("eu"),
                |raw| match raw {
                    "eu" => Ok(Some("eu")),
                    "us" => Ok(Some("us")),
                    "ca" => Ok(Some("ca")),
                    other => Err(format!("unknown region {other:?}; use eu, us or ca")),
                },
            )
            .unwrap_or("eu");
        let base_url = match r.optional("BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL") {
            Some(raw) => require_https(
                r,
                "BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL",
                raw.trim_end_matches('/'),
            )
            .and_then(|url| match idv::check_onfido_base_url(&url) {
                Ok(()) => Some(url),
                Err(problem) => {
                    r.problem("BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL", problem);
                    None
                }
            }),
            None => Some(regional_base_url(region)),
        };
        let onfido_hint = "it is required when BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE=onfido (the default); \
                           load it from your secret manager, or use synthetic mode outside production";
        let (api_token, webhook_secret) = if mode == Some(IdvMode::Onfido) {
            (
                r.secret("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", Some(onfido_hint)),
                r.secret(
                    "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
                    Some(onfido_hint),
                ),
            )
        } else {
            (
                r.secret("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", None),
                r.secret("BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET", None),
            )
        };
        let webhook_previous_secret = r.secret(PREVIOUS_WEBHOOK_SECRET, None);
        if let (Some(previous), Some(current)) = (&webhook_previous_secret, &webhook_secret)
            && mode == Some(IdvMode::Onfido)
            && previous.expose_secret() == current.expose_secret()
        {
            r.problem(
                PREVIOUS_WEBHOOK_SECRET,
                "equals BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET; during a rotation it holds \
                 the secret being replaced, otherwise leave it unset",
            );
        }
        let webhook_max_age = r.duration(
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE",
            Duration::from_secs(900),
        );
        if webhook_max_age.is_zero() {
            r.problem(
                "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE",
                "must be greater than zero; use a tight window such as 15m",
            );
        }
        Some(Self {
            mode: mode?,
            registration_workflow_id: registration?.to_owned(),
            step_up_workflow_id: step_up?.to_owned(),
            recovery_verify_workflow_id: recovery?.to_owned(),
            onfido: OnfidoConfig {
                region: region.to_owned(),
                base_url: base_url?,
                api_token,
                webhook_secret,
                webhook_previous_secret,
                webhook_max_age,
            },
        })
    }
}

fn read_data_key(r: &mut Reader<'_>) -> Option<DataKey> {
    let key_id = r.parsed(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID",
        KeyId::parse("default").ok(),
        |raw| {
            KeyId::parse(raw).map(Some).map_err(|e| {
                format!("{e}; use 64 characters or fewer from A-Z, a-z, 0-9, '.', '_', ':' or '-'")
            })
        },
    );
    let encoded = r.secret(
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        Some("set it to 32 random bytes encoded as unpadded base64url (`biometric-passkey keys generate` prints one with its id)"),
    )?;
    let earlier = read_earlier_keys(r);
    let key = match DataKey::from_base64url(
        key_id.clone()?,
        secrecy::ExposeSecret::expose_secret(&encoded),
    ) {
        Ok(key) => key,
        Err(e) => {
            r.problem(
                "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
                format!("{e}; it must be unpadded base64url of exactly 32 random bytes"),
            );
            return None;
        }
    };
    match key.with_earlier(&earlier?) {
        Ok(key) => Some(key),
        Err(e) => {
            r.problem(
                EARLIER_KEYS,
                format!("{e}; every key, current or earlier, needs an id of its own"),
            );
            None
        }
    }
}

const EARLIER_KEYS: &str = "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS";

/// Earlier data-encryption keys, which open what they sealed and never seal:
/// `id:key` pairs separated by commas. `None` when any is refused.
fn read_earlier_keys(r: &mut Reader<'_>) -> Option<Vec<DataKey>> {
    let Some(raw) = r.secret(EARLIER_KEYS, None) else {
        return Some(Vec::new());
    };
    let raw = secrecy::ExposeSecret::expose_secret(&raw);
    let mut keys = Vec::new();
    let mut refused = false;
    for (n, entry) in raw
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
    {
        let parsed = entry
            .split_once(':')
            .ok_or_else(|| "is not `id:key`".to_owned())
            .and_then(|(id, key)| {
                let id = KeyId::parse(id).map_err(|e| format!("its id: {e}"))?;
                DataKey::from_base64url(id, key).map_err(|e| {
                    format!("its key: {e}; it must be unpadded base64url of exactly 32 bytes")
                })
            });
        match parsed {
            Ok(key) => keys.push(key),
            Err(reason) => {
                // Which entry, never its value.
                r.problem(EARLIER_KEYS, format!("entry #{} {reason}", n + 1));
                refused = true;
            }
        }
    }
    (!refused).then_some(keys)
}

impl AuditConfig {
    fn read(r: &mut Reader<'_>, maintenance_default: bool) -> Self {
        Self {
            partition_maintenance_enabled: r.bool(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
                maintenance_default,
            ),
            retention_months: r.parsed(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS",
                0,
                parse_count,
            ),
        }
    }
}

/// The largest transaction context an operator may allow.
pub const MAX_TRANSACTION_CONTEXT_LIMIT: u32 = 64 * 1024;

fn read_policy(r: &mut Reader<'_>) -> FlowPolicy {
    let defaults = FlowPolicy::default();
    let std_duration = |d: time::Duration| Duration::from_secs(d.whole_seconds().unsigned_abs());
    let positive = |r: &mut Reader<'_>, variable: &'static str, default: Duration| {
        let value = r.duration(variable, default);
        if value < Duration::from_secs(1) {
            r.problem(variable, "must be at least 1s");
        }
        time::Duration::try_from(value).unwrap_or(time::Duration::MAX)
    };
    let flow_ttl = positive(
        r,
        "BIOMETRIC_PASSKEY_FLOW_TTL",
        std_duration(defaults.flow_ttl),
    );
    let handoff_ttl = positive(
        r,
        "BIOMETRIC_PASSKEY_HANDOFF_TTL",
        std_duration(defaults.handoff_ttl),
    );
    let at_least_one = |r: &mut Reader<'_>, variable: &'static str, default: u32| {
        let value = r.parsed(variable, default, parse_count);
        if value == 0 {
            r.problem(variable, "must be at least 1");
        }
        value
    };
    let max_open = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_FLOW_MAX_OPEN_PER_USER",
        defaults.max_open_flows_per_user,
    );
    let max_runs = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_IDV_MAX_RUNS_PER_USER_PER_DAY",
        defaults.max_idv_runs_per_user_per_day,
    );
    let context = r.parsed(
        "BIOMETRIC_PASSKEY_TRANSACTION_CONTEXT_MAX_BYTES",
        u32::try_from(defaults.max_transaction_context_bytes).unwrap_or(4096),
        parse_count,
    );
    if context == 0 || context > MAX_TRANSACTION_CONTEXT_LIMIT {
        r.problem(
            "BIOMETRIC_PASSKEY_TRANSACTION_CONTEXT_MAX_BYTES",
            format!("must be from 1 to {MAX_TRANSACTION_CONTEXT_LIMIT}"),
        );
    }
    let reconcile_after = positive(
        r,
        "BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER",
        std_duration(defaults.reconcile_after),
    );
    let revoke = r.bool(
        "BIOMETRIC_PASSKEY_RECOVERY_REVOKES_EXISTING_CREDENTIALS",
        defaults.recovery_revokes_existing,
    );
    let possession = PossessionPolicies::read(r, &defaults);
    let cleanup_attempts = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS",
        defaults.provider_cleanup_max_attempts,
    );
    FlowPolicy {
        flow_ttl,
        handoff_ttl,
        max_open_flows_per_user: max_open,
        max_idv_runs_per_user_per_day: max_runs,
        max_transaction_context_bytes: context as usize,
        recovery_revokes_existing: revoke,
        reconcile_after,
        counter_policy: possession.counter,
        backup_policy: possession.backup,
        ceremony_ttl: time::Duration::try_from(possession.challenge_ttl)
            .unwrap_or(time::Duration::MAX),
        provider_cleanup_max_attempts: cleanup_attempts,
    }
}

/// The shortest webhook de-duplication retention accepted.
const MIN_PROVIDER_EVENT_RETENTION: Duration = Duration::from_secs(3600);

fn read_retention(r: &mut Reader<'_>) -> RetentionPolicy {
    let defaults = RetentionPolicy::default();
    let std_duration = |d: time::Duration| Duration::from_secs(d.whole_seconds().unsigned_abs());
    let at_least = |r: &mut Reader<'_>, variable: &'static str, default, min: Duration, shown| {
        let value = r.duration(variable, default);
        if value < min {
            r.problem(variable, format!("must be at least {shown}"));
        }
        time::Duration::try_from(value).unwrap_or(time::Duration::MAX)
    };
    RetentionPolicy {
        flows_after_expiry: at_least(
            r,
            "BIOMETRIC_PASSKEY_FLOW_RETENTION",
            std_duration(defaults.flows_after_expiry),
            std_duration(MIN_FLOW_RETENTION),
            "24h (the IDV run limit counts the flows of the last day)",
        ),
        provider_events: at_least(
            r,
            "BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION",
            std_duration(defaults.provider_events),
            MIN_PROVIDER_EVENT_RETENTION,
            "1h",
        ),
    }
}

/// The shortest API key accepted: 32 characters (about 190 bits from base64url).
pub const MIN_API_KEY_LEN: usize = 32;

const API_KEYS: &str = "BIOMETRIC_PASSKEY_CORE_API_KEYS";
const API_AUTH: &str = "BIOMETRIC_PASSKEY_CORE_API_AUTH";
const GENERATE_KEY: &str = "`biometric-passkey keys api-key`";

/// The Core API fails closed: without keys it starts only when the operator
/// says, with `BIOMETRIC_PASSKEY_CORE_API_AUTH=none`, that the network alone
/// protects it. Keys together with `none` are refused as contradictory.
fn read_api_auth(r: &mut Reader<'_>) -> Option<CoreApiAuth> {
    let keys = read_api_keys(r);
    let require_key = match r.optional(API_AUTH) {
        None | Some("api_key") => true,
        Some("none") => false,
        Some(other) => {
            r.problem(
                API_AUTH,
                format!(
                    "unknown mode {other:?}; use api_key (the default: calls need a key from \
                     {API_KEYS}) or none (only the network protects the Core API)"
                ),
            );
            return None;
        }
    };
    match (require_key, keys) {
        (true, Some(keys)) if !keys.is_empty() => Some(CoreApiAuth::ApiKeys(keys)),
        (true, Some(_)) => None,
        (true, None) => {
            r.problem(
                API_KEYS,
                format!(
                    "is required: the Core API accepts only calls with an API key; set it to one or \
                     more keys (generate each with {GENERATE_KEY}), or set {API_AUTH}=none if only \
                     the network can reach the Core API"
                ),
            );
            None
        }
        (false, None) => Some(CoreApiAuth::None),
        (false, Some(_)) => {
            r.problem(
                API_AUTH,
                format!(
                    "is none, yet {API_KEYS} is set; unset {API_KEYS} to take calls without a key, \
                     or unset {API_AUTH} to require one of the keys"
                ),
            );
            None
        }
    }
}

/// The keys when the variable is set (an empty list is a problem).
fn read_api_keys(r: &mut Reader<'_>) -> Option<Vec<SecretString>> {
    let raw = r.optional(API_KEYS)?;
    let keys: Vec<&str> = raw
        .split([',', ' ', '\n', '\t'])
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        r.problem(
            API_KEYS,
            format!(
                "holds no key, only separators; set it to one or more keys separated by commas \
                 or spaces (generate each with {GENERATE_KEY})"
            ),
        );
    }
    for (i, key) in keys.iter().enumerate() {
        if key.len() < MIN_API_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            r.problem(
                API_KEYS,
                format!(
                    "key #{} is not at least {MIN_API_KEY_LEN} visible ASCII characters; generate keys with \
                     {GENERATE_KEY}",
                    i + 1
                ),
            );
        }
    }
    Some(
        keys.into_iter()
            .map(|k| SecretString::from(k.to_owned()))
            .collect(),
    )
}

impl CoreConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r);
        let data_key = read_data_key(&mut r);
        let idv = IdvConfig::read(&mut r);
        let audit = AuditConfig::read(&mut r, true);
        let policy = read_policy(&mut r);
        let api_auth = read_api_auth(&mut r);
        let possession = PossessionConfig::read(&mut r);
        let retention = read_retention(&mut r);
        let long_poll_max_waiters = r.parsed(
            "BIOMETRIC_PASSKEY_LONG_POLL_MAX_WAITERS",
            core_api::watch::DEFAULT_MAX_WAITERS,
            parse_count,
        );
        let refusals = read_refusal_limits(&mut r);
        let config = match (common, data_key, idv, api_auth, possession) {
            (Some(common), Some(data_key), Some(idv), Some(api_auth), Some(possession)) => {
                Some(Self {
                    common,
                    data_key,
                    idv,
                    audit,
                    policy,
                    api_auth,
                    possession,
                    retention,
                    long_poll_max_waiters,
                    refusals,
                })
            }
            _ => None,
        };
        r.finish(config)
    }
}

impl ManagementConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let common = CommonConfig::read(&mut r);
        let issuer = r.required(
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "set it to your OIDC provider's issuer URL (https://…)",
        );
        let issuer = issuer.and_then(|raw| {
            require_https(&mut r, "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER", raw).map(|_| raw)
        });
        let audience = r.required(
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE",
            "set it to the audience your OIDC provider puts in Management API tokens",
        );
        let jwks = r.required(
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "set it to your OIDC provider's JWKS URL (https://…)",
        );
        let jwks = jwks.and_then(|raw| {
            require_https(&mut r, "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL", raw).map(|_| raw)
        });
        let scope_claim = r
            .optional("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_CLAIM")
            .unwrap_or("scope");
        let scope_prefix = r
            .optional("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_SCOPE_PREFIX")
            .unwrap_or("");
        let clock_skew = r.duration(
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW",
            Duration::from_secs(30),
        );
        let client_id = r.required(
            "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID",
            "set it to the public OIDC client id registered for the dashboard",
        );
        let scopes: Vec<String> = match r.env.get_raw("BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES") {
            Some(raw) => raw.split_whitespace().map(str::to_owned).collect(),
            None => management::runtime_config::DEFAULT_UI_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        if scopes.is_empty() {
            // Set but empty: never widened to the defaults.
            r.problem(
                "BIOMETRIC_PASSKEY_MANAGEMENT_UI_SCOPES",
                "is set but lists no scope; unset it for the default list, or list the scopes \
                 the dashboard asks for (space-separated, `openid` among them)",
            );
        }
        let audit = AuditConfig::read(&mut r, false);
        if audit.partition_maintenance_enabled {
            r.problem(
                "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
                "must be false for the management runtime: partition maintenance runs in the Core API only; unset it or set it to false",
            );
        }
        let metadata_file = r.optional(METADATA_FILE).map(std::path::PathBuf::from);
        if let Some(path) = &metadata_file
            && let Err(e) = std::fs::File::open(path)
        {
            r.problem(
                METADATA_FILE,
                format!("cannot read {}: {e}", path.display()),
            );
        }
        let config = (|| {
            Some(Self {
                common: common?,
                auth: ManagementAuth {
                    issuer: issuer?.to_owned(),
                    audience: audience?.to_owned(),
                    jwks_url: jwks?.to_owned(),
                    scope_claim: scope_claim.to_owned(),
                    scope_prefix: scope_prefix.to_owned(),
                    clock_skew,
                },
                ui: ManagementUi {
                    client_id: client_id?.to_owned(),
                    scopes,
                },
                audit,
                metadata_file,
            })
        })();
        r.finish(config)
    }
}

/// The authenticator metadata file the management runtime names passkeys from.
pub const METADATA_FILE: &str = "BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE";

impl AuditToolConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let log_level = LogLevel::read(&mut r);
        let database = DatabaseConfig::read(&mut r);
        let data_key = read_data_key(&mut r);
        let audit = AuditConfig::read(&mut r, true);
        let config = match (database, data_key) {
            (Some(database), Some(data_key)) => Some(Self {
                log_level,
                database,
                data_key,
                audit,
            }),
            _ => None,
        };
        r.finish(config)
    }
}

impl MigrateConfig {
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut r = Reader::new(env);
        let log_level = LogLevel::read(&mut r);
        let database = DatabaseConfig::read(&mut r);
        if let Some(DatabaseConfig::Postgres(settings)) = &database
            && settings.pooler_mode == PoolerMode::Transaction
        {
            r.problem(
                "DB_POOLER_MODE",
                "is transaction, but migrations need a session of their own (they hold a lock \
                 across statements and transactions); point this job's DB_HOST at PostgreSQL \
                 itself or at a pooler's session-mode port, and leave DB_POOLER_MODE unset",
            );
        }
        let config = database.map(|database| Self {
            log_level,
            database,
        });
        r.finish(config)
    }
}

#[cfg(test)]
mod tests;
