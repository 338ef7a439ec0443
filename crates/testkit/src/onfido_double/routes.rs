//! The API's endpoints, one file per resource: applicants, workflow runs
//! (with their tasks), and tokens (biometric tokens and SDK tokens).

mod applicants;
mod runs;
pub(super) mod tokens;

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::deliveries::DeliveryPlan;
use super::endpoint::Endpoint;
use super::handle::Shared;
use super::state::DoubleState;

/// Answers an authenticated call to `endpoint`, under the lock; a run
/// approved at creation also returns the deliveries announcing it.
pub(super) fn handle(
    shared: &Shared,
    state: &mut DoubleState,
    endpoint: Endpoint,
    uri: &Uri,
    body: &Value,
) -> (Response, Option<DeliveryPlan>) {
    let response = match endpoint {
        Endpoint::Ping => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "OK").into_response()
        }
        Endpoint::ListApplicants => applicants::list(state),
        Endpoint::CreateApplicant => applicants::create(state, body),
        Endpoint::ReadApplicant(id) => applicants::read(state, &id),
        Endpoint::DeleteApplicant(id) => applicants::delete(state, &id),
        Endpoint::CreateRun => return runs::create(shared, state, body),
        Endpoint::ListRuns => runs::list(state, uri),
        Endpoint::ReadRun(id) => runs::read(state, &id),
        Endpoint::ListTasks(id) => runs::list_tasks(state, &id),
        Endpoint::ReadTask(id, task_id) => runs::read_task(state, &id, &task_id),
        Endpoint::CompleteTask(id, task_id) => runs::complete_task(state, &id, &task_id),
        Endpoint::SdkToken => tokens::sdk_token(state, body),
        Endpoint::ListTokens(user) => tokens::list(state, &user),
        Endpoint::DeleteTokens(user) => tokens::delete_all(state, &user),
        Endpoint::ReadToken(user, uuid) => tokens::read(state, &user, &uuid),
        Endpoint::PutToken(user, uuid) => tokens::update(state, &user, &uuid, body),
        Endpoint::DeleteToken(user, uuid) => tokens::delete(state, &user, &uuid),
    };
    (response, None)
}
