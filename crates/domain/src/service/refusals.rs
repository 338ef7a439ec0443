//! Requests refused or not acted on without a flow to attach them to,
//! counted per window instead of audited one by one.

use proto::ErrorCode;
use serde_json::json;
use time::OffsetDateTime;

use super::FlowService;
use crate::audit::{Actor, AuditEventType, NewAuditEvent, Outcome, Subject};
use crate::error::DomainResult;
use crate::tally::{Tallied, TallyKind};

impl FlowService {
    /// Counts a request refused or not acted on without a flow to attach it
    /// to: a webhook delivery (refused, stale, or of an event type the
    /// backend ignores) or a hand-off claim with an unknown code; `reason`
    /// says why, or names the ignored event type. Counts are audited per
    /// window, kind, reason and actor (see [`crate::tally`]), never a row per
    /// request. When the counts of an ended window cannot be written, they
    /// are lost (the error says so); the request's answer does not depend on
    /// it.
    pub async fn note_refusal(
        &self,
        kind: TallyKind,
        reason: &str,
        actor: &Actor,
    ) -> DomainResult<()> {
        let ended = self.tally.note(kind, reason, actor, self.clock.now());
        self.write_tallies(ended).await.map(drop)
    }

    /// Writes the counts of refusals whose window has ended (all of them
    /// when `all`, as a runtime stops); the counts written.
    pub async fn flush_refusal_tally(&self, all: bool) -> DomainResult<Vec<Tallied>> {
        let ended = self.tally.take_ended(self.clock.now(), all);
        self.write_tallies(ended).await
    }

    async fn write_tallies(&self, tallies: Vec<Tallied>) -> DomainResult<Vec<Tallied>> {
        let now = self.clock.now();
        let provider = self.idv.name();
        let rfc3339 = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        };
        for tally in &tallies {
            let (event_type, outcome) = match tally.kind {
                TallyKind::Rejected => (AuditEventType::WebhookRejected, Outcome::Rejected),
                TallyKind::Ignored => (AuditEventType::WebhookIgnored, Outcome::Success),
                TallyKind::ClaimRefused => (AuditEventType::FlowRequestRejected, Outcome::Rejected),
            };
            let mut details = json!({
                "count": tally.count,
                "first_at": rfc3339(tally.first_at),
                "last_at": rfc3339(tally.last_at),
                "window_seconds": crate::tally::TALLY_WINDOW.whole_seconds(),
            });
            match tally.kind {
                TallyKind::Rejected | TallyKind::Ignored => details["provider"] = json!(provider),
                TallyKind::ClaimRefused => {
                    let code = if tally.reason == "handoff_limited" {
                        ErrorCode::TooManyRefusedRequests
                    } else {
                        ErrorCode::HandoffInvalid
                    };
                    details["code"] = json!(code.as_str());
                }
            }
            let event = NewAuditEvent {
                outcome,
                reason: Some(tally.reason.clone()),
                details,
                ..NewAuditEvent::new(event_type, tally.actor.clone(), Subject::default(), now)
            };
            self.repo.append_audit(&event).await?;
        }
        Ok(tallies)
    }
}
