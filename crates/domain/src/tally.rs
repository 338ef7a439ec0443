//! Requests that are refused or not acted on without a flow to attach them
//! to, counted rather than audited one by one.
//!
//! The webhook route faces the internet, and anyone holding the Core API's
//! key can guess hand-off codes: a stream of forged, malformed or stale
//! deliveries, the provider sending every event type it has, or a stream of
//! unknown hand-off codes must not grow the audit trail by a row each. Each
//! runtime counts such requests per kind, reason and actor over a window of
//! [`TALLY_WINDOW`], keeping the first and the last time; once the window has
//! ended, the counts become one audit event per kind, reason and actor (see
//! `FlowService::note_refusal`). The counts of a window still open when a
//! runtime stops abruptly are lost: at most one window's worth, per runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::audit::Actor;

/// How long requests are counted before their counts are written.
pub const TALLY_WINDOW: Duration = Duration::minutes(1);

/// Why a request was counted, and so the audit event its count becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TallyKind {
    /// A webhook delivery refused or not acted on because it failed a check
    /// (`webhook.rejected`).
    Rejected,
    /// A verified webhook delivery of an event type the backend does not act
    /// on (`webhook.ignored`).
    Ignored,
    /// A hand-off claim refused before any flow was found: an unknown code,
    /// or a user over the refusal limit (`flow.request_rejected`).
    ClaimRefused,
}

impl TallyKind {
    /// Who the counted requests came from, for the kinds that have one actor.
    fn fixed_actor(self) -> Option<Actor> {
        match self {
            Self::Rejected | Self::Ignored => Some(Actor::Provider),
            Self::ClaimRefused => None,
        }
    }
}

/// The counts of one kind, reason and actor over one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallied {
    pub kind: TallyKind,
    pub reason: String,
    pub actor: Actor,
    pub count: u64,
    pub first_at: OffsetDateTime,
    pub last_at: OffsetDateTime,
    pub window_start: OffsetDateTime,
}

type Key = (TallyKind, String, String);

#[derive(Debug, Default)]
struct Window {
    start: Option<OffsetDateTime>,
    counts: BTreeMap<Key, (Actor, u64, OffsetDateTime, OffsetDateTime)>,
}

impl Window {
    fn take(&mut self) -> Vec<Tallied> {
        let Some(window_start) = self.start.take() else {
            return Vec::new();
        };
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(
                |((kind, reason, _), (actor, count, first_at, last_at))| Tallied {
                    kind,
                    reason,
                    actor,
                    count,
                    first_at,
                    last_at,
                    window_start,
                },
            )
            .collect()
    }
}

/// One runtime's counts of the current window.
#[derive(Debug, Default)]
pub struct RefusalTally(Mutex<Window>);

/// The longest reason kept; longer ones (an event type's name) are cut.
const MAX_REASON: usize = 64;

/// The most distinct (kind, reason, actor) counted in one window; further
/// ones are counted under their kind and reason with the actor
/// [`Actor::System`], so a window's memory stays bounded.
const MAX_KEYS: usize = 1024;

impl RefusalTally {
    /// Counts one request at `now` by `actor` (ignored for the webhook kinds,
    /// whose actor is the provider); returns the counts of the window that
    /// ended before it, if one did (to be written).
    pub fn note(
        &self,
        kind: TallyKind,
        reason: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Vec<Tallied> {
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
        let mut actor = kind.fixed_actor().unwrap_or_else(|| actor.clone());
        let mut key = (kind, reason.clone(), actor_key(&actor));
        if !window.counts.contains_key(&key) && window.counts.len() >= MAX_KEYS {
            actor = Actor::System;
            key = (kind, reason, actor_key(&actor));
        }
        window
            .counts
            .entry(key)
            .and_modify(|(_, count, _, last)| {
                *count += 1;
                *last = now;
            })
            .or_insert((actor, 1, now, now));
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

fn actor_key(actor: &Actor) -> String {
    match actor {
        Actor::Integration(Some(key)) | Actor::Operator(key) => {
            format!("{}:{key}", actor.kind())
        }
        other => other.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn deliveries_are_counted_per_kind_and_reason_and_given_back_once_the_window_ends() {
        let tally = RefusalTally::default();
        let t0 = datetime!(2026-12-06 10:00:00 UTC);
        for i in 0..1000 {
            let at = t0 + Duration::milliseconds(i * 10);
            assert!(
                tally
                    .note(
                        TallyKind::Rejected,
                        "signature_invalid",
                        &Actor::Provider,
                        at
                    )
                    .is_empty()
            );
        }
        assert!(
            tally
                .note(TallyKind::Rejected, "stale", &Actor::Provider, t0)
                .is_empty()
        );
        assert!(
            tally
                .note(
                    TallyKind::Ignored,
                    "workflow_task.started",
                    &Actor::Provider,
                    t0
                )
                .is_empty()
        );
        assert!(
            tally
                .take_ended(t0 + Duration::seconds(59), false)
                .is_empty()
        );
        let later = t0 + Duration::seconds(61);
        let ended = tally.note(
            TallyKind::Rejected,
            "signature_invalid",
            &Actor::Provider,
            later,
        );
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
        let tally = RefusalTally::default();
        let t0 = datetime!(2026-12-06 10:00:00 UTC);
        tally.note(TallyKind::Ignored, &"x".repeat(500), &Actor::Provider, t0);
        let ended = tally.take_ended(t0, true);
        assert_eq!(ended[0].reason.len(), MAX_REASON);
    }

    #[test]
    fn claims_are_counted_per_key_and_the_number_of_actors_is_bounded() {
        let tally = RefusalTally::default();
        let t0 = datetime!(2026-12-06 10:00:00 UTC);
        let key = |n: usize| Actor::Integration(Some(format!("key-{n:016x}")));
        for _ in 0..3 {
            tally.note(TallyKind::ClaimRefused, "handoff_unknown", &key(1), t0);
        }
        tally.note(TallyKind::ClaimRefused, "handoff_unknown", &key(2), t0);
        // A webhook kind's actor is always the provider.
        tally.note(TallyKind::Rejected, "stale", &key(1), t0);
        let ended = tally.take_ended(t0, true);
        let counts: Vec<_> = ended.iter().map(|t| (t.actor.clone(), t.count)).collect();
        assert_eq!(counts, vec![(Actor::Provider, 1), (key(1), 3), (key(2), 1)]);

        for n in 0..MAX_KEYS + 10 {
            tally.note(TallyKind::ClaimRefused, "handoff_unknown", &key(n), t0);
        }
        let ended = tally.take_ended(t0, true);
        assert_eq!(ended.len(), MAX_KEYS + 1);
        let overflow = ended.iter().find(|t| t.actor == Actor::System).unwrap();
        assert_eq!(overflow.count, 10);
    }
}
