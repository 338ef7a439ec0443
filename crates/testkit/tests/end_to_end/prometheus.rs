//! A real Prometheus server (Debian's `prometheus` package) scraping a
//! running Core API and management runtime: the series an operator's
//! Prometheus stores, read back through its HTTP API, after a few flows and
//! a refused webhook delivery.
//!
//! The server must be installed (`scripts/test` installs it); without it
//! this test fails with the instructions, it never skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::onfido_double::{DeliveryOutcome, OnfidoDouble, OnfidoDoubleConfig, sign};
use testkit::{Store, TestApp, spawn_core_onfido_metered, spawn_management_metered};

const WEBHOOK_PATH: &str = "/api/public/v1/providers/onfido/webhooks";

/// The server binary: `$PROMETHEUS`, else `prometheus` on the PATH.
fn prometheus_binary() -> PathBuf {
    let configured = std::env::var_os("PROMETHEUS").map(PathBuf::from);
    let on_path = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    };
    configured
        .or_else(on_path)
        .filter(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Prometheus server is not installed: install Debian's package \
                 (`sudo apt-get install --no-install-recommends prometheus`; scripts/test does) \
                 or point PROMETHEUS at its binary"
            )
        })
}

/// A Prometheus server on loopback, scraping `targets` every second; killed
/// when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    async fn start(targets: &[(&str, SocketAddr)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let addr: SocketAddr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the Prometheus server starts");
        let prometheus = Self {
            child,
            addr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            _dir: dir,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    /// The instant vector `query` evaluates to now.
    async fn query(&self, query: &str) -> Vec<Value> {
        let response: Value = self
            .client
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(response["status"], "success", "{query}: {response}");
        response["data"]["result"].as_array().unwrap().clone()
    }

    /// Waits until `query` yields exactly one series whose value is
    /// `expected` (Prometheus scrapes every second).
    async fn expect(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let result = self.query(query).await;
            let value = match result.as_slice() {
                [series] => series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok()),
                _ => None,
            };
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} did not reach {expected}; last answer: {result:?}; log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let ready = self
                .client
                .get(format!("http://{}/-/ready", self.addr))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Prometheus server did not become ready; log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_both_runtimes_and_answers_for_their_series() {
    let config = OnfidoDoubleConfig::default();
    let double = OnfidoDouble::start(config.clone()).await;
    let core = spawn_core_onfido_metered(
        Store::Sqlite,
        &double.base_url(),
        &config.api_token,
        &config.webhook_token,
    )
    .await;
    double.set_webhook_url(core.url(WEBHOOK_PATH));
    let management = spawn_management_metered(Store::Sqlite).await;
    let prometheus = Prometheus::start(&[
        ("core", core.metrics.unwrap()),
        ("management", management.metrics.unwrap()),
    ])
    .await;
    prometheus.expect(r#"up{job="core"}"#, 1.0).await;
    prometheus.expect(r#"up{job="management"}"#, 1.0).await;

    registrations_a_forged_delivery_and_health_checks(&double, &core, &management).await;
    flows_deliveries_and_requests_are_stored(&prometheus).await;
    pool_latency_and_build_are_stored(&prometheus).await;
}

/// Two registrations (the provider approves one and declines the other), a
/// forged webhook delivery, and three health checks of the management
/// runtime.
async fn registrations_a_forged_delivery_and_health_checks(
    double: &OnfidoDouble,
    core: &TestApp,
    management: &TestApp,
) {
    for (user, outcome) in [("ann", "approved"), ("ben", "declined")] {
        let flow = core
            .created(json!({ "type": "registration", "external_user_id": user }))
            .await;
        if outcome == "approved" {
            core.store_reference(&flow, b"encrypted-biometric-token")
                .await;
            let (status, body) = core
                .register_credential(&flow, &format!("{user}-phone"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let run = flow["identity"]["workflow_run_id"].as_str().unwrap();
        assert_eq!(
            double.complete_run(run, outcome).await,
            vec![DeliveryOutcome::Status(200)]
        );
    }
    // A forged delivery.
    let body = br#"{"payload":{"resource_type":"workflow_run","action":"workflow_run.completed"}}"#;
    assert_eq!(
        double
            .deliver_raw(body, Some(&sign("not-the-webhook-token", body)))
            .await,
        DeliveryOutcome::Status(401)
    );
    // Counted in the trail a window at a time; the metric follows the trail.
    core.flush_refusal_tally(true).await;
    for _ in 0..3 {
        assert_eq!(management.get("/api/health").await.status(), StatusCode::OK);
    }
}

async fn flows_deliveries_and_requests_are_stored(prometheus: &Prometheus) {
    prometheus
        .expect(
            r#"biometric_passkey_flows_created_total{job="core",type="registration"}"#,
            2.0,
        )
        .await;
    prometheus
        .expect(
            r#"biometric_passkey_flows_completed_total{job="core",type="registration"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"biometric_passkey_flows_failed_total{job="core",type="registration",reason="idv_declined"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"biometric_passkey_webhook_deliveries_total{job="core",outcome="rejected",reason="signature_invalid"}"#,
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"biometric_passkey_webhook_deliveries_total{job="core",outcome="accepted"}"#,
            2.0,
        )
        .await;
    prometheus
        .expect(
            &format!(
                r#"biometric_passkey_http_requests_total{{job="core",runtime="core",route="{WEBHOOK_PATH}",method="POST",status="4xx"}}"#
            ),
            1.0,
        )
        .await;
    prometheus
        .expect(
            r#"biometric_passkey_http_requests_total{job="management",runtime="management",route="/api/health",method="GET",status="2xx"}"#,
            3.0,
        )
        .await;
    prometheus
        .expect(
            r#"sum(biometric_passkey_idv_requests_total{job="core",provider="onfido",operation="start_run",outcome="ok"})"#,
            2.0,
        )
        .await;
}

/// The pool's waiters and acquire times, as the pool alert reads them; the
/// latency histogram as Prometheus users query it; each runtime's build.
async fn pool_latency_and_build_are_stored(prometheus: &Prometheus) {
    prometheus
        .expect(r#"biometric_passkey_db_pool_waiters{job="core"}"#, 0.0)
        .await;
    prometheus
        .expect(
            r#"count(biometric_passkey_db_pool_acquire_duration_seconds_count{job="core"} > 0)"#,
            1.0,
        )
        .await;
    // The latency histogram is usable as Prometheus users query it.
    let p99 = prometheus
        .query(
            r#"histogram_quantile(0.99, sum by (le) (biometric_passkey_http_request_duration_seconds_bucket{job="core",route="/api/core/v1/flows"}))"#,
        )
        .await;
    assert_eq!(p99.len(), 1, "{p99:?}");
    prometheus
        .expect(
            r#"count(biometric_passkey_build_info{job=~"core|management"})"#,
            2.0,
        )
        .await;
}
