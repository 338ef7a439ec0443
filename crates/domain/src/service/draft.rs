//! A change being drafted: what a use case writes with the flow's next version.

use crate::audit::{AuditEventType, NewAuditEvent};
use crate::flow::FlowId;
use crate::store::{Change, Effect, FlowWrite};

/// The effects and audit events one change will write, gathered while a use
/// case decides; the flow's version is added when it is written.
#[derive(Debug, Default)]
pub(super) struct ChangeDraft {
    effects: Vec<Effect>,
    events: Vec<NewAuditEvent>,
}

impl ChangeDraft {
    /// A draft writing `effect`.
    pub(super) fn of_effect(effect: Effect) -> Self {
        Self {
            effects: vec![effect],
            events: Vec::new(),
        }
    }

    /// A draft writing `event`.
    pub(super) fn of_event(event: NewAuditEvent) -> Self {
        Self {
            effects: Vec::new(),
            events: vec![event],
        }
    }

    /// This draft, writing `event` too.
    pub(super) fn with_event(mut self, event: NewAuditEvent) -> Self {
        self.events.push(event);
        self
    }

    pub(super) fn push_effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub(super) fn push_event(&mut self, event: NewAuditEvent) {
        self.events.push(event);
    }

    /// Adds `more`'s effects and events after this draft's own.
    pub(super) fn extend(&mut self, more: ChangeDraft) {
        self.effects.extend(more.effects);
        self.events.extend(more.events);
    }

    /// The sealed reference this draft stages on `flow_id` (the last, if several).
    pub(super) fn staged_reference(&self, flow_id: FlowId) -> Option<&[u8]> {
        self.effects.iter().rev().find_map(|e| match e {
            Effect::StageReference {
                flow_id: staged_on,
                sealed,
                ..
            } if *staged_on == flow_id => Some(sealed.as_slice()),
            _ => None,
        })
    }

    /// What outlives a completion refused at the write: the provider event
    /// this draft records (its de-duplication key and its audit event).
    pub(super) fn provider_event_only(&self) -> ChangeDraft {
        ChangeDraft {
            effects: self
                .effects
                .iter()
                .filter(|e| matches!(e, Effect::RecordProviderEvent { .. }))
                .cloned()
                .collect(),
            events: self
                .events
                .iter()
                .filter(|e| e.event_type == AuditEventType::ProviderEventReceived)
                .cloned()
                .collect(),
        }
    }

    /// The change writing `flow` (or no flow) with this draft.
    pub(super) fn into_change(self, flow: Option<FlowWrite>) -> Change {
        Change {
            flow,
            effects: self.effects,
            events: self.events,
        }
    }
}
