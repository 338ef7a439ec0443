//! What one transaction writes: a [`Change`] (the flow's write, its effects
//! and its audit events) and the order every store writes it in; and the
//! rows retention deletes ([`Purge`]).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::NewAuditEvent;
use crate::credential::{Credential, CredentialStatus};
use crate::custody::BiometricReference;
use crate::flow::{Flow, FlowId};
use crate::user::{User, UserId};

/// Per-user limits checked atomically with a flow's insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows not terminal and not past their expiry.
    pub max_open_flows: u32,
    /// Flows needing an identity proof created in the last 24 hours.
    pub max_idv_runs_per_day: u32,
    pub now: OffsetDateTime,
}

/// How a change touches the `flows` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowWrite {
    Insert {
        flow: Flow,
        limits: FlowLimits,
    },
    /// Written only if the stored version is still `flow.version - 1`;
    /// otherwise the change is a [`Conflict::FlowVersion`](super::Conflict::FlowVersion).
    Update {
        flow: Flow,
    },
}

/// A row change that accompanies a flow transition.
#[derive(Debug, Clone, PartialEq, Eq)]
// A change carries a handful of effects and is applied once: boxing the
// credential would add an allocation per insert for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub enum Effect {
    CreateUser(User),
    /// [`Conflict::WebAuthnIdTaken`](super::Conflict::WebAuthnIdTaken) when the WebAuthn id is registered already.
    InsertCredential(Credential),
    /// Records a use: only if the credential is still `active` and the counter
    /// grows (see `credential::counter_is_valid`); otherwise
    /// [`Conflict::CredentialState`](super::Conflict::CredentialState).
    UseCredential {
        id: Uuid,
        sign_count: u32,
        backup_state: bool,
        at: OffsetDateTime,
    },
    /// Records a use whose counter did not grow, accepted under the `warn`
    /// counter policy: only if the credential is still `active` (otherwise
    /// [`Conflict::CredentialState`](super::Conflict::CredentialState)); the stored counter is kept, never lowered.
    UseCredentialKeepingCounter {
        id: Uuid,
        backup_state: bool,
        at: OffsetDateTime,
    },
    /// Only if the credential's status is still `from`; otherwise
    /// [`Conflict::CredentialState`](super::Conflict::CredentialState).
    SetCredentialStatus {
        id: Uuid,
        from: CredentialStatus,
        to: CredentialStatus,
        reason: Option<String>,
        at: OffsetDateTime,
    },
    /// Makes the reference the user's first: [`Conflict::ReferenceExists`](super::Conflict::ReferenceExists)
    /// when the user has one already.
    EnrolReference(BiometricReference),
    /// Replaces the user's current reference (a completed recovery).
    StoreReference(BiometricReference),
    /// Remembers the user's provider-side applicant (sealed).
    SetApplicant {
        user_id: UserId,
        sealed: Vec<u8>,
    },
    /// Stages a reference on a flow (sealed, bound to the flow), replacing
    /// one the flow staged before. It is the user's only through
    /// [`Effect::EnrolReference`] or [`Effect::StoreReference`].
    StageReference {
        flow_id: FlowId,
        sealed: Vec<u8>,
        at: OffsetDateTime,
    },
    /// Removes what a flow staged (none: nothing happens).
    DiscardStagedReference(FlowId),
    /// Only if the credential is still `active`; otherwise
    /// [`Conflict::CredentialNotActive`](super::Conflict::CredentialNotActive). Writes nothing.
    RequireActiveCredential(Uuid),
    /// Revokes every credential of the user that is not revoked, except
    /// `keep`, in one set-based write, with one copy of `event` per revoked
    /// credential (its subject's `credential_id` set to it). The store
    /// takes the user's lock before the change's flow write.
    RevokeOtherCredentials {
        user_id: UserId,
        keep: Uuid,
        reason: String,
        at: OffsetDateTime,
        event: NewAuditEvent,
    },
    /// Cancels every flow of the user in progress, except `keep` (each one's
    /// version bumped, so a change derived from it loses), discards what they
    /// staged, and writes one copy of `event` per cancelled flow (its
    /// subject's `flow_id` set to it). The store takes the user's lock
    /// before the change's flow write.
    CancelOtherFlows {
        user_id: UserId,
        keep: FlowId,
        at: OffsetDateTime,
        event: NewAuditEvent,
    },
    /// Records a provider event by its de-duplication key;
    /// [`Conflict::ProviderEvent`](super::Conflict::ProviderEvent) when it was recorded before.
    RecordProviderEvent {
        dedupe_key: String,
        run_id: String,
        at: OffsetDateTime,
    },
    /// Marks whether the provider may hold a run for the flow that the flow
    /// does not know of (its creation failed ambiguously): while `pending`,
    /// the reconciler looks for it ([`Repository::flows_awaiting_run_lookup`](super::Repository::flows_awaiting_run_lookup)).
    SetRunLookup {
        flow_id: FlowId,
        pending: bool,
    },
}

/// One write of a [`Change`], in the order every store makes them
/// ([`Change::writes`]); each store writes a step with its own SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Take the user's lock, before the flow's row (a flow's insertion takes
    /// it first too). A store whose write transaction locks the whole
    /// database has nothing more to do.
    LockUser(UserId),
    /// The flow's insertion or conditional update.
    Flow(&'a FlowWrite),
    /// One effect: the users the change creates come first (the flow may
    /// belong to one of them), the others after the flow, in the change's
    /// order.
    Effect(&'a Effect),
    /// The change's audit events, last; never empty.
    Events(&'a [NewAuditEvent]),
}

impl Change {
    /// Whether the store must lock the user before the flow write (the
    /// set-based effects of a recovery: see [`Effect::RevokeOtherCredentials`]).
    pub fn locks_user(&self) -> Option<UserId> {
        self.effects.iter().find_map(|e| match e {
            Effect::RevokeOtherCredentials { user_id, .. }
            | Effect::CancelOtherFlows { user_id, .. } => Some(*user_id),
            _ => None,
        })
    }

    /// The change's writes in the order a store makes them: the user's lock
    /// (when [`Change::locks_user`]), the users created, the flow, the other
    /// effects in their order, then the audit events.
    pub fn writes(&self) -> impl Iterator<Item = Write<'_>> {
        let creates_user = |e: &&Effect| matches!(e, Effect::CreateUser(_));
        let lock = self.locks_user().map(Write::LockUser);
        let users = self.effects.iter().filter(creates_user).map(Write::Effect);
        let flow = self.flow.as_ref().map(Write::Flow);
        let others = self
            .effects
            .iter()
            .filter(move |e| !creates_user(e))
            .map(Write::Effect);
        let events = (!self.events.is_empty()).then_some(Write::Events(&self.events));
        lock.into_iter()
            .chain(users)
            .chain(flow)
            .chain(others)
            .chain(events)
    }
}

/// One copy of `event` per credential, each about that credential
/// (what stores write for [`Effect::RevokeOtherCredentials`]).
pub fn per_credential(event: &NewAuditEvent, ids: &[Uuid]) -> Vec<NewAuditEvent> {
    copies(event, ids, |subject, id| subject.credential_id = Some(id))
}

/// One copy of `event` per flow, each about that flow (what stores write
/// for [`Effect::CancelOtherFlows`]).
pub fn per_flow(event: &NewAuditEvent, ids: &[Uuid]) -> Vec<NewAuditEvent> {
    copies(event, ids, |subject, id| subject.flow_id = Some(id))
}

fn copies(
    event: &NewAuditEvent,
    ids: &[Uuid],
    about: impl Fn(&mut crate::audit::Subject, Uuid),
) -> Vec<NewAuditEvent> {
    ids.iter()
        .map(|id| {
            let mut e = event.clone();
            e.id = crate::ids::new_id(e.occurred_at);
            about(&mut e.subject, *id);
            e
        })
        .collect()
}

/// Everything one transaction writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub flow: Option<FlowWrite>,
    pub effects: Vec<Effect>,
    pub events: Vec<NewAuditEvent>,
}

/// Rows kept only for a while: which kind, and the instant before which they
/// go. The retention itself is decided by [`crate::retention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Idempotency records whose replay window ended before `before`, and
    /// unfinished claims whose lock passed before it.
    IdempotencyRecords { before: OffsetDateTime },
    /// Webhook de-duplication records received before `before`.
    ProviderEvents { before: OffsetDateTime },
    /// The SDK tokens and WebAuthn ceremonies of flows past their expiry at
    /// `now` (a flow nobody touches again is never expired explicitly, so
    /// the write that ends a flow never clears them): cleared, nothing else
    /// of the flow changes.
    ExpiredFlowSecrets { now: OffsetDateTime },
    /// Flows whose expiry is before `before`, ended or not (nothing can
    /// change them any more), with what they staged and their hand-off.
    EndedFlows { before: OffsetDateTime },
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::audit::{Actor, AuditEventType, Subject};
    use crate::flow::FlowType;
    use crate::user::ExternalUserId;

    #[test]
    fn a_change_is_written_users_first_then_the_flow_the_effects_and_the_events() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let user = User::new(ExternalUserId::parse("alice").unwrap(), now);
        let flow = Flow::new(
            FlowId(Uuid::new_v4()),
            user.id,
            FlowType::Recovery,
            now,
            now + time::Duration::minutes(10),
        );
        let event = NewAuditEvent::new(
            AuditEventType::FlowCancelled,
            Actor::System,
            Subject::default(),
            now,
        );
        let revoke = Effect::RevokeOtherCredentials {
            user_id: user.id,
            keep: Uuid::new_v4(),
            reason: "recovered".into(),
            at: now,
            event: event.clone(),
        };
        let discard = Effect::DiscardStagedReference(flow.id);
        let create = Effect::CreateUser(user.clone());
        let change = Change {
            flow: Some(FlowWrite::Update { flow }),
            effects: vec![revoke.clone(), create.clone(), discard.clone()],
            events: vec![event],
        };

        let writes: Vec<Write<'_>> = change.writes().collect();

        assert_eq!(
            writes,
            [
                Write::LockUser(user.id),
                Write::Effect(&create),
                Write::Flow(change.flow.as_ref().unwrap()),
                Write::Effect(&revoke),
                Write::Effect(&discard),
                Write::Events(&change.events),
            ]
        );
    }

    #[test]
    fn a_change_without_a_lock_or_events_writes_neither() {
        let change = Change {
            flow: None,
            effects: vec![Effect::RequireActiveCredential(Uuid::new_v4())],
            events: vec![],
        };

        let writes: Vec<Write<'_>> = change.writes().collect();

        assert_eq!(writes, [Write::Effect(&change.effects[0])]);
    }
}
