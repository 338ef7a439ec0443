//! The audit trail's operations: the Core API's maintenance loop, and the
//! `audit` commands (maintain, verify, archive) operators run by hand.

use std::fs::{self, File};
use std::future::Future;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use domain::Repository;
use domain::audit::month::Month;
use domain::audit::trail::{
    ArchiveManifest, ArchiveRecorded, AuditPolicy, AuditTrail, MaintenanceReport, SealPacer,
};
use domain::clock::Clock;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::config::AuditConfig;
use crate::metrics::Metrics;

/// How often the Core API maintains (and seals) the audit trail. Often, so
/// that each run seals a few seconds' events rather than a burst of a minute's
/// (which showed as a latency spike under load), and unsealed events are at
/// most this old.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);

/// The events read per page while archiving.
const ARCHIVE_PAGE: u32 = 1_000;

pub fn trail(
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    key: &domain::sealing::DataKey,
    audit: &AuditConfig,
) -> AuditTrail {
    AuditTrail::new(
        repo,
        clock,
        key.audit_keys(),
        AuditPolicy {
            retention_months: audit.retention_months,
            ..AuditPolicy::default()
        },
    )
}

/// The pause between two sealing steps of the runtime's maintenance. A step
/// seals up to a thousand events (a few milliseconds of the maintainer's
/// task, and a read and a write of PostgreSQL); back to back, the steps for
/// ten busy seconds made a burst that held up requests for a few hundred
/// milliseconds. Paced, the maintainer still seals more than 10 000 events a
/// second, far above what the Core API writes.
pub const SEAL_STEP_PAUSE: Duration = Duration::from_millis(50);

/// What a run that could not seal says (log line and `audit maintain`).
pub const SEALING_DEFERRED: &str = "audit sealing deferred to the next run: the audit table is \
     held by a vacuum, an analyze or a long insert";

struct SealPause;

#[async_trait]
impl SealPacer for SealPause {
    async fn between_steps(&self) {
        tokio::time::sleep(SEAL_STEP_PAUSE).await;
    }
}

/// Maintains the trail every [`MAINTENANCE_EVERY`] until `shutdown` resolves,
/// sealing a backlog in paced steps ([`SEAL_STEP_PAUSE`]); each run is
/// counted in `metrics`.
pub async fn maintenance_loop(
    trail: AuditTrail,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    let trail = trail.paced(Arc::new(SealPause));
    crate::app::every(MAINTENANCE_EVERY, shutdown, || async {
        let result = maintain_once(&trail).await;
        metrics.maintenance_ran(result.as_ref().ok());
    })
    .await;
}

/// One maintenance run, logged. Failures and months retention had to keep are
/// logged with an `alert` field operators can alert on.
pub async fn maintain_once(trail: &AuditTrail) -> Result<MaintenanceReport, domain::StoreError> {
    match trail.maintain().await {
        Ok(report) => {
            log_report(&report);
            Ok(report)
        }
        Err(e) => {
            tracing::error!(
                alert = "audit_maintenance_failed",
                error = %e,
                "audit maintenance failed"
            );
            Err(e)
        }
    }
}

fn months(list: &[Month]) -> String {
    list.iter()
        .map(Month::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn log_report(report: &MaintenanceReport) {
    if !report.leader {
        tracing::debug!("audit maintenance is running elsewhere; skipped");
        return;
    }
    for month in &report.created {
        tracing::info!(month = %month, "audit partition created");
    }
    for month in &report.dropped {
        tracing::info!(month = %month, "audit month dropped by retention (archived)");
    }
    if !report.kept_unarchived.is_empty() {
        tracing::warn!(
            alert = "audit_retention_blocked",
            months = months(&report.kept_unarchived),
            "audit months past the retention window are kept: they have no archive manifest; \
             run `biometric-passkey audit archive --month YYYY-MM`"
        );
    }
    if !report.kept_changed.is_empty() {
        tracing::warn!(
            alert = "audit_retention_blocked",
            months = months(&report.kept_changed),
            "audit months past the retention window are kept: their rows differ from their \
             archive manifest; run `biometric-passkey audit verify`"
        );
    }
    if report.sealing_deferred {
        tracing::info!("{SEALING_DEFERRED}");
    }
    if let Some(head) = report
        .seal_head
        .as_ref()
        .filter(|_| report.seals_written > 0)
    {
        tracing::info!(
            events = report.sealed_events,
            seal_no = head.seal_no,
            sealed_upto = head.to_seq,
            seal_mac = hex::encode(head.mac),
            "audit trail sealed"
        );
    }
}

/// What `audit archive` did.
#[derive(Debug)]
pub struct Archived {
    pub path: PathBuf,
    pub manifest: ArchiveManifest,
    pub recorded: ArchiveRecorded,
}

pub fn archive_file_name(month: Month) -> String {
    format!("biometric-passkey-audit-{month}.jsonl.gz")
}

/// Counts and hashes what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What writing a month's archive produced.
struct Written<W> {
    out: W,
    rows: i64,
    first: Option<time::OffsetDateTime>,
    last: Option<time::OffsetDateTime>,
    sha256: String,
}

/// Writes a finished month as gzip-compressed JSON lines (one event per
/// line, oldest position first, the audit API's shape) to `out`. The same
/// events always give the same bytes (gzip header time 0), so an archive can
/// be checked against a later run without keeping it.
async fn write_month<W: Write>(
    trail: &AuditTrail,
    month: Month,
    out: W,
) -> anyhow::Result<Written<W>> {
    if month.end() > trail.now() {
        bail!("{month} has not ended yet; only past months can be archived");
    }
    let mut gz = GzEncoder::new(
        Hashing {
            inner: out,
            sha256: Sha256::new(),
        },
        Compression::default(),
    );
    let repo = trail.repository();
    let (mut rows, mut first, mut last, mut after) = (0i64, None, None, 0);
    loop {
        let events = repo
            .audit_events_of_month(month, after, ARCHIVE_PAGE)
            .await?;
        let Some(tail) = events.last() else { break };
        after = tail.seq;
        for event in events {
            let at = event.event.occurred_at;
            first = Some(first.map_or(at, |f: time::OffsetDateTime| f.min(at)));
            last = Some(last.map_or(at, |l: time::OffsetDateTime| l.max(at)));
            rows += 1;
            serde_json::to_writer(&mut gz, &management::v1::event_response(event))?;
            gz.write_all(b"\n")?;
        }
    }
    let mut hashing = gz.finish()?;
    hashing.flush().context("while writing the archive")?;
    Ok(Written {
        sha256: hex::encode(hashing.sha256.finalize()),
        out: hashing.inner,
        rows,
        first,
        last,
    })
}

fn manifest_of<W>(
    written: &Written<W>,
    month: Month,
    now: time::OffsetDateTime,
    archived_by: &str,
) -> ArchiveManifest {
    ArchiveManifest {
        month,
        row_count: written.rows,
        first_occurred_at: written.first,
        last_occurred_at: written.last,
        sha256: written.sha256.clone(),
        file_name: archive_file_name(month),
        archived_at: now,
        archived_by: archived_by.to_owned(),
    }
}

/// Writes a finished month's archive to standard output (for a pod with no
/// writable volume: `kubectl exec … > file`) without recording a manifest:
/// nothing here can tell that the far end of the pipe kept the bytes. Check
/// the received file's SHA-256, then record it with [`confirm`].
pub async fn archive_to(
    trail: &AuditTrail,
    month: Month,
    out: impl Write,
) -> anyhow::Result<ArchiveManifest> {
    let written = write_month(trail, month, out).await?;
    Ok(manifest_of(&written, month, trail.now(), ""))
}

/// Records the manifest of a month archived to standard output, once the
/// operator has checked the received file: the month is written again,
/// nowhere, and its SHA-256 must be `sha256`. `Ok(None)` when it differs
/// (nothing recorded).
pub async fn confirm(
    trail: &AuditTrail,
    month: Month,
    sha256: &str,
    archived_by: &str,
) -> anyhow::Result<Option<(ArchiveManifest, ArchiveRecorded)>> {
    let written = write_month(trail, month, std::io::sink()).await?;
    if !written.sha256.eq_ignore_ascii_case(sha256) {
        return Ok(None);
    }
    let manifest = manifest_of(&written, month, trail.now(), archived_by);
    let recorded = trail.record_archive(&manifest).await?;
    Ok(Some((manifest, recorded)))
}

/// Exports a finished month to `dir` (see [`write_month`]) and records its
/// manifest. The file is complete and flushed to disk before the manifest is
/// recorded; a second run writes the same bytes and records nothing new. An
/// earlier archive of other contents is never overwritten.
pub async fn archive(
    trail: &AuditTrail,
    month: Month,
    dir: &Path,
    archived_by: &str,
) -> anyhow::Result<Archived> {
    let now = trail.now();
    if month.end() > now {
        bail!("{month} has not ended yet; only past months can be archived");
    }
    fs::create_dir_all(dir).with_context(|| format!("while creating {}", dir.display()))?;
    let file_name = archive_file_name(month);
    let path = dir.join(&file_name);
    let partial = dir.join(format!(".{file_name}.partial"));
    let file =
        File::create(&partial).with_context(|| format!("while creating {}", partial.display()))?;
    let written = write_month(trail, month, BufWriter::new(file)).await?;
    let manifest = manifest_of(&written, month, now, archived_by);
    let file = written
        .out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("while flushing the archive")?;
    file.sync_all()
        .context("while syncing the archive to disk")?;
    drop(file);
    let repo = trail.repository();
    let earlier = repo
        .audit_archives()
        .await?
        .into_iter()
        .find(|a| a.month == month);
    if let Some(earlier) = earlier.filter(|e| e.sha256 != manifest.sha256) {
        let kept = dir.join(format!(
            "{}.differs-{}",
            manifest.file_name,
            &manifest.sha256[..12]
        ));
        fs::rename(&partial, &kept)?;
        return Ok(Archived {
            path: kept,
            recorded: ArchiveRecorded::Differs(earlier),
            manifest,
        });
    }
    fs::rename(&partial, &path)
        .with_context(|| format!("while moving the archive to {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let recorded = trail.record_archive(&manifest).await?;
    Ok(Archived {
        path,
        manifest,
        recorded,
    })
}
