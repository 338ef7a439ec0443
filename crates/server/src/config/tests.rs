//! The configuration's rules, through the runtimes' `from_env` as an
//! operator meets them: one file per group of settings under `tests/`, and
//! here the environments they start from and the rules of the whole.

mod common;
mod database;
mod idv;
mod keys;
mod policy;
mod possession;
mod sign_in;
mod telemetry;

use std::time::Duration;

use store_postgres::{PgSettings, SslMode};

use super::reader::parse_bool;
use super::*;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
const API_KEY: &str = "integration-key-0123456789abcdefghijkl";

fn core_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("DB_HOST", "db.internal"),
        ("DB_USER", "bp"),
        ("DB_NAME", "biometric_passkey"),
        ("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY),
        ("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic"),
        (
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000001",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000002",
        ),
        (
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000003",
        ),
        ("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY),
    ];
    pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

fn management_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("DB_HOST", "db.internal"),
        ("DB_USER", "bp"),
        ("DB_NAME", "biometric_passkey"),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER",
            "https://issuer.example.com/",
        ),
        ("BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE", "bp-api"),
        (
            "BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL",
            "https://issuer.example.com/jwks.json",
        ),
        ("BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID", "bp-ui"),
    ];
    pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

fn pg(config: &CommonConfig) -> &PgSettings {
    match &config.database {
        DatabaseConfig::Postgres(settings) => settings,
        DatabaseConfig::Sqlite(_) => panic!("expected PostgreSQL"),
    }
}

fn variables(problems: &Problems) -> Vec<&'static str> {
    problems.0.iter().map(|p| p.variable).collect()
}

#[test]
fn core_defaults_follow_the_deployment_guide() {
    let config = CoreConfig::from_env(&core_env(&[])).unwrap();
    assert_eq!(config.common.port, 3000);
    assert_eq!(config.common.log_level, LogLevel::Info);
    let db = pg(&config.common);
    assert_eq!((db.host.as_str(), db.port), ("db.internal", 5432));
    assert_eq!(db.ssl_mode, SslMode::Disable);
    assert_eq!((db.max_open_conns, db.max_idle_conns), (4, 4));
    assert_eq!(db.conn_max_lifetime, Duration::from_secs(300));
    assert_eq!(db.conn_max_idle_time, Duration::from_secs(60));
    assert!(db.password.is_none());
    assert_eq!(config.data_key.id().as_str(), "default");
    assert_eq!(config.idv.onfido.region, "eu");
    assert_eq!(
        config.idv.onfido.base_url.as_str(),
        "https://api.eu.onfido.com/v3.6"
    );
    assert_eq!(config.idv.onfido.webhook_max_age, Duration::from_secs(900));
    assert!(
        config.audit.partition_maintenance_enabled,
        "on by default for Core"
    );
    assert_eq!(config.audit.retention_months, 0);
}

#[test]
fn every_problem_is_reported_at_once() {
    let env = Env::from_pairs([
        ("DB_SSLMODE", "sometimes"),
        ("BIOMETRIC_PASSKEY_LOG_LEVEL", "loud"),
    ]);
    let problems = CoreConfig::from_env(&env).unwrap_err();
    let vars = variables(&problems);
    for expected in [
        "DB_HOST",
        "DB_USER",
        "DB_NAME",
        "DB_SSLMODE",
        "BIOMETRIC_PASSKEY_LOG_LEVEL",
        "BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY",
        "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN",
        "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
    ] {
        assert!(vars.contains(&expected), "{expected} missing from {vars:?}");
    }
}

#[test]
fn management_refuses_partition_maintenance() {
    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        "true",
    )]);
    let problems = ManagementConfig::from_env(&env).unwrap_err();
    assert_eq!(
        variables(&problems),
        vec!["BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED"]
    );
    let env = management_env(&[(
        "BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED",
        "false",
    )]);
    assert!(ManagementConfig::from_env(&env).is_ok());
}

#[test]
fn booleans_follow_go() {
    for (raw, expected) in [
        ("1", true),
        ("TRUE", true),
        ("t", true),
        ("0", false),
        ("False", false),
    ] {
        assert_eq!(parse_bool(raw), Ok(expected));
    }
    assert!(parse_bool("yes").is_err());
}

#[test]
fn unknown_prefixed_variables_are_listed() {
    let env = Env::from_pairs([
        ("BIOMETRIC_PASSKEY_LOG_LEVLE", "debug"),
        ("BIOMETRIC_PASSKEY_LOG_LEVEL", "debug"),
    ]);
    assert_eq!(env.unknown_prefixed(), vec!["BIOMETRIC_PASSKEY_LOG_LEVLE"]);
}

#[test]
fn every_variable_is_documented() {
    let reference = include_str!("../../../../docs/configuration.md");
    let mut names: Vec<&str> = env::KNOWN_VARIABLES.to_vec();
    names.extend([
        "PORT",
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_NAME",
        "DB_SSLMODE",
        "DB_MAX_OPEN_CONNS",
        "DB_MAX_IDLE_CONNS",
        "DB_CONN_MAX_LIFETIME",
        "DB_CONN_MAX_IDLE_TIME",
    ]);
    for name in names {
        assert!(
            reference.contains(&format!("`{name}`")),
            "{name} is missing from docs/configuration.md"
        );
    }
}
