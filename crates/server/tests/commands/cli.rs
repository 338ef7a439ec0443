//! The `biometric-passkey` binary as operators run it: configuration refusals,
//! migrations, serving, health checks and shutdown.

use crate::support::{Running, free_port, wait_for_health};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use domain::rotation::{RowKey, SealedColumn};
use domain::sealing::{DataKey, KeyId};
use store_conformance::postgres::fresh_database;
use store_sqlite::{SqliteSettings, SqliteStore};

/// A value that must never be printed, whatever goes wrong.
const SENTINEL: &str = "SENTINEL-do-not-print-7f3a";
const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
/// An integration API key; like every secret, never printed.
const API_KEY: &str = "integration-key-SENTINEL-0123456789abcdef";

fn binary() -> Command {
    let mut cmd = Command::cargo_bin("biometric-passkey").unwrap();
    cmd.env_clear();
    cmd
}

fn core_env() -> Vec<(&'static str, String)> {
    vec![
        // Runtimes of tests run side by side: none takes the default metrics port.
        ("BIOMETRIC_PASSKEY_METRICS_PORT", "0".into()),
        ("DB_HOST", "127.0.0.1".into()),
        ("DB_PORT", "1".into()),
        ("DB_USER", "bp".into()),
        ("DB_NAME", "bp".into()),
        ("DB_PASSWORD", SENTINEL.into()),
        ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY.into()),
        ("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", SENTINEL.into()),
        (
            "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
            SENTINEL.into(),
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000001".into(),
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000002".into(),
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000003".into(),
        ),
        ("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY.into()),
    ]
}

fn management_env() -> Vec<(&'static str, String)> {
    vec![
        // Runtimes of tests run side by side: none takes the default metrics port.
        ("BIOMETRIC_PASSKEY_METRICS_PORT", "0".into()),
        ("DB_HOST", "127.0.0.1".into()),
        ("DB_PORT", "1".into()),
        ("DB_USER", "bp".into()),
        ("DB_NAME", "bp".into()),
        ("DB_PASSWORD", SENTINEL.into()),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "https://issuer.example.com/".into(),
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE",
            "bp-api".into(),
        ),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "https://issuer.example.com/jwks".into(),
        ),
        ("BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID", "bp-ui".into()),
    ]
}

fn with(
    mut env: Vec<(&'static str, String)>,
    changes: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (name, value) in changes {
        env.retain(|(k, _)| k != name);
        if !value.is_empty() {
            env.push((name, (*value).to_owned()));
        }
    }
    env
}

/// Runs `args` with `env`; asserts a refusal naming `variable`, and that no
/// secret reached either stream.
fn assert_refused(args: &[&str], env: &[(&'static str, String)], variable: &str, secret: &str) {
    let output = binary()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} should refuse; stderr:\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line.trim_start().starts_with(&format!("{variable}:"))),
        "{args:?}: no line names {variable}:\n{stderr}"
    );
    for stream in [&stdout, &stderr] {
        assert!(
            !stream.contains(SENTINEL),
            "a secret was printed:\n{stream}"
        );
        assert!(!stream.contains(secret), "a secret was printed:\n{stream}");
        assert!(
            !stream.contains(API_KEY),
            "an API key was printed:\n{stream}"
        );
    }
}

#[test]
fn valid_configurations_are_accepted() {
    let output = binary()
        .args(["check-config", "core"])
        .envs(core_env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = binary()
        .args(["check-config", "management"])
        .envs(management_env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn missing_required_variables_are_named_per_runtime() {
    for variable in [
        "DB_HOST",
        "DB_USER",
        "DB_NAME",
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
    ] {
        assert_refused(
            &["check-config", "core"],
            &with(core_env(), &[(variable, "")]),
            variable,
            KEY,
        );
    }
    for variable in [
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID",
    ] {
        assert_refused(
            &["check-config", "management"],
            &with(management_env(), &[(variable, "")]),
            variable,
            KEY,
        );
    }
    assert_refused(&["check-config", "migrate"], &[], "DB_HOST", KEY);
}

#[test]
fn the_runtimes_themselves_refuse_to_start() {
    assert_refused(
        &["core"],
        &with(core_env(), &[("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", "")]),
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        KEY,
    );
    assert_refused(
        &["management"],
        &with(
            management_env(),
            &[("BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID", "")],
        ),
        "BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID",
        KEY,
    );
    assert_refused(&["migrate"], &[("DB_HOST", "db".into())], "DB_USER", KEY);
}

#[test]
fn core_without_api_keys_refuses_to_start_unless_auth_is_none() {
    let keyless = with(core_env(), &[("BIOMETRIC_PASSKEY_CORE_API_KEYS", "")]);
    for args in [&["core"][..], &["check-config", "core"][..]] {
        let output = binary()
            .args(args)
            .envs(keyless.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}:\n{stderr}");
        let reasons: Vec<&str> = stderr.lines().skip(1).collect();
        assert_eq!(reasons.len(), 1, "one reason:\n{stderr}");
        assert!(
            reasons[0]
                .trim_start()
                .starts_with("BIOMETRIC_PASSKEY_CORE_API_KEYS:")
                && reasons[0].contains("BIOMETRIC_PASSKEY_CORE_API_AUTH=none"),
            "the reason names both variables:\n{stderr}"
        );
        for stream in [&output.stdout[..], &output.stderr[..]] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(SENTINEL) && !text.contains(KEY), "{text}");
        }
    }
    let opted_out = with(keyless, &[("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none")]);
    let output = binary()
        .args(["check-config", "core"])
        .envs(opted_out.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains("not a setting"),
        "the variable is known: {stderr}"
    );
}

#[test]
fn contradictory_or_unknown_core_api_auth_is_refused() {
    for args in [&["core"][..], &["check-config", "core"][..]] {
        assert_refused(
            args,
            &with(core_env(), &[("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none")]),
            "BIOMETRIC_PASSKEY_CORE_API_AUTH",
            API_KEY,
        );
        assert_refused(
            args,
            &with(core_env(), &[("BIOMETRIC_PASSKEY_CORE_API_AUTH", "off")]),
            "BIOMETRIC_PASSKEY_CORE_API_AUTH",
            API_KEY,
        );
    }
    assert_refused(
        &["core"],
        &with(
            core_env(),
            &[("BIOMETRIC_PASSKEY_CORE_API_KEYS", "too-short-SENTINEL")],
        ),
        "BIOMETRIC_PASSKEY_CORE_API_KEYS",
        "too-short-SENTINEL",
    );
}

#[test]
fn a_bad_data_encryption_key_is_refused_without_being_printed() {
    let var = "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY";
    let short = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw"; // 31 bytes
    let padded = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let standard_alphabet = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eH/A";
    let long = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh"; // 33 bytes
    for bad in [short, padded, standard_alphabet, long, SENTINEL] {
        assert_refused(
            &["check-config", "core"],
            &with(core_env(), &[(var, bad)]),
            var,
            bad,
        );
    }
}

#[test]
fn a_bad_key_id_is_refused() {
    let var = "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID";
    let too_long = "k".repeat(65);
    for bad in [too_long.as_str(), "key id", "key/1", "ключ"] {
        assert_refused(
            &["check-config", "core"],
            &with(core_env(), &[(var, bad)]),
            var,
            KEY,
        );
    }
}

#[test]
fn more_idle_than_open_connections_is_refused() {
    let env = with(
        core_env(),
        &[("DB_MAX_OPEN_CONNS", "2"), ("DB_MAX_IDLE_CONNS", "3")],
    );
    assert_refused(&["check-config", "core"], &env, "DB_MAX_IDLE_CONNS", KEY);
}

#[test]
fn unknown_idv_mode_or_region_is_refused() {
    let env = with(
        core_env(),
        &[("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "mock")],
    );
    assert_refused(
        &["check-config", "core"],
        &env,
        "BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE",
        KEY,
    );
    let env = with(core_env(), &[("BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION", "au")]);
    assert_refused(
        &["check-config", "core"],
        &env,
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_REGION",
        KEY,
    );
}

#[test]
fn onfido_mode_without_its_credentials_is_refused() {
    for var in [
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
    ] {
        let env = with(core_env(), &[(var, "")]);
        assert_refused(&["check-config", "core"], &env, var, KEY);
        assert_refused(&["core"], &env, var, KEY);
    }
}

/// A slug (the form of the earlier example values) would make every run
/// creation fail at the provider: `core` refuses to start instead.
#[test]
fn a_slug_workflow_id_is_refused_at_start_up_in_onfido_mode() {
    let var = "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID";
    let env = with(core_env(), &[(var, "biometric-passkey-step-up")]);
    assert_refused(&["check-config", "core"], &env, var, KEY);
    assert_refused(&["core"], &env, var, KEY);
}

#[test]
fn management_issuer_and_jwks_must_be_https_unless_loopback() {
    for var in [
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
    ] {
        let env = with(management_env(), &[(var, "http://issuer.example.com/")]);
        assert_refused(&["check-config", "management"], &env, var, KEY);
    }
    let env = with(
        management_env(),
        &[
            (
                "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
                "http://127.0.0.1:9000/",
            ),
            (
                "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
                "http://localhost:9000/jwks",
            ),
        ],
    );
    let output = binary()
        .args(["check-config", "management"])
        .envs(env)
        .output()
        .unwrap();
    assert!(output.status.success());
}

#[test]
fn management_with_partition_maintenance_enabled_is_refused() {
    let env = with(
        management_env(),
        &[(
            "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
            "true",
        )],
    );
    assert_refused(
        &["check-config", "management"],
        &env,
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        KEY,
    );
    assert_refused(
        &["management"],
        &env,
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        KEY,
    );
}

#[test]
fn unparsable_durations_are_refused() {
    for var in [
        "DB_CONN_MAX_LIFETIME",
        "DB_CONN_MAX_IDLE_TIME",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_MAX_AGE",
    ] {
        assert_refused(
            &["check-config", "core"],
            &with(core_env(), &[(var, "5 minutes")]),
            var,
            KEY,
        );
    }
    let env = with(
        management_env(),
        &[("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW", "30")],
    );
    assert_refused(
        &["check-config", "management"],
        &env,
        "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_CLOCK_SKEW",
        KEY,
    );
}

#[test]
fn an_unknown_log_level_is_refused() {
    let env = with(core_env(), &[("BIOMETRIC_PASSKEY_LOG_LEVEL", "verbose")]);
    assert_refused(
        &["check-config", "core"],
        &env,
        "BIOMETRIC_PASSKEY_LOG_LEVEL",
        KEY,
    );
    assert_refused(
        &["check-config", "migrate"],
        &with(env, &[]),
        "BIOMETRIC_PASSKEY_LOG_LEVEL",
        KEY,
    );
}

fn pg_env(db: &store_conformance::postgres::TestDatabase) -> Vec<(&'static str, String)> {
    vec![
        ("DB_HOST", format!("{}:{}", db.host, db.port)),
        ("DB_USER", db.user.clone()),
        ("DB_PASSWORD", db.password.clone()),
        ("DB_NAME", db.database.clone()),
        ("DB_SSLMODE", "disable".into()),
    ]
}

#[tokio::test]
async fn migrate_twice_on_postgres_changes_nothing_the_second_time() {
    let db = fresh_database().await;
    let first = binary().arg("migrate").envs(pg_env(&db)).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let count = || async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url())
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        (n, tables)
    };
    let after_first = count().await;
    assert!(after_first.0 > 0);

    let second = binary().arg("migrate").envs(pg_env(&db)).output().unwrap();
    let log = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{log}");
    assert!(
        log.contains(r#""applied":"[]""#),
        "the second run applied nothing:\n{log}"
    );
    assert_eq!(count().await, after_first);
    assert!(
        !log.contains(&db.password) || db.password.is_empty(),
        "the password was logged"
    );
}

#[test]
fn migrate_against_an_unreachable_database_fails_clearly() {
    let env = vec![
        ("DB_HOST", "127.0.0.1:1".to_owned()),
        ("DB_USER", "bp".into()),
        ("DB_NAME", "bp".into()),
        ("DB_PASSWORD", SENTINEL.into()),
    ];
    let output = binary().arg("migrate").envs(env).output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        log.contains("while applying PostgreSQL migrations"),
        "{log}"
    );
    assert!(!log.contains(SENTINEL));
}

#[tokio::test]
async fn core_serves_health_while_the_database_is_down_and_stops_on_sigterm() {
    let port = free_port();
    let child = binary()
        .arg("core")
        .envs(with(
            core_env(),
            &[
                ("PORT", &port.to_string()),
                ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_for_health(port).await;

    let health = reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/ready"))
        .header("x-request-id", "probe-ready-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "the database (port 1) is down");

    let probe = binary()
        .args(["healthcheck", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(probe.status.success());

    running.terminate();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful shutdown exits 0");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut running.0.stdout.take().unwrap(), &mut log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON lines only:\n{log}")))
        .collect();
    // Logs are written by a thread of their own; a graceful stop writes out
    // what was queued, here the line of the last request.
    let served = lines
        .iter()
        .find(|l| l["message"] == "request served" && l["correlation_id"] == "probe-ready-1")
        .unwrap_or_else(|| panic!("a line for the readiness request:\n{log}"));
    assert_eq!(served["path"], "/api/ready");
    assert_eq!(served["method"], "GET");
    assert_eq!(served["status"], 503);
    assert!(served["latency_ms"].is_number());
    assert!(!log.contains(SENTINEL));
    // The keys are announced by fingerprint, never by value.
    let fingerprint = core_api::auth::KeyId::of_key(API_KEY);
    let announced = lines
        .iter()
        .find(|l| l["api_keys"].is_string())
        .unwrap_or_else(|| panic!("a line naming the keys' fingerprints:\n{log}"));
    assert_eq!(announced["api_keys"], fingerprint.as_str());
    assert!(!log.contains(API_KEY));
}

/// A rolling deploy loses no call: after SIGTERM the runtime says it is not
/// ready at once, and goes on serving through the drain before its listener
/// closes, so load balancers take it out while it still answers.
#[tokio::test]
async fn after_sigterm_readiness_turns_false_while_the_runtime_still_serves() {
    let port = free_port();
    let child = binary()
        .arg("core")
        .envs(with(
            core_env(),
            &[
                ("PORT", &port.to_string()),
                ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
                ("BIOMETRIC_PASSKEY_SHUTDOWN_DRAIN", "3s"),
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_for_health(port).await;
    running.terminate();
    // Readiness turns false (with its own message, the database being down
    // here anyway) while health and the API still answer on the same listener.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let ready = loop {
        let ready: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/api/ready"))
            .send()
            .await
            .expect("the listener is still open during the drain")
            .json()
            .await
            .unwrap();
        if ready["error"]["message"] == "the runtime is shutting down" {
            break ready;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never said shutting down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["error"]["code"], "not_ready");
    let health = client
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .await
        .expect("still served during the drain");
    assert_eq!(health.status(), 200);
    assert!(
        running.0.try_wait().unwrap().is_none(),
        "still running during the drain"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after the drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful shutdown exits 0");
}

#[tokio::test]
async fn core_with_auth_none_starts_and_warns_that_only_the_network_protects_it() {
    let port = free_port();
    let child = binary()
        .arg("core")
        .envs(with(
            core_env(),
            &[
                ("PORT", &port.to_string()),
                ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
                ("BIOMETRIC_PASSKEY_CORE_API_KEYS", ""),
                ("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none"),
            ],
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_for_health(port).await;
    running.terminate();
    let status = running.0.wait().unwrap();
    assert!(status.success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut running.0.stdout.take().unwrap(), &mut log).unwrap();
    let warning = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("BIOMETRIC_PASSKEY_CORE_API_AUTH=none"))
        });
    assert!(
        warning.is_some_and(|w| w["message"].as_str().unwrap().contains("only the network")),
        "a warning at start:\n{log}"
    );
    assert!(!log.contains("api_keys"), "no keys to announce:\n{log}");
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let probe = binary()
        .args(["healthcheck", "--port", &free_port().to_string()])
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(1));
}

#[test]
fn generated_keys_are_taken_by_the_configuration() {
    let output = binary()
        .args(["keys", "generate", "--id", "key-2027-q1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let lines = String::from_utf8(output.stdout).unwrap();
    let value = |name: &str| {
        lines
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let output = binary().args(["keys", "api-key"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let api_key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_owned();
    let data_key = value("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY");
    let env = with(
        core_env(),
        &[
            (
                "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID",
                &value("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID"),
            ),
            ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", &data_key),
            ("BIOMETRIC_PASSKEY_CORE_API_KEYS", &api_key),
        ],
    );
    let output = binary()
        .args(["check-config", "core"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = binary()
        .args(["keys", "generate", "--id", "has space"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "no key printed on a refusal");
}

#[test]
fn keys_status_counts_sealed_values_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = binary()
        .args(["keys", "status"])
        .env("BIOMETRIC_PASSKEY_STORE", "sqlite")
        .env(
            "BIOMETRIC_PASSKEY_SQLITE_PATH",
            dir.path().join("bp.sqlite3"),
        )
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID", "key-2026")
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("key-2026: 0 values in all"), "{stdout}");
    assert!(!stdout.contains(KEY));
}

/// A provider clean-up whose applicant is sealed under `key`, written the
/// way the Core API writes it.
async fn clean_up_sealed_under(path: &std::path::Path, key: &DataKey) {
    let store = SqliteStore::open(&SqliteSettings::new(path)).await.unwrap();
    store.migrate().await.unwrap();
    let user = uuid::Uuid::now_v7();
    let row = RowKey::Id(user);
    let sealed = key.seal(
        b"applicant-1",
        SealedColumn::CleanupApplicant.binding(&row.binding_row()),
    );
    sqlx::query(
        "INSERT INTO provider_cleanups (user_id, customer_user_id, applicant_sealed, requested_at) \
         VALUES (?, 'ps-1', ?, 0)",
    )
    .bind(user.as_bytes().as_slice())
    .bind(sealed)
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
}

fn keys_command(action: &str, path: &std::path::Path, previous: Option<&str>) -> Output {
    let mut cmd = binary();
    cmd.args(["keys", action])
        .env("BIOMETRIC_PASSKEY_STORE", "sqlite")
        .env("BIOMETRIC_PASSKEY_SQLITE_PATH", path)
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY_ID", "key-b")
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", OTHER_KEY);
    if let Some(previous) = previous {
        cmd.env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_PREVIOUS_KEYS", previous);
    }
    cmd.output().unwrap()
}

const OTHER_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

#[tokio::test]
async fn keys_reseal_moves_values_onto_the_current_key_and_names_what_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bp.sqlite3");
    let a = DataKey::from_base64url(KeyId::parse("key-a").unwrap(), KEY).unwrap();
    clean_up_sealed_under(&path, &a).await;

    // Without key A, the value is named and left as it is.
    let output = keys_command("reseal", &path, None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("1 values sealed under key \"key-a\", which is not configured"),
        "{stderr}"
    );

    // With A given as an earlier key, it is re-sealed under B.
    let output = keys_command("reseal", &path, Some(&format!("key-a:{KEY}")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("re-sealing 1 values under key key-b"),
        "{stdout}"
    );
    assert!(stdout.contains("re-sealed 1 values"), "{stdout}");
    assert!(!stdout.contains(KEY) && !stdout.contains(OTHER_KEY));
    let output = keys_command("status", &path, None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "A is no longer needed: {stdout}"
    );
    assert!(stdout.contains("key-b: 1 values in all"), "{stdout}");
    assert!(!stdout.contains("key-a"), "{stdout}");
}
