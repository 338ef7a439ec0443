//! What the audit trail records, counted as it is written: flows created,
//! completed, failed, expired and cancelled, refused requests and possession
//! proofs, provider deliveries.
//!
//! Every outcome the domain produces is written as an audit event through the
//! repository, in the transaction of the change it records, so a decorator
//! around the repository sees each of them exactly once and only once it is
//! committed — whichever service, runtime or background job produced it —
//! without the domain knowing about metrics.

use domain::audit::{Actor, AuditEventType, NewAuditEvent, Outcome};
use domain::flow::{FailureReason, Flow};
use proto::ErrorCode;

use super::Metrics;

/// The label of a value outside the closed set a label takes.
const OTHER: &str = "other";

/// The codes of refusals of a possession proof: the passkey's registration
/// or assertion, verified by the relying party or by the backend itself.
const POSSESSION_CODES: &[ErrorCode] = &[
    ErrorCode::CounterRegression,
    ErrorCode::BackupEligibilityChanged,
    ErrorCode::BackupEligibleNotAllowed,
    ErrorCode::CredentialAlreadyRegistered,
    ErrorCode::CredentialNotActive,
    ErrorCode::CredentialNotFound,
    ErrorCode::InvalidCredential,
    ErrorCode::WebauthnCeremonyExpired,
    ErrorCode::WebauthnResponseMalformed,
    ErrorCode::WebauthnOriginNotAllowed,
    ErrorCode::WebauthnRpIdMismatch,
    ErrorCode::WebauthnChallengeMismatch,
    ErrorCode::WebauthnSignatureInvalid,
    ErrorCode::WebauthnUserNotVerified,
    ErrorCode::WebauthnUserNotPresent,
    ErrorCode::WebauthnAttestationNotAllowed,
    ErrorCode::WebauthnAuthenticatorCompromised,
    ErrorCode::WebauthnCredentialNotAllowed,
];

impl Metrics {
    /// Counts committed `events`; `flow` is the flow written with them, if any.
    pub fn audit_events_written(&self, events: &[NewAuditEvent], flow: Option<&Flow>) {
        self.record(|| {
            for event in events {
                let flow_type = flow
                    .filter(|f| event.subject.flow_id == Some(f.id.0))
                    .map_or(OTHER, |f| f.flow_type.as_str());
                count_event(event, flow_type);
            }
        });
    }

    /// The provider clean-up queue as last counted.
    pub fn provider_cleanups_counted(&self, counts: &domain::store::ProviderCleanupCounts) {
        self.record(|| {
            for (state, n) in [
                ("pending", counts.pending),
                ("retrying", counts.retrying),
                ("dead", counts.dead),
            ] {
                metrics::gauge!("biometric_passkey_provider_cleanups", "state" => state)
                    .set(n as f64);
            }
        });
    }
}

fn count_event(event: &NewAuditEvent, flow_type: &'static str) {
    let event_type = event.event_type;
    metrics::counter!(
        "biometric_passkey_audit_events_total",
        "event" => event_type.as_str(),
        "outcome" => event.outcome.as_str(),
    )
    .increment(1);
    match event_type {
        AuditEventType::FlowCreated => {
            metrics::counter!("biometric_passkey_flows_created_total", "type" => flow_type)
                .increment(1);
        }
        AuditEventType::FlowCompleted => {
            metrics::counter!("biometric_passkey_flows_completed_total", "type" => flow_type)
                .increment(1);
        }
        AuditEventType::FlowFailed => {
            let reason = event
                .reason
                .as_deref()
                .and_then(|r| FailureReason::ALL.iter().find(|f| f.as_str() == r))
                .map_or(OTHER, |f| f.as_str());
            metrics::counter!(
                "biometric_passkey_flows_failed_total",
                "type" => flow_type,
                "reason" => reason,
            )
            .increment(1);
        }
        AuditEventType::FlowExpired => {
            metrics::counter!("biometric_passkey_flows_expired_total", "type" => flow_type)
                .increment(1);
        }
        AuditEventType::FlowCancelled => {
            metrics::counter!("biometric_passkey_flows_cancelled_total", "type" => flow_type)
                .increment(1);
        }
        AuditEventType::FlowRequestRejected => {
            let code = event
                .details
                .get("code")
                .and_then(|c| c.as_str())
                .and_then(|c| ErrorCode::ALL.iter().find(|e| e.as_str() == c));
            metrics::counter!(
                "biometric_passkey_flow_requests_rejected_total",
                "code" => code.map_or(OTHER, |c| c.as_str()),
            )
            // Refused hand-off claims are written counted, a minute at a time.
            .increment(tallied(event));
            if let Some(code) = code.filter(|c| POSSESSION_CODES.contains(c)) {
                possession_refused(*code);
            }
        }
        // Refused by the counter or backup-eligibility policy (`enforce`,
        // `reject`); let through (`warn`) they are written with outcome success.
        AuditEventType::CredentialCounterRegression if event.outcome == Outcome::Rejected => {
            possession_refused(ErrorCode::CounterRegression);
        }
        AuditEventType::CredentialBackupEligibilityChanged
            if event.outcome == Outcome::Rejected =>
        {
            possession_refused(ErrorCode::BackupEligibilityChanged);
        }
        AuditEventType::ProviderEventReceived => match (&event.actor, event.outcome) {
            (Actor::System, _) => {
                metrics::counter!("biometric_passkey_idv_runs_reconciled_total").increment(1);
            }
            (_, Outcome::Rejected) if event.reason.as_deref() == Some("unknown_run") => {
                webhook_delivery("unknown_run", "");
            }
            _ => webhook_delivery("accepted", ""),
        },
        // Written a window at a time, each with the deliveries it counts.
        AuditEventType::WebhookRejected => {
            let reason = event.reason.as_deref().map_or(OTHER, webhook_reason);
            webhook_deliveries("rejected", reason, tallied(event));
        }
        AuditEventType::WebhookIgnored => webhook_deliveries("ignored", "", tallied(event)),
        _ => {}
    }
}

fn possession_refused(code: ErrorCode) {
    metrics::counter!(
        "biometric_passkey_possession_proofs_refused_total",
        "code" => code.as_str(),
    )
    .increment(1);
}

pub(super) fn webhook_delivery(outcome: &'static str, reason: &'static str) {
    webhook_deliveries(outcome, reason, 1);
}

fn webhook_deliveries(outcome: &'static str, reason: &'static str, n: u64) {
    metrics::counter!(
        "biometric_passkey_webhook_deliveries_total",
        "outcome" => outcome,
        "reason" => reason,
    )
    .increment(n);
}

/// How many requests a counted event stands for (1 for any other event).
fn tallied(event: &NewAuditEvent) -> u64 {
    event.details["count"].as_u64().unwrap_or(1)
}

/// The reasons `core-api::webhooks` refuses a delivery for.
fn webhook_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "signature_missing",
        "signature_malformed",
        "signature_invalid",
        "malformed",
        "source_limited",
        "stale",
        "future_timestamp",
    ];
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or(OTHER)
}
