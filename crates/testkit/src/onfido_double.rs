//! A test double of the Onfido / Entrust Identity Verification API v3.6,
//! served over real HTTP on `127.0.0.1:<random port>`, per section 10 of the
//! provider spec (`idv-onfido.md`).
//!
//! Point `BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL` at [`OnfidoDouble::base_url`]:
//! the backend must not be able to tell it from the real service.
//!
//! **Documented** behaviour (the official API definition
//! `onfido/onfido-openapi-spec` and the official clients' tests) is imitated
//! as documented: routes, status codes (201 for creations, 200 for
//! `/sdk_token`, 204 for an applicant's deletion), the §8 error envelope, the
//! run's fields and statuses, the list as a bare array with its filters, a
//! non-null `sdk_token` on every created run (the official clients' tests
//! expect one even for a run approved at creation), `delete_at` on
//! applicants, biometric tokens' 404 body, and the webhook signature.
//!
//! **Assumptions**: where the official material is silent, this double
//! chooses, and every such choice is listed here (the code carrying each is
//! marked "Assumption"):
//!
//! 1. the 401 envelope's `type` (`authorization_error`), the 405 answer, a
//!    body that is not JSON (400 `bad_request`), and the 429 envelope and its
//!    `Retry-After` (see [`responses::rate_limited`]);
//! 2. a deleted applicant reads as 404 and deleting it again is 404; an
//!    applicant scheduled for deletion reads as 200 with `delete_at` set; a
//!    run cannot be created for either (422 `validation_error` on
//!    `applicant_id`);
//! 3. the list of runs pages by [`RUNS_PER_PAGE`]; `created_at_gt/lt` take a
//!    date (compared with the run's calendar day) or a full date-time; the
//!    `tags` filter keeps runs carrying every given tag, and the default
//!    order is newest created first, unless
//!    [`OnfidoDoubleConfig::loose_tags_filter`] says otherwise (the filter
//!    ignored, most recently completed runs first: the reading a client must
//!    survive, since no official test pins either down);
//! 4. a run approved straight from create emits `workflow_run.completed` in
//!    the background;
//! 5. an approved run with a `customer_user_id` makes a biometric token when
//!    the user has none left (enrollment); later approvals reuse it
//!    (authentication); `media_type` is `"motion"`;
//! 6. `DropConnection`, `Delay` and `UnavailableAfterProcessing` faults
//!    *process* the request and then fail to answer, answer late, or answer
//!    503 (a gateway timing out in front of the provider): the ambiguous cases
//!    a client must survive without duplicates. `ServerError`,
//!    `NonJsonBadGateway` and `RateLimited` process nothing;
//! 7. deliveries are retried [`OnfidoDoubleConfig::webhook_retries`] times,
//!    [`RETRY_PAUSE`] apart (the provider's schedule is unpublished);
//! 8. what a run holds once finished: `output` is `{"face_match": …}` (real
//!    keys depend on the workflow version), `reasons` are made-up codes, a run
//!    in `error` has `error.type` `workflow_error`; a completion passes through
//!    `processing` and adds one `face_motion` task; `workflow_version_id` is 1;
//! 9. the list answers an `x-total-count` header, and an unparsable query is
//!    400 `bad_request`;
//! 10. `GET` of a run may lag behind its completion for a set number of reads
//!     ([`OnfidoDouble::set_read_lag`]), standing for eventual consistency the
//!     provider does not document for runs.
//!
//! Besides the API, a control plane outside `/v3.6` lets tests finish runs
//! (`POST /__control/workflow_runs/{id}/complete`, answered once the
//! deliveries are over, or at once with `"deliver": "background"`), and a
//! webhook emitter delivers signed `workflow_run.completed` events with
//! switchable faults.
//!
//! The double's parts, under `onfido_double/`: `config` (what tests set and
//! read: the configuration, routes, faults, recorded requests), `handle` (the
//! running [`OnfidoDouble`]), `state` (applicants, runs, biometric tokens,
//! in memory under one lock), `dispatch` (every request: recorded, counted
//! against the rate limit, authenticated) and `endpoint` (the endpoint it
//! names), `faults` (what a faulted route does instead of, or after,
//! answering), `routes` (the endpoints, by resource), `responses` (the §8
//! error envelope), `deliveries` and `events` (webhook deliveries, their
//! faults and bodies), `control` (the control plane), and `listener` (the
//! listener whose connections a handler can cut).

mod config;
mod control;
mod deliveries;
mod dispatch;
mod endpoint;
mod events;
mod faults;
mod handle;
mod listener;
mod responses;
mod routes;
mod state;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests read the system clock, as the double does
mod tests;

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

pub use config::{
    DeliveryOutcome, Fault, OnfidoDoubleConfig, RECORDED_REQUESTS, RETRY_PAUSE, RUNS_PER_PAGE,
    RecordedRequest, Route, WebhookFault,
};
pub use deliveries::sign;
pub use handle::OnfidoDouble;
pub use routes::tokens::sdk_token_for;

/// How the provider writes its timestamps: UTC, seconds, `Z`.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// The double is test support: it reads the system clock (the domain never does).
#[allow(clippy::disallowed_methods)]
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// UTC, seconds, `Z`: `2026-11-23T10:15:30Z`.
fn ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

/// A lower-case UUIDv4.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
