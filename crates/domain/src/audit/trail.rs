//! Operating the audit trail: partition maintenance, retention, sealing,
//! archive manifests and verification.
//!
//! The decisions live here (which months to create, which to drop, what to
//! seal); the stores carry them out through a [`MaintenanceLease`], which only
//! one maintainer at a time can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use super::integrity::{
    AuditKeyring, AuditKeys, ChainCheck, Finding, MonthCheck, Seal, SealHead, seal_batch,
};
use super::month::Month;
use super::{AuditEvent, NewAuditEvent};
use crate::clock::Clock;
use crate::store::{Repository, StoreResult};

/// The record that a month was exported: retention drops a month only when it
/// has one whose row count still matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveManifest {
    pub month: Month,
    pub row_count: i64,
    /// The oldest and newest event times in the file; `None` for an empty month.
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_occurred_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_occurred_at: Option<OffsetDateTime>,
    /// Lower-case hex SHA-256 of the archive file.
    pub sha256: String,
    pub file_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub archived_at: OffsetDateTime,
    pub archived_by: String,
}

/// What recording a manifest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveRecorded {
    New,
    /// The same month, rows and file were recorded before: nothing changed.
    AlreadyRecorded,
    /// The month was archived before with other contents: the trail of that
    /// month changed since. The first record stands.
    Differs(ArchiveManifest),
}

/// What recording `new` means when `existing` is already recorded for its month.
pub fn compare_archives(existing: ArchiveManifest, new: &ArchiveManifest) -> ArchiveRecorded {
    if existing.row_count == new.row_count && existing.sha256 == new.sha256 {
        ArchiveRecorded::AlreadyRecorded
    } else {
        ArchiveRecorded::Differs(existing)
    }
}

/// Exclusive access to the audit trail's maintenance, held by one maintainer
/// (PostgreSQL: a session advisory lock; SQLite: the write lock).
/// [`MaintenanceLease::release`] must be called; a lease dropped without it
/// gives its lock up when its connection closes.
#[async_trait]
pub trait MaintenanceLease: Send {
    /// Whether months are partitions (PostgreSQL) or rows of one table (SQLite).
    fn partitioned(&self) -> bool;
    /// Existing monthly partitions (none when not partitioned).
    async fn partitions(&mut self) -> StoreResult<Vec<Month>>;
    /// Months of events that sit in no monthly partition (PostgreSQL's default
    /// partition).
    async fn months_outside_partitions(&mut self) -> StoreResult<Vec<Month>>;
    /// Creates a month's partition, moving in its events from the default
    /// partition; returns how many moved.
    async fn create_partition(&mut self, month: Month) -> StoreResult<u64>;
    /// Months holding events (or a partition).
    async fn months_present(&mut self) -> StoreResult<Vec<Month>>;
    async fn count_month(&mut self, month: Month) -> StoreResult<i64>;
    async fn archive_of(&mut self, month: Month) -> StoreResult<Option<ArchiveManifest>>;
    /// Removes a month's events: drops its partition, or deletes its rows.
    async fn drop_month(&mut self, month: Month) -> StoreResult<()>;
    /// The highest position below which every event is committed and no
    /// transaction can still add one; `None` when that cannot be settled now
    /// without holding up the writers (the next run tries again).
    async fn seal_horizon(&mut self) -> StoreResult<Option<i64>>;
    async fn seal_head(&mut self) -> StoreResult<Option<SealHead>>;
    /// Events with `after < seq <= upto`, in `seq` order, at most `limit`.
    async fn events_between(
        &mut self,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// How many events sit past position `after` (those no seal covers yet).
    async fn count_after(&mut self, after: i64) -> StoreResult<u64>;
    async fn insert_seals(&mut self, seals: &[Seal]) -> StoreResult<()>;
    /// Rewrites existing seals (by `seal_no`) with the given key id, entries
    /// and MACs, all or none.
    async fn replace_seals(&mut self, seals: &[Seal]) -> StoreResult<()>;
    async fn release(self: Box<Self>) -> StoreResult<()>;
}

/// `BIOMETRIC_PASSKEY_AUDIT_PARTITION_*` and the sealing batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPolicy {
    /// 0 keeps every month. Otherwise the current month and this many before it
    /// are kept; older months go once archived.
    pub retention_months: u32,
    /// Partitions created ahead of the current month.
    pub months_ahead: u32,
    /// Most events per sealing step: each step's tags are computed in one go
    /// on the maintainer's task, so a step is kept to a few milliseconds.
    pub seal_batch: u32,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            retention_months: 0,
            months_ahead: 2,
            seal_batch: 1_000,
        }
    }
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// False when another maintainer held the lease: nothing was done.
    pub leader: bool,
    pub created: Vec<Month>,
    pub dropped: Vec<Month>,
    /// Past the retention window, kept: no archive manifest.
    pub kept_unarchived: Vec<Month>,
    /// Past the retention window, kept: rows differ from the archive manifest.
    pub kept_changed: Vec<Month>,
    pub sealed_events: u64,
    pub seals_written: u64,
    /// Sealing waited for the next run: the audit table was busy (a vacuum or
    /// an analyze holding it, or a long insert in flight).
    pub sealing_deferred: bool,
    pub seal_head: Option<SealHead>,
    /// Monthly partitions that exist beyond the current month after the run;
    /// `None` where months are not partitions (SQLite).
    pub partitions_ahead: Option<u32>,
    /// Events past the last seal when the run ended: written since its
    /// horizon, or all of them past the head when sealing was deferred.
    pub awaiting_sealing: u64,
}

impl MaintenanceReport {
    /// Whether retention had to keep months it should have dropped.
    pub fn retention_blocked(&self) -> bool {
        !self.kept_unarchived.is_empty() || !self.kept_changed.is_empty()
    }
}

/// What re-keying the audit trail did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rekeyed {
    /// Seals signed again under the current key.
    pub seals: u64,
    /// Event tags made again under the current key.
    pub retagged: u64,
    /// Tags kept as they were: their events are no longer stored.
    pub kept_tags: u64,
    /// Why nothing was changed: what verification found.
    pub refused: Vec<Finding>,
}

/// One month's result in a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthSummary {
    pub month: Month,
    pub events: u64,
    pub sealed: u64,
    /// Written after the last seal: not covered yet.
    pub pending: u64,
    pub archived: bool,
}

/// The result of verifying the trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerificationReport {
    pub seals: u64,
    pub sealed_upto: i64,
    pub months: Vec<MonthSummary>,
    pub findings: Vec<Finding>,
}

impl VerificationReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

const VERIFY_PAGE: u32 = 1_000;

/// Spaces out the sealing of a backlog: awaited between two sealing steps of
/// one maintenance run, so that the events of a busy period are read back and
/// sealed over time instead of in one burst competing with requests.
#[async_trait]
pub trait SealPacer: Send + Sync {
    async fn between_steps(&self);
}

/// The audit trail's operations.
pub struct AuditTrail {
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    /// The current key seals; earlier ones verify what they sealed.
    keys: AuditKeys,
    policy: AuditPolicy,
    pacer: Option<Arc<dyn SealPacer>>,
}

impl AuditTrail {
    pub fn new(
        repo: Arc<dyn Repository>,
        clock: Arc<dyn Clock>,
        keys: impl Into<AuditKeys>,
        policy: AuditPolicy,
    ) -> Self {
        Self {
            repo,
            clock,
            keys: keys.into(),
            policy,
            pacer: None,
        }
    }

    /// Maintenance that waits on `pacer` between two sealing steps (the
    /// runtime's background maintenance; an operator's run goes flat out).
    pub fn paced(self, pacer: Arc<dyn SealPacer>) -> Self {
        Self {
            pacer: Some(pacer),
            ..self
        }
    }

    /// Creates partitions ahead, applies retention, and seals new events, if no
    /// other maintainer is at it.
    pub async fn maintain(&self) -> StoreResult<MaintenanceReport> {
        let Some(mut lease) = self.repo.lead_audit_maintenance().await? else {
            return Ok(MaintenanceReport::default());
        };
        let outcome = self.maintain_with(lease.as_mut()).await;
        let released = lease.release().await;
        let report = outcome?;
        released?;
        Ok(report)
    }

    async fn maintain_with(
        &self,
        lease: &mut dyn MaintenanceLease,
    ) -> StoreResult<MaintenanceReport> {
        let mut report = MaintenanceReport {
            leader: true,
            ..MaintenanceReport::default()
        };
        let now = self.clock.now();
        let current = Month::containing(now);
        if lease.partitioned() {
            let existing: BTreeSet<Month> = lease.partitions().await?.into_iter().collect();
            let mut wanted: BTreeSet<Month> = current
                .through(current.plus(self.policy.months_ahead as i32))
                .collect();
            wanted.extend(lease.months_outside_partitions().await?);
            for month in wanted.difference(&existing) {
                lease.create_partition(*month).await?;
                report.created.push(*month);
            }
            let ahead = existing
                .iter()
                .chain(&report.created)
                .filter(|month| **month > current)
                .count();
            report.partitions_ahead = Some(u32::try_from(ahead).unwrap_or(u32::MAX));
        }
        if self.policy.retention_months > 0 {
            let keep_from = current.plus(-(self.policy.retention_months as i32));
            for month in lease.months_present().await? {
                if month >= keep_from {
                    continue;
                }
                let rows = lease.count_month(month).await?;
                match lease.archive_of(month).await? {
                    Some(archive) if archive.row_count == rows => {
                        lease.drop_month(month).await?;
                        report.dropped.push(month);
                    }
                    Some(_) => report.kept_changed.push(month),
                    None => report.kept_unarchived.push(month),
                }
            }
        }
        let mut head = lease.seal_head().await?;
        let Some(horizon) = lease.seal_horizon().await? else {
            report.sealing_deferred = true;
            report.awaiting_sealing = lease
                .count_after(head.as_ref().map_or(0, |h| h.to_seq))
                .await?;
            report.seal_head = head;
            return Ok(report);
        };
        let batch = self.policy.seal_batch.max(1);
        loop {
            let after = head.as_ref().map_or(0, |h| h.to_seq);
            if after >= horizon {
                break;
            }
            let events = lease.events_between(after, horizon, batch).await?;
            let full = events.len() as u32 >= batch;
            let upto = match events.last() {
                Some(last) if full => last.seq,
                _ => horizon,
            };
            let seals = seal_batch(self.keys.current(), head.as_ref(), upto, &events, now);
            if seals.is_empty() {
                break;
            }
            lease.insert_seals(&seals).await?;
            report.sealed_events += events.len() as u64;
            report.seals_written += seals.len() as u64;
            head = seals.last().map(|s| SealHead::from(&s.header));
            if !full {
                break;
            }
            if let Some(pacer) = &self.pacer {
                pacer.between_steps().await;
            }
        }
        report.awaiting_sealing = lease
            .count_after(head.as_ref().map_or(0, |h| h.to_seq))
            .await?;
        report.seal_head = head;
        Ok(report)
    }

    /// Checks the chain of seals, then every month (or one) against its seals.
    pub async fn verify(&self, only: Option<Month>) -> StoreResult<VerificationReport> {
        let mut chain = ChainCheck::default();
        let mut seal_months = BTreeSet::new();
        let mut after = 0;
        loop {
            let seals = self.repo.audit_seals(after, 200).await?;
            let Some(last) = seals.last() else { break };
            after = last.header.seal_no;
            for seal in &seals {
                chain.feed(&self.keys, seal);
                seal_months.insert(seal.header.month);
            }
        }
        let archived: BTreeSet<Month> = self
            .repo
            .audit_archives()
            .await?
            .into_iter()
            .map(|a| a.month)
            .collect();
        let present: BTreeSet<Month> = self.repo.audit_months().await?.into_iter().collect();
        // A sealed month that is gone without an archive was deleted wholesale.
        let mut months: BTreeSet<Month> = present.clone();
        months.extend(seal_months.difference(&archived));
        if let Some(month) = only {
            months.retain(|m| *m == month);
            months.insert(month);
        }
        let mut report = VerificationReport {
            seals: chain.seals,
            sealed_upto: chain.sealed_upto,
            ..VerificationReport::default()
        };
        report.findings.append(&mut chain.findings);
        for month in months {
            if !present.contains(&month) && archived.contains(&month) {
                continue;
            }
            let seals = self.repo.audit_seals_of_month(month).await?;
            let mut check = MonthCheck::new(month, &seals, chain.sealed_upto);
            let mut after = 0;
            loop {
                let events = self
                    .repo
                    .audit_events_of_month(month, after, VERIFY_PAGE)
                    .await?;
                let Some(last) = events.last() else { break };
                after = last.seq;
                check.feed(&self.keys, &events);
            }
            let check = check.finish();
            if check.events == 0 && seals.is_empty() {
                // An empty partition made ahead of time: nothing to report.
                continue;
            }
            report.months.push(MonthSummary {
                month,
                events: check.events,
                sealed: check.sealed,
                pending: check.pending,
                archived: archived.contains(&month),
            });
            report.findings.extend(check.findings);
        }
        Ok(report)
    }

    /// Moves every seal onto the current key, after a key rotation: the trail
    /// is verified first (a trail that does not verify is not re-keyed, so a
    /// re-key never vouches for tampering); then, from the first seal made
    /// under an earlier key to the end of the chain, each seal's event tags
    /// are made again under the current key (each checked against its event
    /// under the seal's own key first) and the chain is signed again. A month
    /// whose events are gone (archived, then dropped) keeps its tags as a
    /// record of what was sealed; only its seal is signed again. One
    /// transaction, under the maintenance lease: `Ok(None)` when another
    /// maintainer holds it.
    pub async fn rekey(&self) -> StoreResult<Option<Rekeyed>> {
        let verified = self.verify(None).await?;
        if !verified.is_clean() {
            return Ok(Some(Rekeyed {
                refused: verified.findings,
                ..Rekeyed::default()
            }));
        }
        let Some(mut lease) = self.repo.lead_audit_maintenance().await? else {
            return Ok(None);
        };
        let outcome = self.rekey_with(lease.as_mut()).await;
        let released = lease.release().await;
        let rekeyed = outcome?;
        released?;
        Ok(Some(rekeyed))
    }

    async fn rekey_with(&self, lease: &mut dyn MaintenanceLease) -> StoreResult<Rekeyed> {
        let current = self.keys.current();
        let mut seals = Vec::new();
        let mut after = 0;
        loop {
            let page = self.repo.audit_seals(after, 200).await?;
            let Some(last) = page.last() else { break };
            after = last.header.seal_no;
            seals.extend(page);
        }
        let mut rekeyed = Rekeyed::default();
        let Some(first) = seals.iter().position(|s| s.header.key_id != current.id()) else {
            return Ok(rekeyed);
        };
        let present: BTreeSet<Month> = lease.months_present().await?.into_iter().collect();
        let mut prev_mac = first.checked_sub(1).map(|i| seals[i].header.mac);
        let mut rewritten = Vec::with_capacity(seals.len() - first);
        for mut seal in seals.into_iter().skip(first) {
            if present.contains(&seal.header.month) {
                let Some(sealed_under) = self.keys.key(&seal.header.key_id) else {
                    rekeyed.refused.push(Finding::UnverifiableSeal {
                        seal_no: seal.header.seal_no,
                        key_id: seal.header.key_id.clone(),
                    });
                    return Ok(rekeyed);
                };
                let events = self.events_of(&seal).await?;
                for entry in &mut seal.entries {
                    match events.get(&entry.seq) {
                        Some(event) if sealed_under.tag(event) == entry.tag => {
                            entry.tag = current.tag(event);
                            rekeyed.retagged += 1;
                        }
                        _ => {
                            // Changed since the verification: the next run
                            // verifies again and reports it.
                            rekeyed.refused.push(Finding::Deleted {
                                month: seal.header.month,
                                seq: entry.seq,
                                seal_no: seal.header.seal_no,
                            });
                            return Ok(rekeyed);
                        }
                    }
                }
            } else {
                rekeyed.kept_tags += seal.entries.len() as u64;
            }
            seal.header.prev_mac = prev_mac;
            current.sign(&mut seal);
            prev_mac = Some(seal.header.mac);
            rewritten.push(seal);
        }
        lease.replace_seals(&rewritten).await?;
        rekeyed.seals = rewritten.len() as u64;
        Ok(rekeyed)
    }

    /// The events a seal lists, by position.
    async fn events_of(&self, seal: &Seal) -> StoreResult<BTreeMap<i64, NewAuditEvent>> {
        let mut events = BTreeMap::new();
        let mut after = seal.header.from_seq;
        'pages: loop {
            let page = self
                .repo
                .audit_events_of_month(seal.header.month, after, VERIFY_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page {
                if e.seq > seal.header.to_seq {
                    break 'pages;
                }
                events.insert(e.seq, e.event);
            }
        }
        Ok(events)
    }

    /// Records a manifest for an archive file that was written completely.
    pub async fn record_archive(&self, manifest: &ArchiveManifest) -> StoreResult<ArchiveRecorded> {
        self.repo.record_audit_archive(manifest).await
    }

    /// The current time, for manifests.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn repository(&self) -> &Arc<dyn Repository> {
        &self.repo
    }
}
