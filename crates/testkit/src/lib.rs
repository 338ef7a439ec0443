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

mod core_runtime;
mod management_runtime;
pub mod onfido_double;
mod onfido_runtime;

use domain::sealing::{DataKey, KeyId};
use domain::service::FlowService;
use domain::{ManualClock, Repository};
use http_common::HttpLimits;
use idv::SyntheticProvider;
use server::app::{Application, Shutdown};
use server::metrics::{Metrics, PoolProbe};
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store_conformance::postgres::fresh_database;
use store_postgres::{PgSettings, PgStore, SslMode};
use store_sqlite::{SqliteSettings, SqliteStore};
use time::OffsetDateTime;
use tokio::net::TcpListener;

pub use core_runtime::{
    spawn_core, spawn_core_bounded, spawn_core_builtin, spawn_core_configured, spawn_core_metered,
    spawn_core_over, spawn_core_with,
};
pub use management_runtime::{
    management_config, spawn_management, spawn_management_for, spawn_management_metered,
    spawn_management_with,
};
pub use onfido_runtime::{
    OnfidoOptions, spawn_core_onfido, spawn_core_onfido_configured, spawn_core_onfido_metered,
    spawn_core_onfido_rotating, spawn_core_onfido_with,
};

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
