//! The Core API served on a fresh store: with the synthetic provider or the
//! built-in relying party, bounded, metered, or over an earlier one's store.

use std::sync::Arc;

use core_api::auth::ApiKeys;
use core_api::refusals::RefusalLimits;
use domain::sealing::DataKey;
use domain::service::FlowPolicy;
use domain::{ManualClock, Repository};
use http_common::HttpLimits;
use idv::SyntheticProvider;
use server::app;
use server::metrics::Metrics;

use crate::{Parts, Store, T0, TestApp, fresh_store, serve, serve_metered, test_key};

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
