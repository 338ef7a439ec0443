//! Prometheus metrics: what the runtimes measure, and the listener that
//! serves it (`BIOMETRIC_PASSKEY_METRICS_PORT`), apart from the API port so
//! that an ingress exposing the API never exposes the metrics.
//!
//! Each runtime owns one [`Metrics`]: a recorder of its own rather than the
//! process-wide one, so that runtimes sharing a process (`dev`, the tests)
//! are each measured exactly, and nothing is measured that no listener
//! serves. Values are written through the `metrics` facade's macros inside
//! [`Metrics::record`]; the measured parts are decorators around what the
//! runtime already holds — the router ([`http`]), the repository, where every
//! audit event is written ([`store`]), and the identity provider
//! ([`provider`]) — so the domain and the HTTP crates know nothing of them.
//!
//! Label values always come from closed sets (route templates, enum names,
//! error codes); never an identifier, a raw path or a user's input.

mod catalogue;
mod events;
pub mod http;
pub mod provider;
pub mod store;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use domain::audit::trail::MaintenanceReport;
use http_common::HttpLimits;
use metered_pool::PoolSample;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use store_postgres::PgStore;
use store_sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::app::{Application, every};
use crate::traces::ExportFailures;

/// The default `BIOMETRIC_PASSKEY_METRICS_PORT`: the port OpenTelemetry's
/// Prometheus exporter uses by convention.
pub const DEFAULT_PORT: u16 = 9464;

/// Histogram buckets, in seconds: fine around the 10 ms target, and up to the
/// provider's slowest answers.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of the pool's acquire time, in seconds: a connection at hand
/// takes microseconds, a pool run dry up to its five-second acquire timeout.
pub const ACQUIRE_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How often histograms are drained when nobody scrapes, so their samples
/// never pile up.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The database pool a scrape samples.
#[derive(Clone)]
pub enum PoolProbe {
    Postgres(Arc<PgStore>),
    Sqlite(Arc<SqliteStore>),
}

impl PoolProbe {
    fn sample(&self) -> PoolSample {
        match self {
            Self::Postgres(store) => store.pool().sample(),
            Self::Sqlite(store) => store.pool().sample(),
        }
    }

    /// Has every acquire of the pool recorded in `histogram`.
    fn time_acquires(&self, histogram: metrics::Histogram) {
        let observer: metered_pool::AcquireObserver =
            Box::new(move |waited| histogram.record(waited.as_secs_f64()));
        match self {
            Self::Postgres(store) => store.pool().observe(observer),
            Self::Sqlite(store) => store.pool().observe(observer),
        };
    }
}

/// One runtime's (or `dev`'s) metrics; cheap to clone. Turned off, it
/// measures nothing and its decorators hand back what they were given, so a
/// runtime without metrics pays nothing for them.
#[derive(Clone)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    recorder: PrometheusRecorder,
    pools: Mutex<Vec<PoolProbe>>,
    trace_exports: Mutex<Option<Arc<ExportFailures>>>,
}

impl Metrics {
    /// Metrics for a runtime whose metrics port is `port`: off without one.
    pub fn for_port(port: Option<u16>) -> anyhow::Result<Self> {
        match port {
            Some(_) => Self::new(),
            None => Ok(Self::off()),
        }
    }

    /// Metrics that measure nothing.
    pub fn off() -> Self {
        Self { inner: None }
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// A recorder with the build's identity and the process's start time.
    pub fn new() -> anyhow::Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("biometric_passkey_db_pool_acquire_duration_seconds".into()),
                    &ACQUIRE_BUCKETS,
                )
            })
            .context("while configuring the metrics histograms")?
            .build_recorder();
        let metrics = Self {
            inner: Some(Arc::new(Inner {
                recorder,
                pools: Mutex::default(),
                trace_exports: Mutex::default(),
            })),
        };
        metrics.describe();
        // The build is named to Prometheus, which only operators reach.
        let version = crate::app::version_info("", true);
        let started = process_start_time();
        metrics.record(|| {
            metrics::gauge!(
                "biometric_passkey_build_info",
                "version" => version.version,
                "commit" => version.commit.unwrap_or_default(),
            )
            .set(1.0);
            metrics::gauge!("process_start_time_seconds").set(started);
        });
        Ok(metrics)
    }

    /// Runs `f` with this runtime's recorder behind the facade's macros;
    /// not at all when the metrics are off. The recorder is set for the
    /// current thread only, so `f` must not await.
    pub fn record(&self, f: impl FnOnce()) {
        if let Some(inner) = &self.inner {
            metrics::with_local_recorder(&inner.recorder, f);
        }
    }

    /// What `f` registers with this runtime's recorder (handles of its
    /// series, to update later without it); `None` when the metrics are off.
    pub fn register<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.inner
            .as_ref()
            .map(|inner| metrics::with_local_recorder(&inner.recorder, f))
    }

    /// Samples `pool` on every scrape, and times its every acquire.
    pub fn watch_pool(&self, pool: PoolProbe) {
        if let Some(histogram) = self
            .register(|| metrics::histogram!("biometric_passkey_db_pool_acquire_duration_seconds"))
        {
            pool.time_acquires(histogram);
        }
        if let Some(inner) = &self.inner
            && let Ok(mut pools) = inner.pools.lock()
        {
            pools.push(pool);
        }
    }

    /// Reports the failed trace exports on every scrape.
    pub fn watch_trace_exports(&self, failures: Arc<ExportFailures>) {
        if let Some(inner) = &self.inner
            && let Ok(mut watched) = inner.trace_exports.lock()
        {
            *watched = Some(failures);
        }
    }

    /// The exposition text, as a scrape receives it (empty when off).
    pub fn render(&self) -> String {
        let Some(inner) = &self.inner else {
            return String::new();
        };
        self.sample_pools(inner);
        self.sample_process();
        let failed = inner
            .trace_exports
            .lock()
            .ok()
            .and_then(|watched| watched.as_ref().map(|failures| failures.total()));
        if let Some(failed) = failed {
            self.record(|| {
                metrics::counter!("biometric_passkey_trace_exports_failed_total").absolute(failed);
            });
        }
        inner.recorder.handle().render()
    }

    /// The process's resident memory and open file descriptors, as the
    /// standard process collector names them (Linux: from /proc).
    fn sample_process(&self) {
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            });
        let fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count());
        self.record(|| {
            if let Some(kb) = rss {
                metrics::gauge!("process_resident_memory_bytes").set(kb * 1024.0);
            }
            if let Some(fds) = fds {
                metrics::gauge!("process_open_fds").set(fds as f64);
            }
        });
    }

    fn sample_pools(&self, inner: &Inner) {
        let pools = match inner.pools.lock() {
            Ok(pools) => pools.clone(),
            Err(_) => return,
        };
        self.record(|| {
            for pool in pools {
                let PoolSample {
                    size,
                    idle,
                    max,
                    waiters,
                } = pool.sample();
                let idle = idle.min(size as usize) as f64;
                metrics::gauge!("biometric_passkey_db_pool_connections", "state" => "open")
                    .set(f64::from(size));
                metrics::gauge!("biometric_passkey_db_pool_connections", "state" => "idle")
                    .set(idle);
                metrics::gauge!("biometric_passkey_db_pool_connections", "state" => "in_use")
                    .set(f64::from(size) - idle);
                metrics::gauge!("biometric_passkey_db_pool_max_connections").set(f64::from(max));
                metrics::gauge!("biometric_passkey_db_pool_waiters").set(waiters as f64);
            }
        });
    }

    /// `GET /metrics` and nothing else.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone())
    }

    /// Serves [`Metrics::router`] on `listener` until `shutdown` resolves,
    /// draining histograms meanwhile even when nobody scrapes.
    pub fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<Application> {
        let (stop_upkeep, upkeep_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(inner) = &self.inner {
            let handle = inner.recorder.handle();
            tokio::spawn(every(
                UPKEEP_EVERY,
                async move {
                    let _ = upkeep_stopped.await;
                },
                move || {
                    handle.run_upkeep();
                    std::future::ready(())
                },
            ));
        }
        Application::serve(
            listener,
            self.router(),
            &HttpLimits::default(),
            async move {
                shutdown.await;
                let _ = stop_upkeep.send(());
            },
        )
    }

    fn describe(&self) {
        self.record(catalogue::describe_all);
    }
}

impl Metrics {
    /// Counts one run of the audit trail's maintenance: `None` when it failed.
    pub fn maintenance_ran(&self, report: Option<&MaintenanceReport>) {
        self.record(|| {
            let outcome = match report {
                None => "failure",
                Some(report) if !report.leader => "elsewhere",
                Some(_) => "success",
            };
            metrics::counter!(
                "biometric_passkey_audit_maintenance_runs_total",
                "outcome" => outcome,
            )
            .increment(1);
            let Some(report) = report.filter(|r| r.leader) else {
                return;
            };
            metrics::gauge!("biometric_passkey_audit_maintenance_last_success_timestamp_seconds")
                .set(unix_now());
            metrics::counter!("biometric_passkey_audit_partitions_created_total")
                .increment(report.created.len() as u64);
            metrics::counter!("biometric_passkey_audit_months_dropped_total")
                .increment(report.dropped.len() as u64);
            metrics::counter!("biometric_passkey_audit_events_sealed_total")
                .increment(report.sealed_events);
            metrics::gauge!("biometric_passkey_audit_retention_blocked_months")
                .set((report.kept_unarchived.len() + report.kept_changed.len()) as f64);
            if let Some(ahead) = report.partitions_ahead {
                metrics::gauge!("biometric_passkey_audit_partitions_ahead").set(f64::from(ahead));
            }
            metrics::gauge!("biometric_passkey_audit_events_awaiting_sealing")
                .set(report.awaiting_sealing as f64);
        });
    }
}

async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// Seconds since the Unix epoch, read once when the metrics are built.
fn process_start_time() -> f64 {
    unix_now()
}

/// Seconds since the Unix epoch, now.
#[allow(clippy::disallowed_methods)] // Metrics' timestamps, not domain time.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_turned_off_measure_nothing_and_wrap_nothing() {
        let metrics = Metrics::off();
        let provider: Arc<dyn domain::idv::IdentityProvider> =
            Arc::new(idv::SyntheticProvider::new());
        assert!(Arc::ptr_eq(
            &metrics.measure_provider(provider.clone()),
            &provider
        ));
        let mut recorded = false;
        metrics.record(|| recorded = true);
        assert!(!recorded);
        assert_eq!(metrics.render(), "");
    }

    #[test]
    fn a_new_recorder_reports_the_build_and_the_start_time() {
        let text = Metrics::new().unwrap().render();
        assert!(
            text.contains(&format!(
                "biometric_passkey_build_info{{version=\"{}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_start_time_seconds gauge"),
            "{text}"
        );
        #[cfg(target_os = "linux")]
        for sampled in ["process_resident_memory_bytes ", "process_open_fds "] {
            assert!(text.lines().any(|l| l.starts_with(sampled)), "{text}");
        }
    }

    #[test]
    fn the_provider_clean_up_queue_is_reported_by_state() {
        let metrics = Metrics::new().unwrap();
        metrics.provider_cleanups_counted(&domain::store::ProviderCleanupCounts {
            pending: 3,
            retrying: 1,
            dead: 2,
        });
        let text = metrics.render();
        for line in [
            "biometric_passkey_provider_cleanups{state=\"pending\"} 3",
            "biometric_passkey_provider_cleanups{state=\"retrying\"} 1",
            "biometric_passkey_provider_cleanups{state=\"dead\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn audit_maintenance_runs_are_counted_and_the_last_success_is_stamped() {
        let metrics = Metrics::new().unwrap();
        let month = |m| domain::audit::month::Month::new(2026, m).unwrap();
        metrics.maintenance_ran(Some(&MaintenanceReport {
            leader: true,
            created: vec![month(7), month(8)],
            dropped: vec![month(1)],
            kept_unarchived: vec![month(2)],
            sealed_events: 42,
            partitions_ahead: Some(3),
            awaiting_sealing: 5,
            ..MaintenanceReport::default()
        }));
        metrics.maintenance_ran(Some(&MaintenanceReport::default()));
        metrics.maintenance_ran(None);
        let text = metrics.render();
        for line in [
            "biometric_passkey_audit_maintenance_runs_total{outcome=\"success\"} 1",
            "biometric_passkey_audit_maintenance_runs_total{outcome=\"elsewhere\"} 1",
            "biometric_passkey_audit_maintenance_runs_total{outcome=\"failure\"} 1",
            "biometric_passkey_audit_partitions_created_total 2",
            "biometric_passkey_audit_months_dropped_total 1",
            "biometric_passkey_audit_partitions_ahead 3",
            "biometric_passkey_audit_events_awaiting_sealing 5",
            "biometric_passkey_audit_events_sealed_total 42",
            "biometric_passkey_audit_retention_blocked_months 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let stamped = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "biometric_passkey_audit_maintenance_last_success_timestamp_seconds ",
                )
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert!(stamped.is_some_and(|t| t > 1.7e9), "{text}");
    }
}
