//! The Core API with the Onfido client, pointed at a provider double.

use std::sync::Arc;
use std::time::Duration;

use core_api::auth::ApiKeys;
use core_api::refusals::RefusalLimits;
use domain::ManualClock;
use domain::service::FlowPolicy;
use http_common::HttpLimits;
use idv::SyntheticProvider;
use server::app;
use server::metrics::Metrics;
use time::OffsetDateTime;

use crate::{Parts, Store, TestApp, fresh_store, serve, serve_metered, test_key};

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
