//! `biometric-passkey credentials export` as operators run it: configured
//! like the Core API, the export on standard output, the exit status saying
//! whether it is complete. What the lines hold is tested end to end in
//! `crates/testkit/tests/end_to_end/credential_export.rs`.

use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

fn run(database: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("biometric-passkey")
        .unwrap()
        .env_clear()
        .env("BIOMETRIC_PASSKEY_STORE", "sqlite")
        .env(
            "BIOMETRIC_PASSKEY_SQLITE_PATH",
            database.display().to_string(),
        )
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY)
        .env("BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE", "synthetic")
        .env("BIOMETRIC_PASSKEY_CORE_API_AUTH", "none")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_export_has_its_header_and_end_lines_and_an_unknown_user_fails() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("bp.sqlite3");
    let migrated = run(&database, &["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");

    let output = run(
        &database,
        &["credentials", "export", "--exported-by", "ops@example"],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["format"], "biometric-passkey.credentials");
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(
        lines[1],
        serde_json::json!({"end": {"users": 0, "credentials": 0}})
    );

    let unknown = run(&database, &["credentials", "export", "--user", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stdout.is_empty(), "nothing is written");

    let malformed = run(&database, &["credentials", "export", "--user", "a b"]);
    assert_eq!(malformed.status.code(), Some(2));
}
