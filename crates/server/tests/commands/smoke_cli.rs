//! `biometric-passkey smoke` against real runtimes started from the binary:
//! `dev` passes every check; a Core API checked with a wrong key, or with its
//! management runtime stopped, fails exactly the checks that name it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

use crate::support::{Running, free_port, wait_for_health};

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
const API_KEY: &str = "integration-key-SENTINEL-0123456789abcdef";
const WRONG_KEY: &str = "integration-key-WRONG-SENTINEL-0123456789";

fn binary() -> Command {
    let mut cmd = Command::cargo_bin("biometric-passkey").unwrap();
    cmd.env_clear();
    cmd
}

/// `core` on SQLite in `dir`, with the Core API key, in the given IDV mode.
async fn core(dir: &Path, mode: &str) -> (Running, u16) {
    let port = free_port();
    let mut cmd = binary();
    cmd.arg("core")
        .env("PORT", port.to_string())
        .env("BIOMETRIC_PASSKEY_METRICS_PORT", "0")
        .env("BIOMETRIC_PASSKEY_STORE", "sqlite")
        .env(
            "BIOMETRIC_PASSKEY_SQLITE_PATH",
            dir.join("core.sqlite3").display().to_string(),
        )
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY)
        .env("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY)
        .env("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", mode)
        .env(
            "BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000001",
        )
        .env(
            "BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000002",
        )
        .env(
            "BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID",
            "0c6b0e4a-1111-4b5b-9a1e-000000000003",
        );
    if mode == "onfido" {
        // Nothing is called at start or by the checks: the provider is never reached.
        cmd.env("BIOMETRIC_PASSKEY_IDV_ONFIDO_API_TOKEN", "onfido-token")
            .env(
                "BIOMETRIC_PASSKEY_IDV_ONFIDO_WEBHOOK_SECRET",
                "webhook-secret",
            );
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_for_health(port).await;
    (running, port)
}

fn smoke(args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = binary()
        .arg("smoke")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for stream in [&stdout, &stderr] {
        assert!(!stream.contains(API_KEY), "the key was printed:\n{stream}");
        assert!(
            !stream.contains(WRONG_KEY),
            "the key was printed:\n{stream}"
        );
    }
    output
}

/// The verdict of each check, by name, from the `--json` report.
fn verdicts(output: &Output) -> Vec<(String, String)> {
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "one JSON document:\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn verdict<'a>(verdicts: &'a [(String, String)], name: &str) -> &'a str {
    verdicts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no check {name} in {verdicts:?}"))
}

#[tokio::test]
async fn every_check_passes_against_dev_and_the_journey_leaves_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let (core_port, management_port) = (free_port(), free_port());
    let child = binary()
        .arg("dev")
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(["--core-port", &core_port.to_string()])
        .args(["--management-port", &management_port.to_string()])
        .args(["--metrics-port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _dev = Running(child);
    wait_for_health(core_port).await;
    wait_for_health(management_port).await;
    let core_url = format!("http://127.0.0.1:{core_port}");
    let management_url = format!("http://127.0.0.1:{management_port}/");

    let output = smoke(
        &[
            "--core-url",
            &core_url,
            "--management-url",
            &management_url,
            "--journey",
        ],
        &[],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"smoke: all checks passed"), "{text}");
    for line in &lines[..lines.len() - 1] {
        assert!(
            line.starts_with("PASS ") || line.starts_with("SKIP "),
            "{text}"
        );
    }
    // dev takes calls without a key, and its synthetic provider receives no
    // webhooks: said, not failed.
    assert!(
        text.lines()
            .any(|l| l.starts_with("SKIP core.wrong_key_refused")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("PASS core.journey")),
        "{text}"
    );
    for name in [
        "management.runtime_config",
        "management.issuer_discovery",
        "management.issuer_jwks",
        "management.requires_token",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("PASS {name} "))),
            "{name}:\n{text}"
        );
    }

    // The throwaway user is gone.
    let journey = text
        .lines()
        .find(|l| l.starts_with("PASS core.journey"))
        .unwrap();
    let user = journey
        .split_whitespace()
        .find(|w| w.starts_with("smoke-"))
        .unwrap();
    let read = reqwest::get(format!("{core_url}/api/core/v1/users/{user}"))
        .await
        .unwrap();
    assert_eq!(read.status(), 404);

    let json = smoke(&["--core-url", &core_url, "--json"], &[]);
    assert_eq!(json.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(
        verdict(&verdicts(&json), "management"),
        "skip",
        "no --management-url"
    );
}

#[tokio::test]
async fn a_wrong_key_and_a_stopped_management_runtime_fail_their_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (_core, port) = core(dir.path(), "synthetic").await;
    let core_url = format!("http://127.0.0.1:{port}");
    // Nothing listens there: the management runtime is stopped.
    let stopped = format!("http://127.0.0.1:{}", free_port());

    // The key from the runtime's own variable; the management runtime down.
    let output = smoke(
        &[
            "--core-url",
            &core_url,
            "--management-url",
            &stopped,
            "--journey",
            "--json",
        ],
        &[("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY)],
    );
    assert_eq!(output.status.code(), Some(1));
    let v = verdicts(&output);
    for name in [
        "core.health",
        "core.ready",
        "core.version",
        "core.api_key_accepted",
        "core.wrong_key_refused",
        "core.unknown_user_refused",
        "core.journey",
    ] {
        assert_eq!(verdict(&v, name), "pass", "{name}: {v:?}");
    }
    assert_eq!(verdict(&v, "core.webhook_refuses_unsigned"), "skip");
    for name in [
        "management.runtime_config",
        "management.issuer_discovery",
        "management.issuer_jwks",
        "management.requires_token",
    ] {
        assert_eq!(verdict(&v, name), "fail", "{name}: {v:?}");
    }

    // A key the Core API does not hold: the checks that need it fail.
    let output = smoke(&["--core-url", &core_url, "--api-key", WRONG_KEY], &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for line in [
        "PASS core.health",
        "PASS core.ready",
        "PASS core.wrong_key_refused",
        "FAIL core.api_key_accepted",
        "FAIL core.unknown_user_refused",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}:\n{text}");
    }
    assert!(text.ends_with("check(s) failed\n"), "{text}");
}

#[tokio::test]
async fn in_onfido_mode_the_webhook_refuses_an_unsigned_delivery_and_no_journey_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_core, port) = core(dir.path(), "onfido").await;
    let core_url = format!("http://127.0.0.1:{port}");
    let output = smoke(
        &["--core-url", &core_url, "--journey", "--json"],
        &[("BIOMETRIC_PASSKEY_CORE_API_KEYS", API_KEY)],
    );
    assert_eq!(output.status.code(), Some(1));
    let v = verdicts(&output);
    assert_eq!(verdict(&v, "core.webhook_refuses_unsigned"), "pass");
    assert_eq!(verdict(&v, "core.api_key_accepted"), "pass");
    assert_eq!(verdict(&v, "core.wrong_key_refused"), "pass");
    assert_eq!(verdict(&v, "core.unknown_user_refused"), "pass");
    // The journey creates users and IDV runs: never against a real provider.
    assert_eq!(verdict(&v, "core.journey"), "fail");
}
