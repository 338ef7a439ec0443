//! `audit maintain|verify|archive`: the audit trail operated by hand
//! (see [`crate::audit`]).

use std::process::ExitCode;
use std::sync::Arc;

use domain::audit::month::Month;
use domain::audit::trail::{ArchiveRecorded, AuditTrail};

use super::{failed, refuse, warn_unknown};
use crate::config::{AuditToolConfig, Env};
use crate::{app, audit, telemetry};

/// Exit code of `audit verify` when it found something.
pub const EXIT_FINDINGS: u8 = 3;

async fn audit_trail(env: &Env) -> Result<AuditTrail, ExitCode> {
    let config = AuditToolConfig::from_env(env).map_err(|problems| refuse("audit", &problems))?;
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let repo = app::open_repository(&config.database)
        .await
        .map_err(|e| failed(&e))?;
    Ok(audit::trail(
        repo,
        Arc::new(app::SystemClock),
        &config.data_key,
        &config.audit,
    ))
}

#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn audit_maintain(env: &Env) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    match audit::maintain_once(&trail).await {
        Ok(report) if !report.leader => {
            println!("another maintainer is running; nothing done");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!(
                "partitions created: {}; months dropped: {}; kept without archive: {}; \
                 kept with changed rows: {}; events sealed: {}{}",
                list(&report.created),
                list(&report.dropped),
                list(&report.kept_unarchived),
                list(&report.kept_changed),
                report.sealed_events,
                if report.sealing_deferred {
                    format!("; {}", audit::SEALING_DEFERRED)
                } else {
                    String::new()
                }
            );
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn list(months: &[Month]) -> String {
    if months.is_empty() {
        return "none".to_owned();
    }
    months
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn audit_verify(env: &Env, month: Option<Month>, json: bool) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    let report = match trail.verify(month).await {
        Ok(report) => report,
        Err(e) => return failed(&anyhow::Error::new(e).context("while verifying the audit trail")),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "seals: {} (covering positions up to {})",
            report.seals, report.sealed_upto
        );
        for m in &report.months {
            println!(
                "{}  events {:>8}  sealed {:>8}  pending {:>6}{}",
                m.month,
                m.events,
                m.sealed,
                m.pending,
                if m.archived { "  archived" } else { "" }
            );
        }
        if report.findings.is_empty() {
            println!("no findings: every sealed event is present, unaltered and in place");
        }
        for finding in &report.findings {
            println!(
                "FINDING {}",
                serde_json::to_string(finding).unwrap_or_default()
            );
        }
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FINDINGS)
    }
}

/// Where `audit archive` puts a month.
pub enum ArchiveTarget {
    /// A file in this directory; the manifest is recorded.
    Directory(std::path::PathBuf),
    /// Standard output; nothing is recorded.
    Stdout,
    /// Nowhere: the month is archived again to check this SHA-256, and its
    /// manifest recorded when it matches.
    Confirm(String),
}

pub async fn audit_archive(
    env: &Env,
    month: Month,
    target: ArchiveTarget,
    archived_by: &str,
) -> ExitCode {
    let trail = match audit_trail(env).await {
        Ok(trail) => trail,
        Err(code) => return code,
    };
    match target {
        ArchiveTarget::Directory(dir) => {
            archive_to_directory(&trail, month, &dir, archived_by).await
        }
        ArchiveTarget::Stdout => archive_to_stdout(&trail, month).await,
        ArchiveTarget::Confirm(sha256) => {
            confirm_archive(&trail, month, &sha256, archived_by).await
        }
    }
}

/// The archive on standard output, and on standard error how to record it.
#[allow(clippy::print_stderr)]
async fn archive_to_stdout(trail: &AuditTrail, month: Month) -> ExitCode {
    let stdout = std::io::stdout().lock();
    match audit::archive_to(trail, month, stdout).await {
        Ok(m) => {
            eprintln!(
                "archived {month}: {} events, sha256 {}. No manifest is recorded yet: check \
                 the received file (`sha256sum`), then run `biometric-passkey audit archive \
                 --month {month} --confirm-sha256 {}` to record it (which lets retention \
                 drop the month).",
                m.row_count, m.sha256, m.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e.context(format!("while archiving {month}"))),
    }
}

/// Records the manifest of a month archived to standard output, when it
/// still archives to `sha256`.
#[allow(clippy::print_stdout, clippy::print_stderr)] // The report is the command's output.
async fn confirm_archive(
    trail: &AuditTrail,
    month: Month,
    sha256: &str,
    archived_by: &str,
) -> ExitCode {
    match audit::confirm(trail, month, sha256, archived_by).await {
        Ok(Some((m, recorded))) => {
            println!(
                "{month}: {} events, sha256 {}; manifest {}",
                m.row_count,
                m.sha256,
                match recorded {
                    ArchiveRecorded::New => "recorded",
                    ArchiveRecorded::AlreadyRecorded => "already recorded",
                    ArchiveRecorded::Differs(_) => {
                        "NOT recorded: an earlier manifest of other contents stands"
                    }
                }
            );
            if matches!(recorded, ArchiveRecorded::Differs(_)) {
                ExitCode::from(EXIT_FINDINGS)
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(None) => {
            eprintln!(
                "{month} does not archive to sha256 {sha256} now: the file received is \
                 not this month's archive as stored (or the trail changed; run \
                 `biometric-passkey audit verify`). Nothing recorded."
            );
            ExitCode::from(EXIT_FINDINGS)
        }
        Err(e) => failed(&e.context(format!("while checking the archive of {month}"))),
    }
}

/// The archive as a file in `output`, its manifest recorded.
#[allow(clippy::print_stdout, clippy::print_stderr)] // The report is the command's output.
async fn archive_to_directory(
    trail: &AuditTrail,
    month: Month,
    output: &std::path::Path,
    archived_by: &str,
) -> ExitCode {
    let archived = match audit::archive(trail, month, output, archived_by).await {
        Ok(archived) => archived,
        Err(e) => return failed(&e.context(format!("while archiving {month}"))),
    };
    let m = &archived.manifest;
    match archived.recorded {
        ArchiveRecorded::New => {
            println!(
                "archived {month}: {} events to {} (sha256 {}); manifest recorded",
                m.row_count,
                archived.path.display(),
                m.sha256
            );
            ExitCode::SUCCESS
        }
        ArchiveRecorded::AlreadyRecorded => {
            println!(
                "{month} was archived before with the same {} events (sha256 {}); nothing changed",
                m.row_count, m.sha256
            );
            ExitCode::SUCCESS
        }
        ArchiveRecorded::Differs(earlier) => {
            eprintln!(
                "{month} was archived on {} with {} events (sha256 {}); it now has {} events \
                 (sha256 {}). The trail of that month changed: run `biometric-passkey audit verify`. \
                 The new export is kept apart at {}; the earlier manifest stands.",
                earlier.archived_at,
                earlier.row_count,
                earlier.sha256,
                m.row_count,
                m.sha256,
                archived.path.display()
            );
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}
