//! The `biometric-passkey` binary as operators run it: configuration refusals,
//! migrations, serving, health checks and shutdown.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use domain::rotation::{RowKey, SealedColumn};
use domain::sealing::{DataKey, KeyId};
use store_conformance::postgres::fresh_database;
use store_sqlite::{SqliteSettings, SqliteStore};

use crate::support::{Running, free_port, wait_for_health};

mod keys;
mod serving;

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
