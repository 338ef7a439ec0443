//! Flows: what `apply` writes to the `flows` table, the conditional update that
//! makes concurrent transitions safe, the per-user limits checked with an
//! insertion, and the all-or-nothing of a change.
//!
//! [`reads`]: what is stored reads back, and the listings; [`updates`]: the
//! conditional update and the all-or-nothing of a change; [`limits`]: the
//! per-user limits.

mod limits;
mod reads;
mod updates;

pub use limits::{
    a_limit_reached_after_the_read_refuses_the_flow_and_its_events,
    concurrent_flow_creations_respect_the_open_flow_limit,
    concurrent_identity_flow_creations_respect_the_idv_run_limit,
    terminal_and_expired_flows_do_not_count_as_open,
    the_idv_run_limit_counts_identity_flows_of_the_last_24_hours,
    the_open_flow_limit_refuses_the_next_flow_and_writes_nothing,
};
pub use reads::{
    a_flow_for_a_missing_user_is_not_found,
    a_flow_listing_filters_on_the_state_each_flow_reads_as_now,
    a_flow_with_every_field_round_trips, a_flow_without_optional_fields_round_trips,
    every_flow_type_state_identity_and_failure_reason_round_trips,
    failed_flows_marked_for_a_run_look_up_are_listed_until_it_is_done,
    flow_prerequisites_read_the_user_and_their_standing,
    flows_awaiting_the_provider_are_listed_oldest_check_first,
    flows_of_lists_a_users_flows_newest_first_up_to_the_limit, recorded_provider_events_are_seen,
    unknown_flows_are_not_found,
};
pub use updates::{
    a_change_can_create_a_user_with_their_first_flow,
    a_failed_event_rolls_back_the_flow_and_its_effects,
    a_stale_flow_version_is_a_conflict_and_writes_nothing,
    an_update_over_the_stored_version_round_trips, an_update_sets_the_run_and_the_failure_reason,
    concurrent_updates_from_one_version_have_exactly_one_winner,
};
