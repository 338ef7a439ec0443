use crate::user::{ExternalUserId, UserId};

/// The customer's identifier of users seen recently, so that a flow's response
/// does not read its user again. Safe to keep: a user id is never reused and
/// its external identifier never changes (a deleted user's flows go with them).
/// Bounded: emptied when full.
#[derive(Default)]
pub(super) struct ExternalIds(std::sync::Mutex<std::collections::HashMap<UserId, ExternalUserId>>);

impl ExternalIds {
    const MAX: usize = 65_536;

    pub(super) fn get(&self, id: UserId) -> Option<ExternalUserId> {
        self.0.lock().ok()?.get(&id).cloned()
    }

    pub(super) fn remember(&self, id: UserId, external: &ExternalUserId) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(id, external.clone());
        }
    }

    pub(super) fn forget(&self, external: &ExternalUserId) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, e| e != external);
        }
    }
}
