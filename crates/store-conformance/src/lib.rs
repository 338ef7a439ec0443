//! The repository trait's executable specification.
//!
//! Every behaviour the domain relies on is written once here, generic over
//! [`Repository`](domain::Repository), and run by both stores through
//! [`conformance_suite!`]. If the stores disagree, one of them has a bug.
//!
//! [`postgres`] provisions a fresh, empty PostgreSQL database per test from the
//! cluster that `scripts/pg` starts; tests fail with instructions (never skip)
//! when that cluster is not reachable.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test-support code: a failed setup is a failed test.

pub mod audit_trail;
pub mod completions;
pub mod credentials;
mod fixtures;
pub mod flows;
pub mod idempotency;
pub mod overview;
pub mod postgres;
pub mod retention;
pub mod suite;
pub mod users;

use std::any::Any;
use std::sync::Arc;

use domain::Repository;
use futures::future::BoxFuture;

/// Runs one SQL statement behind the repository's back: how tests tamper with
/// stored rows. The statements used are valid on both stores.
pub type Tamper = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// A repository under test, plus whatever must stay alive while it is used
/// (a temporary directory, say), and a way to tamper with its rows.
pub struct Fixture {
    pub repo: Arc<dyn Repository>,
    pub tamper: Tamper,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    pub fn new(repo: Arc<dyn Repository>, tamper: Tamper, keep: impl Any + Send + Sync) -> Self {
        Self {
            repo,
            tamper,
            _keep: Box::new(keep),
        }
    }
}

/// Expands to one `#[tokio::test]` per behaviour of [`suite`], [`flows`],
/// [`credentials`], [`completions`], [`users`], [`idempotency`] and
/// [`audit_trail`], each on a fresh repository
/// made by `$fresh` (an `async fn() -> Fixture`).
#[macro_export]
macro_rules! conformance_suite {
    ($fresh:path) => {
        $crate::conformance_suite!(@tests $fresh;
            suite::ping_answers,
            suite::user_round_trips,
            suite::duplicate_external_id_is_a_conflict_and_writes_nothing,
            suite::unknown_user_is_not_found,
            suite::a_failed_audit_insert_rolls_back_the_change,
            suite::delete_user_removes_the_user_and_records_the_event,
            suite::concurrent_creations_of_one_user_have_exactly_one_winner,
            suite::audit_events_round_trip_every_field,
            suite::a_changes_events_keep_their_order_and_every_field,
            suite::audit_search_is_newest_first_and_paginates,
            suite::audit_search_filters_by_user_type_and_time,
            flows::a_flow_with_every_field_round_trips,
            flows::a_flow_without_optional_fields_round_trips,
            flows::every_flow_type_state_identity_and_failure_reason_round_trips,
            flows::unknown_flows_are_not_found,
            flows::a_flow_for_a_missing_user_is_not_found,
            flows::flow_prerequisites_read_the_user_and_their_standing,
            flows::flows_awaiting_the_provider_are_listed_oldest_check_first,
            flows::failed_flows_marked_for_a_run_look_up_are_listed_until_it_is_done,
            flows::recorded_provider_events_are_seen,
            flows::flows_of_lists_a_users_flows_newest_first_up_to_the_limit,
            flows::a_flow_listing_filters_on_the_state_each_flow_reads_as_now,
            flows::an_update_over_the_stored_version_round_trips,
            flows::an_update_sets_the_run_and_the_failure_reason,
            flows::a_stale_flow_version_is_a_conflict_and_writes_nothing,
            flows::concurrent_updates_from_one_version_have_exactly_one_winner,
            flows::a_change_can_create_a_user_with_their_first_flow,
            flows::a_failed_event_rolls_back_the_flow_and_its_effects,
            flows::the_open_flow_limit_refuses_the_next_flow_and_writes_nothing,
            flows::terminal_and_expired_flows_do_not_count_as_open,
            flows::the_idv_run_limit_counts_identity_flows_of_the_last_24_hours,
            flows::concurrent_flow_creations_respect_the_open_flow_limit,
            flows::a_limit_reached_after_the_read_refuses_the_flow_and_its_events,
            flows::concurrent_identity_flow_creations_respect_the_idv_run_limit,
            credentials::credentials_round_trip_by_id_webauthn_id_and_user_oldest_first,
            credentials::unknown_credentials_are_not_found,
            credentials::a_duplicate_webauthn_id_is_a_conflict_and_rolls_back_the_change,
            credentials::a_use_records_the_counter_backup_state_and_time,
            credentials::a_counter_that_does_not_grow_is_a_conflict_and_writes_nothing,
            credentials::a_use_kept_despite_its_counter_keeps_the_stored_counter,
            credentials::an_authenticator_without_a_counter_may_stay_at_zero,
            credentials::a_suspended_or_revoked_credential_cannot_be_used,
            credentials::a_refused_use_undoes_the_flow_version_written_with_it,
            credentials::concurrent_uses_of_one_counter_have_exactly_one_winner,
            credentials::only_an_active_credential_counts_as_active,
            credentials::a_status_change_records_the_status_reason_and_time,
            credentials::a_status_change_from_the_wrong_status_is_a_conflict_and_writes_nothing,
            credentials::a_biometric_reference_is_stored_read_and_replaced,
            completions::a_staged_reference_replaces_the_flows_earlier_one_and_is_not_the_users,
            completions::stale_staged_references_are_discarded_and_open_flows_keep_theirs,
            completions::enrolling_a_user_with_a_reference_is_a_conflict_and_writes_nothing,
            completions::requiring_an_active_credential_passes_only_for_an_active_one,
            completions::revoking_other_credentials_revokes_the_users_live_ones_but_the_kept_one,
            completions::cancelling_other_flows_cancels_the_users_open_flows_but_the_kept_one,
            completions::an_applicant_is_set_once_and_replaced_only_as_read,
            completions::flow_prerequisites_tell_live_passkeys_and_the_references_flow,
            completions::concurrent_recoveries_of_one_user_leave_one_new_passkey,
            users::set_applicant_is_visible_on_the_user,
            users::users_are_searched_by_prefix_in_identifier_order,
            users::deleting_a_user_queues_their_provider_cleanup,
            users::users_are_found_by_credential_status,
            users::delete_user_removes_their_flows_credentials_and_reference,
            idempotency::a_new_key_proceeds_and_a_repeat_in_flight_is_in_progress,
            idempotency::a_finished_request_replays_its_exact_response,
            idempotency::an_unfinished_claim_is_retaken_once_its_lock_has_passed,
            idempotency::an_expired_response_is_forgotten,
            idempotency::abandon_releases_an_unfinished_claim_only,
            idempotency::idempotency_keys_are_separate_per_scope,
            idempotency::concurrent_claims_of_one_key_have_exactly_one_winner,
            idempotency::a_provider_event_is_recorded_once,
            idempotency::a_provider_event_seen_before_undoes_the_flow_version_written_with_it,
            idempotency::records_past_their_window_are_purged_in_batches,
            idempotency::deleting_a_user_deletes_the_records_about_them,
            overview::the_overview_counts_flows_and_events_per_bucket,
            overview::rolled_up_hours_count_what_the_flows_count,
            retention::provider_events_past_their_retention_are_purged,
            retention::expired_flows_lose_their_sdk_token_and_ceremony,
            retention::flows_past_their_retention_are_removed_with_what_they_staged,
            audit_trail::sealing_covers_every_event_and_later_ones_stay_pending,
            audit_trail::a_paced_backlog_is_sealed_in_steps_with_a_pause_between,
            audit_trail::retention_drops_only_archived_months_past_the_window,
            audit_trail::zero_retention_keeps_every_month,
            audit_trail::an_archive_manifest_is_recorded_once,
            audit_trail::concurrent_maintainers_seal_each_event_once,
        );
        $crate::conformance_suite!(@tampered $fresh;
            audit_trail::verification_reports_an_edited_a_deleted_and_a_reordered_event,
            audit_trail::altered_or_removed_seals_are_reported,
            completions::deleting_a_user_or_a_flow_removes_what_it_staged,
        );
    };
    (@tampered $fresh:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fresh().await;
                $crate::$module::$name(fixture.repo.clone(), fixture.tamper.clone()).await;
            }
        )*
    };
    (@tests $fresh:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fresh().await;
                $crate::$module::$name(fixture.repo.clone()).await;
            }
        )*
    };
}
