//! Webhook deliveries that are not acted on, counted rather than audited one
//! by one.
//!
//! The webhook route faces the internet: a stream of forged, malformed or
//! stale deliveries, or the provider sending every event type it has, must not
//! grow the audit trail by a row each. Each runtime counts such deliveries per
//! kind and reason over a window of [`TALLY_WINDOW`], keeping the first and
//! the last time; once the window has ended, the counts become one audit event
//! per kind and reason (see `FlowService::note_webhook_delivery`). The counts
//! of a window still open when a runtime stops abruptly are lost: at most one
//! window's worth, per runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// How long deliveries are counted before their counts are written.
pub const TALLY_WINDOW: Duration = Duration::minutes(1);

/// Why a delivery was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TallyKind {
    /// Refused or not acted on because it failed a check (`webhook.rejected`).
    Rejected,
    /// Verified, but of an event type the backend does not act on (`webhook.ignored`).
    Ignored,
}

/// The counts of one kind and reason over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallied {
    pub kind: TallyKind,
    pub reason: String,
    pub count: u64,
    pub first_at: OffsetDateTime,
    pub last_at: OffsetDateTime,
    pub window_start: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<OffsetDateTime>,
    counts: BTreeMap<(TallyKind, String), (u64, OffsetDateTime, OffsetDateTime)>,
}

impl Window {
    fn take(&mut self) -> Vec<Tallied> {
        let Some(window_start) = self.start.take() else {
            return Vec::new();
        };
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((kind, reason), (count, first_at, last_at))| Tallied {
                kind,
                reason,
                count,
                first_at,
                last_at,
                window_start,
            })
            .collect()
    }
}

/// One runtime's counts of the current window.
#[derive(Debug, Default)]
pub struct DeliveryTally(Mutex<Window>);

/// The longest reason kept; longer ones (an event type's name) are cut.
const MAX_REASON: usize = 64;

impl DeliveryTally {
    /// Counts one delivery at `now`; returns the counts of the window that
    /// ended before it, if one did (to be written).
    pub fn note(&self, kind: TallyKind, reason: &str, now: OffsetDateTime) -> Vec<Tallied> {
        let Ok(mut window) = self.0.lock() else {
            return Vec::new();
        };
        let ended = match window.start {
            Some(start) if now - start >= TALLY_WINDOW || now < start => window.take(),
            _ => Vec::new(),
        };
        if window.start.is_none() {
            window.start = Some(now);
        }
        let reason: String = reason.chars().take(MAX_REASON).collect();
        window
            .counts
            .entry((kind, reason))
            .and_modify(|(count, _, last)| {
                *count += 1;
                *last = now;
            })
            .or_insert((1, now, now));
        ended
    }

    /// The counts of the window if it has ended at `now`, or whatever is
    /// counted when `all` (a runtime stopping).
    pub fn take_ended(&self, now: OffsetDateTime, all: bool) -> Vec<Tallied> {
        let Ok(mut window) = self.0.lock() else {
            return Vec::new();
        };
        match window.start {
            Some(start) if all || now - start >= TALLY_WINDOW => window.take(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn deliveries_are_counted_per_kind_and_reason_and_given_back_once_the_window_ends() {
        let tally = DeliveryTally::default();
        let t0 = datetime!(2026-12-06 10:00:00 UTC);
        for i in 0..1000 {
            let at = t0 + Duration::milliseconds(i * 10);
            assert!(
                tally
                    .note(TallyKind::Rejected, "signature_invalid", at)
                    .is_empty()
            );
        }
        assert!(tally.note(TallyKind::Rejected, "stale", t0).is_empty());
        assert!(
            tally
                .note(TallyKind::Ignored, "workflow_task.started", t0)
                .is_empty()
        );
        assert!(
            tally
                .take_ended(t0 + Duration::seconds(59), false)
                .is_empty()
        );
        let later = t0 + Duration::seconds(61);
        let ended = tally.note(TallyKind::Rejected, "signature_invalid", later);
        assert_eq!(ended.len(), 3);
        let forged = &ended[0];
        assert_eq!(
            (forged.kind, forged.reason.as_str(), forged.count),
            (TallyKind::Rejected, "signature_invalid", 1000)
        );
        assert_eq!(forged.first_at, t0);
        assert_eq!(forged.last_at, t0 + Duration::milliseconds(9990));
        assert_eq!(ended[2].kind, TallyKind::Ignored);
        // The delivery that ended the window starts the next one.
        let rest = tally.take_ended(later, true);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].count, rest[0].first_at), (1, later));
        assert!(tally.take_ended(later, true).is_empty());
    }

    #[test]
    fn reasons_are_cut_to_a_bounded_length() {
        let tally = DeliveryTally::default();
        let t0 = datetime!(2026-12-06 10:00:00 UTC);
        tally.note(TallyKind::Ignored, &"x".repeat(500), t0);
        let ended = tally.take_ended(t0, true);
        assert_eq!(ended[0].reason.len(), MAX_REASON);
    }
}
