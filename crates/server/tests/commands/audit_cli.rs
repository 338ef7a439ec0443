//! The `audit` commands as operators run them against PostgreSQL: maintain,
//! verify, archive — and retention that waits for the archive.

use std::io::Read;
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use domain::{Actor, AuditEventType, NewAuditEvent, Subject};
use sha2::Digest;
use store_conformance::postgres::{TestDatabase, fresh_database};
use time::macros::datetime;

const KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";

fn audit(db: &TestDatabase, args: &[&str]) -> Output {
    let mut cmd = Command::cargo_bin("biometric-passkey").unwrap();
    cmd.env_clear()
        .env("DB_HOST", format!("{}:{}", db.host, db.port))
        .env("DB_USER", &db.user)
        .env("DB_PASSWORD", &db.password)
        .env("DB_NAME", &db.database)
        .env("DB_SSLMODE", "disable")
        .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY)
        .env("BIOMETRIC_PASSKEY_AUDIT_PARTITION_RETENTION_MONTHS", "1")
        .env("USER", "ops-tester");
    if !args.is_empty() {
        cmd.arg("audit").args(args);
    } else {
        cmd.arg("migrate");
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn sql(db: &TestDatabase, statement: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url())
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

async fn append(db: &TestDatabase, at: time::OffsetDateTime, reason: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url())
        .await
        .unwrap();
    let e = NewAuditEvent {
        reason: Some(reason.into()),
        ..NewAuditEvent::new(
            AuditEventType::CredentialRevoked,
            Actor::Operator("auth0|1".into()),
            Subject::default(),
            at,
        )
    };
    sqlx::query(
        "INSERT INTO audit_events (id, occurred_at, event_type, actor_kind, actor_id, outcome, \
         reason, details) VALUES ($1, $2, $3, 'operator', 'auth0|1', 'success', $4, '{}')",
    )
    .bind(e.id)
    .bind(e.occurred_at)
    .bind(e.event_type.as_str())
    .bind(reason)
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn archive_then_retention_then_verification_catches_an_edit() {
    let db = fresh_database().await;
    assert!(audit(&db, &[]).status.success(), "migrate");
    for (i, at) in [
        datetime!(2020-03-01 00:00 UTC),
        datetime!(2020-03-15 12:00 UTC),
        datetime!(2020-03-31 23:59:59.999999 UTC),
    ]
    .into_iter()
    .enumerate()
    {
        append(&db, at, &format!("march {i}")).await;
    }
    append(&db, datetime!(2020-04-02 00:00 UTC), "april").await;

    // Past the window but not archived: kept, and said so.
    let maintained = audit(&db, &["maintain"]);
    assert!(maintained.status.success(), "{maintained:?}");
    let out = stdout(&maintained);
    assert!(
        out.contains("kept without archive: 2020-03 2020-04"),
        "{out}"
    );
    assert!(out.contains("events sealed: 4"), "{out}");
    let logs = String::from_utf8_lossy(&maintained.stderr);
    assert!(logs.contains("audit_retention_blocked"), "{logs}");

    let verified = audit(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    assert!(stdout(&verified).contains("no findings"));

    // The archive: complete, deterministic, recorded once.
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().to_str().unwrap();
    let archived = audit(&db, &["archive", "--month", "2020-03", "--output", output]);
    assert!(archived.status.success(), "{archived:?}");
    let path = dir.path().join("biometric-passkey-audit-2020-03.jsonl.gz");
    let bytes = std::fs::read(&path).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    assert!(stdout(&archived).contains(&sha), "{}", stdout(&archived));
    let mut lines = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut lines)
        .unwrap();
    let reasons: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons, ["march 0", "march 1", "march 2"]);
    let again = audit(&db, &["archive", "--month", "2020-03", "--output", output]);
    assert!(again.status.success(), "{again:?}");
    assert!(
        stdout(&again).contains("nothing changed"),
        "{}",
        stdout(&again)
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the same bytes");

    // Now retention lets March go; April still waits for its archive.
    let maintained = audit(&db, &["maintain"]);
    let out = stdout(&maintained);
    assert!(out.contains("months dropped: 2020-03"), "{out}");
    assert!(out.contains("kept without archive: 2020-04"), "{out}");
    let verified = audit(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));

    // An edit behind the product's back is found.
    sql(
        &db,
        "UPDATE audit_events SET reason = 'nothing to see' WHERE reason = 'april'",
    )
    .await;
    let verified = audit(&db, &["verify", "--json"]);
    assert_eq!(verified.status.code(), Some(3), "{}", stdout(&verified));
    let report: serde_json::Value = serde_json::from_str(&stdout(&verified)).unwrap();
    assert_eq!(report["findings"][0]["finding"], "edited");
    assert_eq!(report["findings"][0]["month"], "2020-04");

    // A month still running cannot be archived.
    let unfinished = audit(&db, &["archive", "--month", "2999-01", "--output", output]);
    assert_eq!(unfinished.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unfinished.stderr).contains("has not ended"));
}

#[test]
fn an_unreachable_database_is_a_clear_failure_that_prints_no_secret() {
    const SENTINEL: &str = "SENTINEL-audit-password-5c1e";
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "maintain"],
        vec!["audit", "archive", "--month", "2020-01", "--output", "/tmp"],
    ] {
        let out = Command::cargo_bin("biometric-passkey")
            .unwrap()
            .env_clear()
            .env("DB_HOST", "127.0.0.1:1")
            .env("DB_USER", "bp")
            .env("DB_PASSWORD", SENTINEL)
            .env("DB_NAME", "bp")
            .env("DB_SSLMODE", "disable")
            .env("BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY", KEY)
            .args(&args)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("database unavailable"),
            "{args:?}: {stderr}"
        );
        assert!(!stdout.contains(SENTINEL) && !stderr.contains(SENTINEL));
    }
}

/// A pod with no writable volume archives to standard output; the manifest is
/// recorded only once the received file's SHA-256 is confirmed.
#[tokio::test]
async fn an_archive_to_standard_output_is_recorded_only_once_confirmed() {
    let db = fresh_database().await;
    assert!(audit(&db, &[]).status.success(), "migrate");
    append(&db, datetime!(2020-05-03 10:00 UTC), "may 0").await;
    append(&db, datetime!(2020-05-20 10:00 UTC), "may 1").await;

    let streamed = audit(&db, &["archive", "--month", "2020-05", "--output", "-"]);
    assert!(streamed.status.success(), "{streamed:?}");
    let bytes = streamed.stdout.clone();
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    let said = String::from_utf8_lossy(&streamed.stderr);
    assert!(
        said.contains(&sha),
        "the SHA-256 to check is printed: {said}"
    );
    let mut lines = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut lines)
        .unwrap();
    assert_eq!(lines.lines().count(), 2);
    // Nothing recorded yet: retention keeps the month.
    let kept = stdout(&audit(&db, &["maintain"]));
    assert!(kept.contains("kept without archive: 2020-05"), "{kept}");

    // A file that is not the month's archive is not confirmed.
    let wrong = hex::encode(sha2::Sha256::digest(b"something else"));
    let refused = audit(
        &db,
        &["archive", "--month", "2020-05", "--confirm-sha256", &wrong],
    );
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let kept = stdout(&audit(&db, &["maintain"]));
    assert!(kept.contains("kept without archive: 2020-05"), "{kept}");

    let confirmed = audit(
        &db,
        &["archive", "--month", "2020-05", "--confirm-sha256", &sha],
    );
    assert!(confirmed.status.success(), "{confirmed:?}");
    assert!(
        stdout(&confirmed).contains("manifest recorded"),
        "{}",
        stdout(&confirmed)
    );
    let dropped = stdout(&audit(&db, &["maintain"]));
    assert!(dropped.contains("months dropped: 2020-05"), "{dropped}");
    let verified = audit(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
}
