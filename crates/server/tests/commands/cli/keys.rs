//! The `keys` commands: generated keys taken by the configuration, the count
//! of sealed values per key, and the re-seal onto the current key.

use super::*;

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
