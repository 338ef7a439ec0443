//! Stamps the binary with its commit and build time for `/api/version`.
//!
//! The build time is the source's commit time (or `SOURCE_DATE_EPOCH`), so two
//! builds of the same commit are identical. Release builds may pass
//! `BIOMETRIC_PASSKEY_BUILD_COMMIT` where no `.git` folder exists.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=BIOMETRIC_PASSKEY_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for path in ["../../.git/HEAD", "../../.git/logs/HEAD"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("BIOMETRIC_PASSKEY_BUILD_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let build_time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|epoch| {
            git(&["log", "-1", "--format=%cI", &format!("--before=@{epoch}")])
                .or(Some(format!("@{epoch}")))
        })
        .or_else(|| git(&["log", "-1", "--format=%cI"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BIOMETRIC_PASSKEY_COMMIT={commit}");
    println!("cargo:rustc-env=BIOMETRIC_PASSKEY_BUILD_TIME={build_time}");
}
