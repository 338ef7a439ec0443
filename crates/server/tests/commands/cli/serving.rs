//! Migrations, serving and shutdown through the binary: `migrate` twice on
//! PostgreSQL and against an unreachable database, health and readiness
//! while the database is down and after SIGTERM, `CORE_API_AUTH=none`'s
//! warning, and `healthcheck` with nothing answering.

use super::*;

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
