//! `biometric-passkey dev`: the whole product in one process for evaluation.
//!
//! Both runtimes on loopback, the embedded SQLite database, the synthetic IDV
//! provider, and a data-encryption key generated on first start and kept in the
//! data folder (mode 0600). Nothing here can be reached from another machine,
//! and every start says plainly that this is not a production setup.
//!
//! Neither runtime asks for credentials here, so both answer only requests
//! addressed to a loopback name ([`loopback_host_only`]): a web page that
//! points a DNS name of its own at 127.0.0.1 (DNS rebinding) is refused.
//!
//! The management runtime also serves the development sign-in
//! ([`crate::dev_issuer`]): the OIDC issuer the dev configuration names, so
//! that the dashboard can be used without an identity provider.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::sealing::{DataKey, KeyId};
use domain::service::FlowPolicy;
use http_common::{ApiError, HttpLimits};
use management::{ManagementAuth, ManagementUi};
use proto::ErrorCode;
use store_sqlite::SqliteSettings;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::app::{self, Application, Shutdown};
use crate::config::{
    AuditConfig, CommonConfig, CoreApiAuth, CoreConfig, DatabaseConfig, IdvConfig, IdvMode,
    LogLevel, ManagementConfig, OnfidoConfig, PossessionConfig, regional_base_url,
};
use crate::dev_issuer::DevIssuer;
use crate::metrics::Metrics;

/// Where `dev` keeps its state, and on which loopback ports it serves.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub core_port: u16,
    pub management_port: u16,
    /// Where both runtimes' metrics are served (`--metrics-port`); 0: nowhere.
    pub metrics_port: u16,
    pub log_level: LogLevel,
    /// Who verifies WebAuthn (`--possession`).
    pub possession: PossessionConfig,
    /// `BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE`: the authenticator metadata
    /// the dashboard names passkeys from, as for the management runtime.
    pub metadata_file: Option<PathBuf>,
}

/// `--possession builtin --rp-id … --origin …`: the built-in relying party for
/// dev, user verification required, no attestation.
pub fn possession(mode: &str, rp_id: &str, origins: &[String]) -> anyhow::Result<PossessionConfig> {
    if mode != "builtin" {
        return Ok(PossessionConfig::External);
    }
    if origins.is_empty() {
        anyhow::bail!(
            "--possession builtin needs at least one --origin (the page or app origin passkeys are used from)"
        );
    }
    let origins = origins
        .iter()
        .map(|o| url::Url::parse(o).with_context(|| format!("--origin {o}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = relying_party::Settings {
        rp_id: rp_id.to_owned(),
        rp_name: "biometric-passkey dev".to_owned(),
        origins,
        user_verification: true,
        attestation: relying_party::Attestation::None,
        timeout: Duration::from_secs(120),
    };
    relying_party::WebauthnRp::new(&settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(PossessionConfig::Builtin(settings))
}

const KEY_FILE: &str = "data-encryption-key";
const DATABASE_FILE: &str = "biometric-passkey.sqlite3";

/// The dev configuration of both runtimes.
pub fn configs(options: &DevOptions, data_key: DataKey) -> (CoreConfig, ManagementConfig) {
    let database =
        DatabaseConfig::Sqlite(SqliteSettings::new(options.data_dir.join(DATABASE_FILE)));
    let common = |port| CommonConfig {
        port,
        metrics_port: (options.metrics_port != 0).then_some(options.metrics_port),
        log_level: options.log_level,
        database: database.clone(),
        version_detail: false,
        http: HttpLimits::default(),
        traces: crate::traces::TracesConfig::default(),
        // One process on loopback, behind no load balancer.
        shutdown_drain: std::time::Duration::ZERO,
    };
    let core = CoreConfig {
        common: common(options.core_port),
        data_key,
        idv: IdvConfig {
            mode: IdvMode::Synthetic,
            registration_workflow_id: "biometric-passkey-registration".into(),
            step_up_workflow_id: "biometric-passkey-step-up".into(),
            recovery_verify_workflow_id: "biometric-passkey-recovery-verify".into(),
            onfido: OnfidoConfig {
                region: "eu".into(),
                base_url: regional_base_url("eu"),
                api_token: None,
                webhook_secret: None,
                webhook_previous_secret: None,
                webhook_max_age: Duration::from_secs(900),
            },
        },
        audit: AuditConfig {
            partition_maintenance_enabled: true,
            retention_months: 0,
        },
        policy: FlowPolicy::default(),
        // Loopback only, behind the Host check: the evaluation setup needs no keys.
        api_auth: CoreApiAuth::None,
        possession: options.possession.clone(),
        retention: domain::retention::RetentionPolicy::default(),
        long_poll_max_waiters: core_api::watch::DEFAULT_MAX_WAITERS,
        refusals: core_api::refusals::RefusalLimits::default(),
    };
    let management_origin = format!("http://127.0.0.1:{}", options.management_port);
    let management = ManagementConfig {
        common: common(options.management_port),
        auth: ManagementAuth {
            issuer: format!("{management_origin}/"),
            audience: "biometric-passkey-management-api".into(),
            jwks_url: format!("{management_origin}/.well-known/jwks.json"),
            scope_claim: "scope".into(),
            scope_prefix: String::new(),
            clock_skew: Duration::from_secs(30),
        },
        ui: ManagementUi {
            client_id: "biometric-passkey-dev".into(),
            scopes: management::runtime_config::DEFAULT_UI_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        },
        audit: AuditConfig {
            partition_maintenance_enabled: false,
            retention_months: 0,
        },
        metadata_file: options.metadata_file.clone(),
    };
    (core, management)
}

/// Reads the dev key, generating it on first start.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<DataKey> {
    let id = KeyId::parse("dev").map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = data_dir.join(KEY_FILE);
    if path.exists() {
        let encoded = Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("while reading {}", path.display()))?,
        );
        return DataKey::from_base64url(id, encoded.trim()).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; delete the file to generate a new key (stored data becomes unreadable)",
                path.display()
            )
        });
    }
    let (key, encoded) = DataKey::generate(id);
    write_private(&path, encoded.as_bytes())?;
    Ok(key)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("while creating {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("while writing {}", path.display()))
}

/// Both runtimes, bound to loopback and serving, and their metrics.
pub struct DevServers {
    pub core: Application,
    pub management: Application,
    /// Both runtimes' metrics (labelled `runtime="core"` and
    /// `runtime="management"`) on one loopback listener; none with
    /// `--metrics-port 0`.
    pub metrics: Option<Application>,
}

/// Prepares the data folder, opens the store once for both runtimes, and serves.
pub async fn start(options: &DevOptions, shutdown: &Shutdown) -> anyhow::Result<DevServers> {
    std::fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "while creating the data folder {}",
            options.data_dir.display()
        )
    })?;
    let key = load_or_create_key(&options.data_dir)?;
    let bind = |port| async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        TcpListener::bind(addr).await.with_context(|| {
            format!(
                "while binding {addr}; choose another port with \
                 --core-port/--management-port/--metrics-port"
            )
        })
    };
    // The development sign-in is the management runtime's issuer, named by its
    // address: bound first, so `--management-port 0` gets a port and an issuer.
    let management_listener = bind(options.management_port).await?;
    let management_addr = management_listener
        .local_addr()
        .context("while reading the management runtime's address")?;
    let options = &DevOptions {
        management_port: management_addr.port(),
        ..options.clone()
    };
    let (core, management) = configs(options, key);
    let metrics = Metrics::for_port(core.common.metrics_port)?;
    let (repo, pool) = app::open_store(&core.common.database).await?;
    metrics.watch_pool(pool);
    let repo = metrics.measure_repository(repo);

    let mut provider = app::identity_provider(&core.idv)?;
    provider.idv = metrics.measure_provider(provider.idv);
    let parts = app::CoreParts {
        repo: repo.clone(),
        clock: Arc::new(app::SystemClock),
        provider,
        key: core.data_key.clone(),
        policy: core.policy.clone(),
        // Loopback only: the evaluation setup needs no keys.
        api_keys: app::api_keys(&core),
        relying_party: app::relying_party(&core.possession)?,
        version_detail: core.common.version_detail,
        limits: core.common.http,
        long_poll_max_waiters: core.long_poll_max_waiters,
        refusals: core.refusals.clone(),
    };
    let trail = crate::audit::trail(
        repo.clone(),
        parts.clock.clone(),
        &core.data_key,
        &core.audit,
    );
    let housekeeping =
        domain::retention::Housekeeping::new(repo.clone(), parts.clock.clone(), core.retention);
    let core_app = app::core_app(parts, "dev");
    tokio::spawn(app::housekeeping_loop(housekeeping, shutdown.signalled()));
    tokio::spawn(app::reconcile_loop(
        core_app.flows.clone(),
        metrics.clone(),
        shutdown.signalled(),
    ));
    tokio::spawn(crate::audit::maintenance_loop(
        trail,
        metrics.clone(),
        shutdown.signalled(),
    ));
    let core_server = Application::serve(
        bind(options.core_port).await?,
        loopback_host_only(metrics.measure_http(core_app.router, "core")),
        &core.common.http,
        shutdown.signalled(),
    )?;
    let sign_in = DevIssuer::new(management_addr, &management, Arc::new(app::SystemClock))?;
    let management_router = loopback_host_only(metrics.measure_http(
        app::management_router(&management, repo, "dev")?.merge(sign_in.router()),
        "management",
    ));
    let management_server = Application::serve(
        management_listener,
        management_router,
        &management.common.http,
        shutdown.signalled(),
    )?;
    tracing::info!(
        dashboard = %format!("{}/", sign_in.origin()),
        "development sign-in: open the dashboard and sign in as any operator (dev only, loopback only)"
    );
    let metrics_server = match core.common.metrics_port {
        Some(port) => Some(metrics.serve(bind(port).await?, shutdown.signalled())?),
        None => None,
    };
    Ok(DevServers {
        core: core_server,
        management: management_server,
        metrics: metrics_server,
    })
}

/// Answers `421 host_not_allowed` to every request whose `Host` (or, over
/// HTTP/2, authority) is not `localhost`, `127.0.0.1` or `[::1]`, with or
/// without a port. Binding to loopback keeps other machines out; this keeps
/// out web pages the browser on this machine opens under a rebound DNS name.
pub fn loopback_host_only(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(refuse_other_hosts))
}

async fn refuse_other_hosts(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if host.is_some_and(is_loopback_host) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        ErrorCode::HostNotAllowed,
        "the dev runtimes answer only requests addressed to localhost, 127.0.0.1 or [::1]; \
         open them as http://localhost:PORT",
    )
    .into_response()
}

/// `localhost`, `127.0.0.1` or `[::1]` (any case), optionally with `:port`.
fn is_loopback_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, after)) => (&host[..inner.len() + 2], after),
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        },
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
        });
    port_ok
        && ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|allowed| name.eq_ignore_ascii_case(allowed))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_are_allowed_hosts() {
        for host in [
            "localhost",
            "LocalHost:4000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "[::1]",
            "[::1]:3001",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "localhost:",
            "localhost:3000:1",
            "localhost:80x",
            "127.0.0.2",
            "127.0.0.1.nip.io",
            "[::2]:3000",
            "[::1",
            "[::1]x",
            "0.0.0.0:3000",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
