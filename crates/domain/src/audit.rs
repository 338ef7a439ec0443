//! Audit events: who did what to whom, when, with what outcome.
//!
//! An event is written in the same transaction as the change it records; the
//! repository methods that change state take the event as an argument so no
//! caller can forget it. Events carry no secrets, tokens or biometric values.

pub mod integrity;
pub mod month;
pub mod trail;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::user::{Pseudonym, UserId};

crate::flow::string_enum! {
    /// What happened. The string form is stable and documented (`docs/audit.md`).
    AuditEventType {
        UserCreated = "user.created",
        UserDeleted = "user.deleted",
        FlowCreated = "flow.created",
        FlowIdvStarted = "flow.idv_started",
        FlowIdvRunFound = "flow.idv_run_found",
        FlowVerified = "flow.verified",
        FlowInReview = "flow.in_review",
        FlowPossessionVerified = "flow.possession_verified",
        FlowHandoffClaimed = "flow.handoff_claimed",
        FlowCompleted = "flow.completed",
        FlowFailed = "flow.failed",
        FlowExpired = "flow.expired",
        FlowCancelled = "flow.cancelled",
        FlowRequestRejected = "flow.request_rejected",
        CredentialRegistered = "credential.registered",
        CredentialUsed = "credential.used",
        CredentialSuspended = "credential.suspended",
        CredentialActivated = "credential.activated",
        CredentialRevoked = "credential.revoked",
        CredentialCounterRegression = "credential.counter_regression",
        CredentialBackupEligible = "credential.backup_eligible",
        CredentialBackupEligibilityChanged = "credential.backup_eligibility_changed",
        BiometricReferenceStaged = "biometric_reference.staged",
        BiometricReferenceStored = "biometric_reference.stored",
        BiometricReferenceReleased = "biometric_reference.released",
        ProviderEventReceived = "provider.event_received",
        WebhookRejected = "webhook.rejected",
        OperatorRead = "operator.read",
        OperatorRefused = "operator.refused",
        WebhookIgnored = "webhook.ignored",
    }
}

/// A stored string that names no known variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownValue(pub String);

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The customer's backend, through the Core API, by the fingerprint of
    /// the API key it called with (`key-` and 16 hex digits); `None` when the
    /// API takes calls without a key.
    Integration(Option<String>),
    /// A signed-in operator, by the `sub` of their token.
    Operator(String),
    /// The IDV provider (webhook deliveries).
    Provider,
    /// The backend itself (expiry, maintenance, reconciliation).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Integration(_) => "integration",
            Self::Operator(_) => "operator",
            Self::Provider => "provider",
            Self::System => "system",
        }
    }

    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Operator(sub) => Some(sub),
            Self::Integration(key) => key.as_deref(),
            Self::Provider | Self::System => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<String>) -> Result<Self, UnknownValue> {
        match (kind, id) {
            ("integration", key) => Ok(Self::Integration(key)),
            ("operator", Some(sub)) => Ok(Self::Operator(sub)),
            ("provider", _) => Ok(Self::Provider),
            ("system", _) => Ok(Self::System),
            (other, _) => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Rejected => "rejected",
        }
    }
}

impl FromStr for Outcome {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "rejected" => Ok(Self::Rejected),
            other => Err(UnknownValue(other.to_owned())),
        }
    }
}

/// What the event is about. The user is kept by internal id and pseudonym, never
/// by the customer's identifier, so the trail survives the user's deletion
/// without keeping personal data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub user_id: Option<UserId>,
    pub user_pseudonym: Option<Pseudonym>,
    pub credential_id: Option<Uuid>,
    pub flow_id: Option<Uuid>,
}

impl Subject {
    /// An event about `user` alone: its id and pseudonym.
    pub fn of_user(user: &crate::user::User) -> Self {
        Self {
            user_id: Some(user.id),
            user_pseudonym: Some(user.pseudonym.clone()),
            ..Self::default()
        }
    }

    /// An event about `flow`: its user, its credential (once known) and itself.
    pub fn of_flow(flow: &crate::flow::Flow) -> Self {
        Self {
            user_id: Some(flow.user_id),
            user_pseudonym: None,
            credential_id: flow.credential_id,
            flow_id: Some(flow.id.0),
        }
    }
}

/// An event about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
    pub event_type: AuditEventType,
    pub actor: Actor,
    pub subject: Subject,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
    pub details: serde_json::Value,
}

impl NewAuditEvent {
    /// A successful event with no details; adjust fields with struct update syntax.
    pub fn new(
        event_type: AuditEventType,
        actor: Actor,
        subject: Subject,
        occurred_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: crate::ids::new_id(occurred_at),
            occurred_at,
            event_type,
            actor,
            subject,
            outcome: Outcome::Success,
            reason: None,
            correlation_id: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}

/// A stored event: the written event plus its position in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Insertion order across the whole trail; the pagination cursor.
    pub seq: i64,
    pub event: NewAuditEvent,
}

/// A search of the trail, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub user_id: Option<UserId>,
    pub flow_id: Option<Uuid>,
    pub credential_id: Option<Uuid>,
    pub event_type: Option<AuditEventType>,
    pub occurred_from: Option<OffsetDateTime>,
    pub occurred_before: Option<OffsetDateTime>,
    /// Only events older (smaller `seq`) than this cursor.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            user_id: None,
            flow_id: None,
            credential_id: None,
            event_type: None,
            occurred_from: None,
            occurred_before: None,
            before_seq: None,
            limit: 50,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_documented() {
        let reference = include_str!("../../../docs/audit.md");
        for t in AuditEventType::ALL {
            assert!(
                reference.contains(&format!("| `{t}` |")),
                "{t} is missing from docs/audit.md"
            );
        }
    }

    #[test]
    fn event_types_round_trip_through_their_names() {
        for t in AuditEventType::ALL {
            assert_eq!(t.as_str().parse::<AuditEventType>(), Ok(*t));
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{t}\""));
        }
        assert!("user.exploded".parse::<AuditEventType>().is_err());
    }

    #[test]
    fn actors_round_trip_through_their_parts() {
        for actor in [
            Actor::Integration(None),
            Actor::Integration(Some("key-0123456789abcdef".into())),
            Actor::Operator("auth0|42".into()),
            Actor::Provider,
            Actor::System,
        ] {
            let back = Actor::from_parts(actor.kind(), actor.id().map(str::to_owned)).unwrap();
            assert_eq!(back, actor);
        }
        assert!(Actor::from_parts("operator", None).is_err());
    }
}
