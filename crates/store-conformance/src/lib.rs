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

pub mod postgres;
pub mod suite;

use std::any::Any;
use std::sync::Arc;

use domain::Repository;

/// A repository under test, plus whatever must stay alive while it is used
/// (a temporary directory, say).
pub struct Fixture {
    pub repo: Arc<dyn Repository>,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    pub fn new(repo: Arc<dyn Repository>, keep: impl Any + Send + Sync) -> Self {
        Self {
            repo,
            _keep: Box::new(keep),
        }
    }
}

/// Expands to one `#[tokio::test]` per behaviour of [`suite`], each on a fresh
/// repository made by `$fresh` (an `async fn() -> Fixture`).
#[macro_export]
macro_rules! conformance_suite {
    ($fresh:path) => {
        $crate::conformance_suite!(@tests $fresh;
            ping_answers,
            user_round_trips,
            duplicate_external_id_is_a_conflict_and_writes_nothing,
            unknown_user_is_not_found,
            a_failed_audit_insert_rolls_back_the_change,
            delete_user_removes_the_user_and_records_the_event,
            concurrent_creations_of_one_user_have_exactly_one_winner,
            audit_events_round_trip_every_field,
            audit_search_is_newest_first_and_paginates,
            audit_search_filters_by_user_type_and_time,
        );
    };
    (@tests $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fresh().await;
                $crate::suite::$name(fixture.repo.clone()).await;
            }
        )*
    };
}
