//! Wiring: configuration in, stores opened, routers built, served until a
//! shutdown signal. `Application` binds before it serves, so callers (tests,
//! `dev`) can bind port 0 and learn the real address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use core_api::auth::ApiKeys;
use core_api::{CoreState, FlowWatch};
use domain::clock::truncate_to_micros;
use domain::idv::{IdentityProvider, SyntheticControl};
use domain::sealing::DataKey;
use domain::service::{FlowPolicy, FlowService};
use domain::{Clock, Repository};
use http_common::{Draining, HttpLimits, ServiceInfo};
use management::ManagementState;
use proto::service::VersionInfo;
use secrecy::ExposeSecret;
use store_postgres::PgStore;
use store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use time::OffsetDateTime;

use crate::config::{CoreConfig, DatabaseConfig, IdvConfig, IdvMode, ManagementConfig};
use crate::metrics::PoolProbe;

mod background;

pub use background::{
    HOUSEKEEPING_EVERY, RECONCILE_BATCH, RECONCILE_EVERY, every, housekeeping_loop, reconcile_loop,
};

/// What this binary is.
pub fn version_info(runtime: &str, detail: bool) -> VersionInfo {
    VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: detail.then(|| env!("BIOMETRIC_PASSKEY_COMMIT").to_owned()),
        build_time: detail.then(|| env!("BIOMETRIC_PASSKEY_BUILD_TIME").to_owned()),
        runtime: runtime.to_owned(),
    }
}

/// Opens the configured store. PostgreSQL connects lazily (the runtime starts,
/// and answers `/api/health`, while the database is down); its schema belongs
/// to the migration job. SQLite is a local file: it is created and migrated here.
pub async fn open_repository(database: &DatabaseConfig) -> anyhow::Result<Arc<dyn Repository>> {
    Ok(open_store(database).await?.0)
}

/// As [`open_repository`], with the store's pool for the metrics to sample.
pub async fn open_store(
    database: &DatabaseConfig,
) -> anyhow::Result<(Arc<dyn Repository>, PoolProbe)> {
    match database {
        DatabaseConfig::Postgres(settings) => {
            let store = Arc::new(PgStore::connect_lazy(settings));
            Ok((store.clone(), PoolProbe::Postgres(store)))
        }
        DatabaseConfig::Sqlite(settings) => {
            let store = SqliteStore::open(settings).await.with_context(|| {
                format!(
                    "while opening the SQLite database {}",
                    settings.path.display()
                )
            })?;
            store
                .migrate()
                .await
                .context("while migrating the SQLite database")?;
            let store = Arc::new(store);
            Ok((store.clone(), PoolProbe::Sqlite(store)))
        }
    }
}

/// The clock of production: the system's, truncated to microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place the system clock is read.
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// The configured identity provider, with its control surface in synthetic
/// mode and its webhook in onfido mode.
pub struct Provider {
    pub idv: Arc<dyn IdentityProvider>,
    pub synthetic: Option<Arc<dyn SyntheticControl>>,
    pub provider_webhook: Option<Arc<dyn domain::idv::WebhookVerifier>>,
}

pub fn identity_provider(config: &IdvConfig) -> anyhow::Result<Provider> {
    match config.mode {
        IdvMode::Synthetic => {
            let provider = Arc::new(idv::SyntheticProvider::new());
            Ok(Provider {
                idv: provider.clone(),
                synthetic: Some(provider),
                provider_webhook: None,
            })
        }
        IdvMode::Onfido => {
            let onfido = &config.onfido;
            let (Some(token), Some(secret)) = (&onfido.api_token, &onfido.webhook_secret) else {
                anyhow::bail!(
                    "onfido mode needs BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN and _WEBHOOK_SECRET"
                );
            };
            let settings = idv::OnfidoSettings {
                propagate: Some(crate::traces::inject_trace_context),
                ..idv::OnfidoSettings::new(
                    onfido.base_url.clone(),
                    token.clone(),
                    idv::Workflows {
                        registration: config.registration_workflow_id.clone(),
                        step_up: config.step_up_workflow_id.clone(),
                        recovery_verify: config.recovery_verify_workflow_id.clone(),
                    },
                )
            };
            let provider =
                idv::OnfidoProvider::new(settings).map_err(|e| anyhow::anyhow!("{e}"))?;
            let max_age =
                time::Duration::try_from(onfido.webhook_max_age).unwrap_or(time::Duration::MAX);
            let mut webhook = idv::OnfidoWebhook::new(secret.expose_secret(), max_age);
            if let Some(previous) = &onfido.webhook_previous_secret {
                webhook = webhook.with_previous_secret(previous.expose_secret());
            }
            Ok(Provider {
                idv: Arc::new(provider),
                synthetic: None,
                provider_webhook: Some(Arc::new(webhook)),
            })
        }
    }
}

/// Everything the Core API is assembled from.
pub struct CoreParts {
    pub repo: Arc<dyn Repository>,
    pub clock: Arc<dyn Clock>,
    pub provider: Provider,
    pub key: DataKey,
    pub policy: FlowPolicy,
    pub api_keys: ApiKeys,
    /// `builtin` possession mode when present.
    pub relying_party: Option<Arc<dyn domain::possession::RelyingParty>>,
    /// `/api/version` shows the commit and build time too.
    pub version_detail: bool,
    pub limits: HttpLimits,
    /// Long-polls waiting at once on this replica.
    pub long_poll_max_waiters: u32,
    /// Refusals per source before it is answered `429`.
    pub refusals: core_api::refusals::RefusalLimits,
}

/// The built-in relying party a Core configuration asks for, if any.
pub fn relying_party(
    config: &crate::config::PossessionConfig,
) -> anyhow::Result<Option<Arc<dyn domain::possession::RelyingParty>>> {
    match config {
        crate::config::PossessionConfig::External => Ok(None),
        crate::config::PossessionConfig::Builtin(settings) => {
            let rp = relying_party::WebauthnRp::new(settings)
                .map_err(|e| anyhow::anyhow!("the WebAuthn relying party: {e}"))?;
            if let relying_party::Attestation::Required {
                metadata: Some(metadata),
                aaguids,
                ..
            } = &settings.attestation
            {
                let listed = metadata
                    .authenticators
                    .iter()
                    .filter(|(aaguid, a)| {
                        !a.roots.is_empty() && (aaguids.is_empty() || aaguids.contains(aaguid))
                    })
                    .count();
                tracing::info!(
                    authenticators = listed,
                    compromised = metadata.compromised_count(),
                    "attestation: roots from the authenticator metadata; models it reports compromised are refused"
                );
            }
            Ok(Some(Arc::new(rp)))
        }
    }
}

/// The API keys a Core configuration accepts.
pub fn api_keys(config: &CoreConfig) -> ApiKeys {
    ApiKeys::new(
        config
            .api_auth
            .keys()
            .iter()
            .map(ExposeSecret::expose_secret),
    )
}

/// The Core API's router, the flow service behind it (for background work)
/// and its readiness's shutdown switch.
pub struct CoreApp {
    pub router: Router,
    pub flows: Arc<FlowService>,
    pub draining: Draining,
}

pub fn core_app(parts: CoreParts, runtime: &str) -> CoreApp {
    let watch = Arc::new(FlowWatch::new(parts.long_poll_max_waiters));
    let flows = FlowService::new(
        parts.repo.clone(),
        parts.provider.idv,
        parts.clock.clone(),
        parts.key.clone(),
        parts.policy,
    )
    .with_observer(watch.clone());
    let flows = match parts.relying_party {
        Some(rp) => flows.with_relying_party(rp),
        None => flows,
    };
    let flows = Arc::new(flows);
    let service = ServiceInfo::for_repository(
        version_info(runtime, parts.version_detail),
        parts.repo.clone(),
    );
    let draining = service.draining.clone();
    let router = core_api::router(CoreState {
        service,
        flows: flows.clone(),
        idempotency: Arc::new(domain::idempotency::Idempotency::new(
            parts.repo,
            parts.key,
            parts.clock.clone(),
        )),
        clock: parts.clock,
        watch,
        synthetic: parts.provider.synthetic,
        api_keys: parts.api_keys,
        provider_webhook: parts.provider.provider_webhook,
        limits: parts.limits,
        handoff_refusals: Arc::new(core_api::refusals::RefusalCounter::new(
            parts.refusals.handoff_per_minute,
        )),
        refusals: parts.refusals,
    });
    CoreApp {
        router,
        flows,
        draining,
    }
}

pub fn management_router(
    config: &ManagementConfig,
    repo: Arc<dyn Repository>,
    runtime: &str,
) -> anyhow::Result<Router> {
    management_router_with_clock(config, repo, runtime, Arc::new(SystemClock))
}

pub fn management_router_with_clock(
    config: &ManagementConfig,
    repo: Arc<dyn Repository>,
    runtime: &str,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Router> {
    management_app(config, repo, runtime, clock, Draining::default())
}

/// The management runtime's router, its readiness false once `draining` begins.
pub fn management_app(
    config: &ManagementConfig,
    repo: Arc<dyn Repository>,
    runtime: &str,
    clock: Arc<dyn Clock>,
    draining: Draining,
) -> anyhow::Result<Router> {
    let verifier = operator_auth::JwksVerifier::new(
        operator_auth::VerifierSettings {
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
            jwks_url: config.auth.jwks_url.clone(),
            scope_claim: config.auth.scope_claim.clone(),
            scope_prefix: config.auth.scope_prefix.clone(),
            clock_skew: config.auth.clock_skew,
        },
        clock.clone(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let discovery =
        operator_auth::discovery::ProviderDiscovery::new(&config.auth.issuer, clock.clone())
            .map_err(|e| anyhow::anyhow!(e))?;
    if !management::dashboard::Dashboard::is_built() {
        tracing::warn!(
            "the dashboard is not part of this build (dashboard/dist was not built before the binary); \
             the Management API is served as usual"
        );
    }
    let authenticators = match &config.metadata_file {
        Some(path) => authenticator_metadata(path, clock.now())?,
        None => domain::credential::AuthenticatorNames::default(),
    };
    let management = Arc::new(domain::management::ManagementService::new(
        repo.clone(),
        clock,
    ));
    Ok(management::router(ManagementState {
        service: ServiceInfo {
            draining,
            ..ServiceInfo::for_repository(
                version_info(runtime, config.common.version_detail),
                repo.clone(),
            )
        },
        auth: Arc::new(config.auth.clone()),
        ui: Arc::new(config.ui.clone()),
        management,
        verifier: Arc::new(verifier),
        provider_origins: Arc::new(discovery),
        limits: config.common.http,
        exports: Arc::new(tokio::sync::Semaphore::new(
            management::v1::MAX_CONCURRENT_EXPORTS,
        )),
        authenticators: Arc::new(authenticators),
        cose_key_of: crate::credentials::COSE_KEY_OF,
    }))
}

/// Reads and verifies the operator's authenticator metadata: a FIDO Metadata
/// Service BLOB must chain to the FIDO Alliance root and be current, or the
/// runtime does not start.
fn authenticator_metadata(
    path: &std::path::Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<domain::credential::AuthenticatorNames> {
    let variable = crate::config::METADATA_FILE;
    let contents = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("{variable}: cannot read {}: {e}", path.display()))?;
    let metadata =
        relying_party::metadata::load(&contents, relying_party::metadata::FIDO_MDS_ROOT, now)
            .map_err(|e| anyhow::anyhow!("{variable}: {}: {e}", path.display()))?;
    match metadata.source {
        relying_party::metadata::MetadataSource::MdsBlob { no, next_update } => tracing::info!(
            blob_no = no,
            %next_update,
            authenticators = metadata.names.len(),
            "authenticator metadata: FIDO Metadata Service BLOB verified"
        ),
        relying_party::metadata::MetadataSource::NameList => tracing::info!(
            authenticators = metadata.names.len(),
            "authenticator metadata: AAGUID-to-name list read"
        ),
    }
    Ok(metadata.names)
}

/// A bound, serving runtime.
pub struct Application {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl Application {
    /// Serves `router` on `listener` (HTTP/1.1) until `shutdown` resolves,
    /// then lets in-flight requests finish. A client gets
    /// `limits.header_read_timeout` to send each request's headers; a
    /// connection that does not is closed. Each request carries its peer's
    /// address (`ConnectInfo<SocketAddr>`).
    pub fn serve(
        listener: TcpListener,
        router: Router,
        limits: &HttpLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let header_read_timeout = limits.header_read_timeout;
        let task = tokio::spawn(async move {
            let graceful = hyper_util::server::graceful::GracefulShutdown::new();
            let mut shutdown = std::pin::pin!(shutdown);
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors, say: wait, do not spin.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = &mut shutdown => break,
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let mut request = request.map(axum::body::Body::new);
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    tower::ServiceExt::oneshot(router.clone(), request)
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_read_timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that went away or was too slow: nothing to do.
                    let _ = connection.await;
                });
            }
            drop(listener);
            graceful.shutdown().await;
            Ok(())
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the server has stopped.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the server task failed")?
            .context("while serving")
    }
}

/// A shutdown trigger shared by several servers.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// After the termination signal: readiness turns false at once, and the
/// runtime goes on serving for `drain`, so that load balancers and the
/// orchestrator's endpoints stop sending it calls before its listener
/// closes; then in-flight requests finish.
pub async fn drain(draining: &Draining, drain: std::time::Duration) {
    draining.begin();
    if !drain.is_zero() {
        tracing::info!(
            seconds = drain.as_secs_f64(),
            "not ready; serving on while load balancers take this replica out"
        );
        tokio::time::sleep(drain).await;
    }
}

/// Resolves on SIGTERM (the orchestrator) or Ctrl-C (a terminal).
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
