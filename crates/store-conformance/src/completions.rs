//! What a flow's completion relies on: references staged on a flow and
//! promoted to the user's when it completes, the passkey re-checked by a
//! completion, a recovery's set-based cancellations and revocations, and the
//! provider-side applicant remembered once per user.
//!
//! [`staging`]: references staged and promoted; [`checks`]: what a
//! completion re-checks, the applicant and the standing read before a flow;
//! [`recovery`]: a recovery's set-based cancellations and revocations.

use std::collections::HashSet;

use domain::flow::{Flow, FlowState, FlowType, IdentityStatus};
use domain::{AuditEventType, Change, Effect, NewAuditEvent, Repository, Subject, User};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::fixtures::{all_events, flow, found};

mod checks;
mod recovery;
mod staging;

pub use checks::{
    an_applicant_is_set_once_and_replaced_only_as_read,
    flow_prerequisites_tell_live_passkeys_and_the_references_flow,
    requiring_an_active_credential_passes_only_for_an_active_one,
};
pub use recovery::{
    cancelling_other_flows_cancels_the_users_open_flows_but_the_kept_one,
    concurrent_recoveries_of_one_user_leave_one_new_passkey, recoveries_completing_at_once,
    revoking_other_credentials_revokes_the_users_live_ones_but_the_kept_one,
};
pub use staging::{
    a_staged_reference_replaces_the_flows_earlier_one_and_is_not_the_users,
    deleting_a_user_or_a_flow_removes_what_it_staged,
    enrolling_a_user_with_a_reference_is_a_conflict_and_writes_nothing,
    stale_staged_references_are_discarded_and_open_flows_keep_theirs,
};

fn effects(effects: Vec<Effect>) -> Change {
    Change {
        effects,
        ..Change::default()
    }
}

fn stage(flow: &Flow, sealed: &[u8], at: OffsetDateTime) -> Effect {
    Effect::StageReference {
        flow_id: flow.id,
        sealed: sealed.to_vec(),
        at,
    }
}

/// What `flow` staged, `None` when it staged nothing.
async fn staged(repo: &dyn Repository, flow: &Flow) -> Option<Vec<u8>> {
    found(repo.staged_reference_of(flow.id).await)
}

/// A flow open (`state`) until 15 minutes after `created_at`.
fn open(user: &User, flow_type: FlowType, state: FlowState, created_at: OffsetDateTime) -> Flow {
    Flow {
        state,
        ..flow(user.id, flow_type, created_at)
    }
}

/// `before`'s next version, completed at `at`.
fn completed(before: &Flow, at: OffsetDateTime) -> Flow {
    Flow {
        version: before.version + 1,
        state: FlowState::Completed,
        identity: IdentityStatus::Verified,
        possession_done: true,
        updated_at: at,
        completed_at: Some(at),
        ..before.clone()
    }
}

/// Every event of `event_type` in the trail, oldest first.
async fn events_of(repo: &dyn Repository, event_type: AuditEventType) -> Vec<NewAuditEvent> {
    let mut events: Vec<_> = all_events(repo)
        .await
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect();
    events.reverse();
    events
}

/// `written` are copies of `template`, one per id `about` picks out of each
/// (exactly `ids`, each once), with distinct event ids.
#[track_caller]
fn assert_copies(
    written: &[NewAuditEvent],
    template: &NewAuditEvent,
    ids: &[Uuid],
    about: impl Fn(&Subject) -> Option<Uuid>,
    with: impl Fn(&NewAuditEvent, Uuid) -> NewAuditEvent,
) {
    let got: HashSet<Uuid> = written.iter().filter_map(|e| about(&e.subject)).collect();
    let want: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(got, want, "one event about each");
    assert_eq!(
        written.len(),
        ids.len(),
        "one event about each: {written:?}"
    );
    let event_ids: HashSet<Uuid> = written.iter().map(|e| e.id).collect();
    assert_eq!(event_ids.len(), written.len(), "distinct event ids");
    assert!(
        !event_ids.contains(&template.id),
        "each copy has an id of its own"
    );
    for e in written {
        let id = about(&e.subject).unwrap();
        assert_eq!(e, &with(template, id).with_id(e.id), "the template's copy");
    }
}

trait WithId {
    fn with_id(self, id: Uuid) -> Self;
}

impl WithId for NewAuditEvent {
    fn with_id(self, id: Uuid) -> Self {
        NewAuditEvent { id, ..self }
    }
}
