//! Test support for end-to-end tests: each runtime served on loopback over
//! real HTTP, on a fresh SQLite file or a fresh PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test-support code: a failed setup is a failed test.

pub mod core_client;
pub mod jwks_double;

/// Expands each scenario — an `async fn(Store)` in the calling module — into one
/// test per store, in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Store::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Store::Postgres).await;
                }
            )*
        }
    };
}
pub mod onfido_double;

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use core_api::auth::ApiKeys;
use core_api::refusals::RefusalLimits;
use domain::sealing::{DataKey, KeyId};
use domain::service::{FlowPolicy, FlowService};
use domain::{ManualClock, Repository};
use http_common::HttpLimits;
use idv::SyntheticProvider;
use management::{ManagementAuth, ManagementUi};
use server::app::{self, Application, Shutdown};
use server::config::{AuditConfig, CommonConfig, DatabaseConfig, LogLevel, ManagementConfig};
use server::metrics::{Metrics, PoolProbe};
use store_conformance::postgres::fresh_database;
use store_postgres::{PgSettings, PgStore, SslMode};
use store_sqlite::{SqliteSettings, SqliteStore};
use time::OffsetDateTime;
use tokio::net::TcpListener;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// Both stores, for tests that must hold on each.
pub const STORES: [Store; 2] = [Store::Sqlite, Store::Postgres];

/// A fresh, migrated repository, and what must outlive it.
pub async fn fresh_repository(store: Store) -> (Arc<dyn Repository>, Box<dyn Any + Send + Sync>) {
    let (repo, _, keep) = fresh_store(store).await;
    (repo, keep)
}

/// As [`fresh_repository`], with the store's pool for metrics to sample.
pub async fn fresh_store(
    store: Store,
) -> (Arc<dyn Repository>, PoolProbe, Box<dyn Any + Send + Sync>) {
    match store {
        Store::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let repo = SqliteStore::open(&SqliteSettings::new(dir.path().join("test.sqlite3")))
                .await
                .unwrap();
            repo.migrate().await.unwrap();
            let repo = Arc::new(repo);
            (repo.clone(), PoolProbe::Sqlite(repo), Box::new(dir))
        }
        Store::Postgres => {
            let db = fresh_database().await;
            let settings = PgSettings {
                host: db.host.clone(),
                port: db.port,
                user: db.user.clone(),
                password: Some(db.password.clone().into()),
                database: db.database.clone(),
                ssl_mode: SslMode::Disable,
                max_open_conns: 8,
                max_idle_conns: 8,
                conn_max_lifetime: Duration::from_secs(300),
                conn_max_idle_time: Duration::from_secs(60),
                pooler_mode: store_postgres::PoolerMode::Session,
            };
            let repo = PgStore::connect_lazy(&settings);
            repo.migrate().await.unwrap();
            let repo = Arc::new(repo);
            (repo.clone(), PoolProbe::Postgres(repo), Box::new(db))
        }
    }
}

/// Where test time starts: a fixed instant, so runs are reproducible.
pub const T0: OffsetDateTime = time::macros::datetime!(2026-06-01 09:00:00 UTC);

/// The example key of the deployment guide's evaluation setup.
pub const TEST_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

pub fn test_key() -> DataKey {
    DataKey::from_base64url(KeyId::parse("test").unwrap(), TEST_KEY).unwrap()
}

/// A runtime serving on `127.0.0.1:<random port>`; stops when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub repo: Arc<dyn Repository>,
    /// The Core API's clock (moves only when told); management apps get one too.
    pub clock: Arc<ManualClock>,
    /// The Core API's synthetic IDV provider.
    pub synthetic: Arc<SyntheticProvider>,
    /// The Core API's flow service (for background work such as reconciliation).
    pub flows: Option<Arc<FlowService>>,
    /// Where the runtime's metrics are served, when it was spawned metered.
    pub metrics: Option<SocketAddr>,
    shutdown: Shutdown,
    _keep: Box<dyn Any + Send + Sync>,
}

impl TestApp {
    /// Writes the counted refusals (webhook deliveries not acted on, unknown
    /// hand-off codes) as the Core API's background work does: the ended
    /// window's, or all of them as at shutdown when `all`.
    pub async fn flush_refusal_tally(&self, all: bool) {
        self.flows
            .as_ref()
            .expect("a Core API")
            .flush_refusal_tally(all)
            .await
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

struct Parts {
    repo: Arc<dyn Repository>,
    clock: Arc<ManualClock>,
    synthetic: Arc<SyntheticProvider>,
    flows: Option<Arc<FlowService>>,
    keep: Box<dyn Any + Send + Sync>,
    limits: HttpLimits,
}

async fn serve(router: axum::Router, parts: Parts) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::default();
    // Traced as the runtime traces its requests (a no-op unless traces are on).
    let router = server::traces::trace_requests(router);
    let server = Application::serve(listener, router, &parts.limits, shutdown.signalled()).unwrap();
    TestApp {
        addr: server.addr(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        repo: parts.repo,
        clock: parts.clock,
        synthetic: parts.synthetic,
        flows: parts.flows,
        metrics: None,
        shutdown,
        _keep: parts.keep,
    }
}

/// As [`serve`], measured by `metrics`, which are served on a listener of
/// their own on `127.0.0.1:<random port>`.
async fn serve_metered(
    router: axum::Router,
    parts: Parts,
    metrics: &Metrics,
    runtime: &'static str,
) -> TestApp {
    let mut app = serve(metrics.measure_http(router, runtime), parts).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = metrics.serve(listener, app.shutdown.signalled()).unwrap();
    app.metrics = Some(server.addr());
    app
}

/// The Core API on a fresh store, with the default policy.
pub async fn spawn_core(store: Store) -> TestApp {
    spawn_core_with(store, FlowPolicy::default()).await
}

/// The Core API on a fresh store, in synthetic mode, on a manual clock at [`T0`].
pub async fn spawn_core_with(store: Store, policy: FlowPolicy) -> TestApp {
    spawn_core_configured(store, policy, ApiKeys::default()).await
}

/// As [`spawn_core_with`], requiring `api_keys` when not empty.
pub async fn spawn_core_configured(store: Store, policy: FlowPolicy, api_keys: ApiKeys) -> TestApp {
    spawn_core_parts(store, policy, api_keys, None, Bounds::default()).await
}

/// As [`spawn_core`], with these limits on requests and long-poll waiters.
pub async fn spawn_core_bounded(store: Store, limits: HttpLimits, max_waiters: u32) -> TestApp {
    let bounds = Bounds {
        limits,
        max_waiters,
    };
    spawn_core_parts(
        store,
        FlowPolicy::default(),
        ApiKeys::default(),
        None,
        bounds,
    )
    .await
}

/// What a test runtime takes on at once.
struct Bounds {
    limits: HttpLimits,
    max_waiters: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            limits: HttpLimits::default(),
            max_waiters: core_api::watch::DEFAULT_MAX_WAITERS,
        }
    }
}

/// As [`spawn_core_with`], in `builtin` possession mode with `rp`.
pub async fn spawn_core_builtin(
    store: Store,
    policy: FlowPolicy,
    rp: Arc<dyn domain::possession::RelyingParty>,
) -> TestApp {
    spawn_core_parts(
        store,
        policy,
        ApiKeys::default(),
        Some(rp),
        Bounds::default(),
    )
    .await
}

/// The Core API on a fresh store, in synthetic mode, measured as the `core`
/// runtime measures itself: its metrics at [`TestApp::metrics`].
pub async fn spawn_core_metered(store: Store) -> TestApp {
    let metrics = Metrics::new().unwrap();
    spawn_core_parts_metered(
        store,
        FlowPolicy::default(),
        ApiKeys::default(),
        None,
        Bounds::default(),
        Some(metrics),
    )
    .await
}

async fn spawn_core_parts(
    store: Store,
    policy: FlowPolicy,
    api_keys: ApiKeys,
    relying_party: Option<Arc<dyn domain::possession::RelyingParty>>,
    bounds: Bounds,
) -> TestApp {
    spawn_core_parts_metered(store, policy, api_keys, relying_party, bounds, None).await
}

async fn spawn_core_parts_metered(
    store: Store,
    policy: FlowPolicy,
    api_keys: ApiKeys,
    relying_party: Option<Arc<dyn domain::possession::RelyingParty>>,
    bounds: Bounds,
    metrics: Option<Metrics>,
) -> TestApp {
    let (repo, pool, keep) = fresh_store(store).await;
    if let Some(metrics) = &metrics {
        metrics.watch_pool(pool);
    }
    let clock = Arc::new(ManualClock::new(T0));
    let synthetic = Arc::new(SyntheticProvider::new());
    let (measured_repo, idv): (Arc<dyn Repository>, Arc<dyn domain::idv::IdentityProvider>) =
        match &metrics {
            Some(m) => (
                m.measure_repository(repo.clone()),
                m.measure_provider(synthetic.clone()),
            ),
            None => (repo.clone(), synthetic.clone()),
        };
    let core = app::core_app(
        app::CoreParts {
            repo: measured_repo,
            clock: clock.clone(),
            provider: app::Provider {
                idv,
                synthetic: Some(synthetic.clone()),
                provider_webhook: None,
            },
            key: test_key(),
            policy,
            api_keys,
            relying_party,
            version_detail: false,
            limits: bounds.limits,
            long_poll_max_waiters: bounds.max_waiters,
            refusals: RefusalLimits::default(),
        },
        "core",
    );
    let parts = Parts {
        repo,
        clock,
        synthetic,
        flows: Some(core.flows),
        keep,
        limits: bounds.limits,
    };
    match metrics {
        Some(metrics) => serve_metered(core.router, parts, &metrics, "core").await,
        None => serve(core.router, parts).await,
    }
}

/// Another Core API over `earlier`'s store, clock and synthetic provider,
/// sealing with `key` (a data-encryption key rotation, say). Keep `earlier`
/// alive while this one runs: it owns the store.
pub fn spawn_core_over(earlier: &TestApp, key: DataKey) -> impl Future<Output = TestApp> + '_ {
    let core = app::core_app(
        app::CoreParts {
            repo: earlier.repo.clone(),
            clock: earlier.clock.clone(),
            provider: app::Provider {
                idv: earlier.synthetic.clone(),
                synthetic: Some(earlier.synthetic.clone()),
                provider_webhook: None,
            },
            key,
            policy: FlowPolicy::default(),
            api_keys: ApiKeys::default(),
            relying_party: None,
            version_detail: false,
            limits: HttpLimits::default(),
            long_poll_max_waiters: core_api::watch::DEFAULT_MAX_WAITERS,
            refusals: RefusalLimits::default(),
        },
        "core",
    );
    serve(
        core.router,
        Parts {
            repo: earlier.repo.clone(),
            clock: earlier.clock.clone(),
            synthetic: earlier.synthetic.clone(),
            flows: Some(core.flows),
            keep: Box::new(()),
            limits: HttpLimits::default(),
        },
    )
}

/// The management configuration tests use: a loopback issuer, every scope.
pub fn management_config() -> ManagementConfig {
    ManagementConfig {
        common: CommonConfig {
            port: 0,
            metrics_port: None,
            log_level: LogLevel::Info,
            database: DatabaseConfig::Sqlite(SqliteSettings::new("unused")),
            version_detail: false,
            http: HttpLimits::default(),
            traces: server::traces::TracesConfig::default(),
            shutdown_drain: std::time::Duration::ZERO,
        },
        auth: ManagementAuth {
            issuer: "http://127.0.0.1:9/".into(),
            audience: "biometric-passkey-management-api".into(),
            jwks_url: "http://127.0.0.1:9/jwks".into(),
            scope_claim: "scope".into(),
            scope_prefix: String::new(),
            clock_skew: Duration::from_secs(30),
        },
        ui: ManagementUi {
            client_id: "biometric-passkey-management-ui".into(),
            scopes: management::runtime_config::DEFAULT_UI_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        },
        audit: AuditConfig {
            partition_maintenance_enabled: false,
            retention_months: 0,
        },
        metadata_file: None,
    }
}

/// The management runtime on a fresh store, measured as the `management`
/// runtime measures itself: its metrics at [`TestApp::metrics`].
pub async fn spawn_management_metered(store: Store) -> TestApp {
    let metrics = Metrics::new().unwrap();
    let (repo, pool, keep) = fresh_store(store).await;
    metrics.watch_pool(pool);
    let router = app::management_router(
        &management_config(),
        metrics.measure_repository(repo.clone()),
        "management",
    )
    .unwrap();
    let parts = Parts {
        repo,
        clock: Arc::new(ManualClock::new(T0)),
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve_metered(router, parts, &metrics, "management").await
}

/// The management runtime on a fresh store.
pub async fn spawn_management(store: Store) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    let router = app::management_router(&management_config(), repo.clone(), "management").unwrap();
    let parts = Parts {
        repo,
        clock: Arc::new(ManualClock::new(T0)),
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}

/// The Core API in `onfido` mode against a provider at `base_url` (a test
/// double), built exactly as the `core` runtime builds it from configuration.
/// Its clock starts at the real time, since the provider stamps real times.
pub async fn spawn_core_onfido(
    store: Store,
    base_url: &str,
    api_token: &str,
    webhook_secret: &str,
) -> TestApp {
    spawn_core_onfido_configured(
        store,
        base_url,
        api_token,
        webhook_secret,
        ApiKeys::default(),
    )
    .await
}

/// As [`spawn_core_onfido`], requiring `api_keys` when not empty.
pub async fn spawn_core_onfido_configured(
    store: Store,
    base_url: &str,
    api_token: &str,
    webhook_secret: &str,
    api_keys: ApiKeys,
) -> TestApp {
    spawn_core_onfido_with(
        store,
        base_url,
        api_token,
        webhook_secret,
        OnfidoOptions {
            api_keys,
            ..OnfidoOptions::default()
        },
    )
    .await
}

/// As [`spawn_core_onfido`], measured as the `core` runtime measures itself:
/// its metrics at [`TestApp::metrics`].
pub async fn spawn_core_onfido_metered(
    store: Store,
    base_url: &str,
    api_token: &str,
    webhook_secret: &str,
) -> TestApp {
    spawn_core_onfido_with(
        store,
        base_url,
        api_token,
        webhook_secret,
        OnfidoOptions {
            metrics: Some(Metrics::new().unwrap()),
            ..OnfidoOptions::default()
        },
    )
    .await
}

/// As [`spawn_core_onfido`], in the middle of a webhook-secret rotation:
/// deliveries signed with `previous_webhook_secret` are accepted too.
pub async fn spawn_core_onfido_rotating(
    store: Store,
    base_url: &str,
    api_token: &str,
    webhook_secret: &str,
    previous_webhook_secret: &str,
) -> TestApp {
    spawn_core_onfido_with(
        store,
        base_url,
        api_token,
        webhook_secret,
        OnfidoOptions {
            previous_webhook_secret: Some(previous_webhook_secret),
            ..OnfidoOptions::default()
        },
    )
    .await
}

/// What an `onfido`-mode test runtime may be given beyond its provider.
#[derive(Default)]
pub struct OnfidoOptions<'a> {
    pub previous_webhook_secret: Option<&'a str>,
    pub api_keys: ApiKeys,
    pub metrics: Option<Metrics>,
    pub refusals: RefusalLimits,
}

/// As [`spawn_core_onfido`], with `options`.
pub async fn spawn_core_onfido_with(
    store: Store,
    base_url: &str,
    api_token: &str,
    webhook_secret: &str,
    options: OnfidoOptions<'_>,
) -> TestApp {
    use server::config::{IdvConfig, IdvMode, OnfidoConfig};

    let OnfidoOptions {
        previous_webhook_secret,
        api_keys,
        metrics,
        refusals,
    } = options;

    let (repo, pool, keep) = fresh_store(store).await;
    if let Some(metrics) = &metrics {
        metrics.watch_pool(pool);
    }
    #[allow(clippy::disallowed_methods)] // The provider double stamps real times.
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let idv_config = IdvConfig {
        mode: IdvMode::Onfido,
        registration_workflow_id: "0c6b0e4a-1111-4b5b-9a1e-000000000001".into(),
        step_up_workflow_id: "0c6b0e4a-1111-4b5b-9a1e-000000000002".into(),
        recovery_verify_workflow_id: "0c6b0e4a-1111-4b5b-9a1e-000000000003".into(),
        onfido: OnfidoConfig {
            region: "eu".into(),
            base_url: url::Url::parse(base_url).unwrap(),
            api_token: Some(api_token.to_owned().into()),
            webhook_secret: Some(webhook_secret.to_owned().into()),
            webhook_previous_secret: previous_webhook_secret.map(|s| s.to_owned().into()),
            webhook_max_age: Duration::from_secs(900),
        },
    };
    let mut provider = app::identity_provider(&idv_config).unwrap();
    // Measured and traced as the runtime is (a no-op unless either is on).
    let meter = metrics.clone().unwrap_or_else(Metrics::off);
    provider.idv = meter.measure_provider(provider.idv);
    let measured_repo = meter.measure_repository(repo.clone());
    let core = app::core_app(
        app::CoreParts {
            repo: measured_repo,
            clock: clock.clone(),
            provider,
            key: test_key(),
            policy: FlowPolicy::default(),
            api_keys,
            relying_party: None,
            version_detail: false,
            limits: HttpLimits::default(),
            long_poll_max_waiters: core_api::watch::DEFAULT_MAX_WAITERS,
            refusals,
        },
        "core",
    );
    let parts = Parts {
        repo,
        clock,
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: Some(core.flows),
        keep,
        limits: HttpLimits::default(),
    };
    match metrics {
        Some(metrics) => serve_metered(core.router, parts, &metrics, "core").await,
        None => serve(core.router, parts).await,
    }
}

/// The management runtime on a fresh store, authenticating operators with
/// `config`, its clock at [`T0`].
pub async fn spawn_management_with(store: Store, config: ManagementConfig) -> TestApp {
    let (repo, keep) = fresh_repository(store).await;
    let clock = Arc::new(ManualClock::new(T0));
    let router =
        app::management_router_with_clock(&config, repo.clone(), "management", clock.clone())
            .unwrap();
    let parts = Parts {
        repo,
        clock,
        synthetic: Arc::new(SyntheticProvider::new()),
        flows: None,
        keep,
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}

/// The management runtime over `core`'s database (which `core` keeps alive),
/// authenticating operators with `config`, on `core`'s clock.
pub async fn spawn_management_for(core: &TestApp, config: ManagementConfig) -> TestApp {
    let router = app::management_router_with_clock(
        &config,
        core.repo.clone(),
        "management",
        core.clock.clone(),
    )
    .unwrap();
    let parts = Parts {
        repo: core.repo.clone(),
        clock: core.clock.clone(),
        synthetic: core.synthetic.clone(),
        flows: None,
        keep: Box::new(()),
        limits: HttpLimits::default(),
    };
    serve(router, parts).await
}
