//! Credentials (inserted, used and moved through their lifecycle by `apply`'s
//! effects) and the one biometric reference each user may have.
//!
//! [`lifecycle`]: credentials stored, read and moved through their statuses,
//! and the biometric reference; [`uses`]: a use's counter rules.

use domain::credential::Credential;
use domain::{Change, Effect};

mod lifecycle;
mod uses;

pub use lifecycle::{
    a_biometric_reference_is_stored_read_and_replaced,
    a_duplicate_webauthn_id_is_a_conflict_and_rolls_back_the_change,
    a_status_change_from_the_wrong_status_is_a_conflict_and_writes_nothing,
    a_status_change_records_the_status_reason_and_time,
    credentials_round_trip_by_id_webauthn_id_and_user_oldest_first,
    only_an_active_credential_counts_as_active, unknown_credentials_are_not_found,
};
pub use uses::{
    a_counter_that_does_not_grow_is_a_conflict_and_writes_nothing,
    a_refused_use_undoes_the_flow_version_written_with_it,
    a_suspended_or_revoked_credential_cannot_be_used,
    a_use_kept_despite_its_counter_keeps_the_stored_counter,
    a_use_records_the_counter_backup_state_and_time,
    an_authenticator_without_a_counter_may_stay_at_zero,
    concurrent_uses_of_one_counter_have_exactly_one_winner,
};

fn effects(effects: Vec<Effect>) -> Change {
    Change {
        effects,
        ..Change::default()
    }
}

fn use_of(c: &Credential, sign_count: u32, at: time::OffsetDateTime) -> Effect {
    Effect::UseCredential {
        id: c.id,
        sign_count,
        backup_state: !c.backup_state,
        at,
    }
}
