//! Users: the search by identifier prefix and creation time, one user with
//! their credentials and recent flows, and a user's deletion.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use domain::ExternalUserId;
use domain::audit::Subject;
use domain::credential::CredentialStatus;
use http_common::{ApiError, ApiJson, ApiPath, ApiQuery};
use proto::management::{UserDetail, UserListItem, UserPage};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::credentials::credential_summaries;
use super::flows::flow_summary;
use super::{
    invalid_parameter, listed_param, operator_context, page_limit, record_read, time_param,
};
use crate::ManagementState;
use crate::auth::{Operator, RequireScope, Scope};

/// The flows a user's page lists, newest first.
pub const RECENT_FLOWS: u32 = 20;

/// Filters of a user search. Times are RFC 3339.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserFilter {
    /// Users whose identifier starts with this (empty: all).
    #[param(max_length = 128, pattern = "^[A-Za-z0-9._~-]{0,128}$")]
    pub prefix: Option<String>,
    /// Only users with a credential in this status: `active`, `suspended` or `revoked`.
    pub credential_status: Option<String>,
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// The previous page's `next_after` (empty: the first page).
    #[param(pattern = "^(?:i:[A-Za-z0-9._~-]{1,128}|t:-?[0-9]{1,17}:[A-Za-z0-9._~-]{1,128})?$")]
    pub after: Option<String>,
    /// At most this many (taken as 1–200; default 50).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub limit: Option<u32>,
}

impl UserFilter {
    /// The search the filters ask for.
    fn query(&self) -> Result<domain::UserQuery, ApiError> {
        let prefix = self.prefix.clone().filter(|p| !p.is_empty());
        if let Some(prefix) = &prefix {
            http_common::external_user_id(prefix)?;
        }
        let after = self
            .after
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let credential_status =
            listed_param::<CredentialStatus>(self.credential_status.as_deref(), |_| {
                "credential_status must be active, suspended or revoked".to_owned()
            })?;
        Ok(domain::UserQuery {
            prefix,
            credential_status,
            created_from: time_param(self.created_from.as_deref(), "created_from")?,
            created_before: time_param(self.created_before.as_deref(), "created_before")?,
            after,
            limit: page_limit(self.limit),
        })
    }

    /// The filters as the audit trail records them (never the prefix itself).
    fn on_record(&self) -> serde_json::Value {
        json!({
            "prefix_length": self.prefix.as_deref().map(str::len),
            "credential_status": self.credential_status,
            "created_from": self.created_from,
            "created_before": self.created_before,
            "continued": self.after.is_some(),
        })
    }
}

#[utoipa::path(get, path = "/api/management/v1/users", tag = "users", params(UserFilter), responses((status = 200, body = UserPage), (status = 400, body = proto::ErrorBody), (status = 403, body = proto::ErrorBody)))]
/// Users by identifier prefix and creation time, in identifier order.
pub async fn users(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    filter: Result<ApiQuery<UserFilter>, ApiError>,
) -> Result<ApiJson<UserPage>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let ApiQuery(filter) = filter?;
    let page = state.management.search_users(&filter.query()?).await?;
    record_read(
        &state,
        &operator,
        "users",
        Subject::default(),
        json!({ "filters": filter.on_record(), "rows": page.items.len() }),
    )
    .await?;
    Ok(ApiJson(UserPage {
        users: page
            .items
            .into_iter()
            .map(|u| UserListItem {
                external_user_id: u.external_id.as_str().to_owned(),
                pseudonym: u.pseudonym.as_str().to_owned(),
                created_at: u.created_at,
            })
            .collect(),
        next_after: page.next.as_ref().map(encode_cursor),
    }))
}

/// Cursors are opaque to clients: `i:<identifier>` or `t:<unix µs>:<identifier>`
/// (identifiers hold no `:`). The document's pattern for `after` is
/// [`CURSOR_PATTERN`].
fn encode_cursor(cursor: &domain::UserCursor) -> String {
    match cursor {
        domain::UserCursor::ExternalId(id) => format!("i:{id}"),
        domain::UserCursor::Created(at, id) => {
            format!("t:{}:{id}", at.unix_timestamp_nanos() / 1000)
        }
    }
}

/// What `after` may be (the pattern of the document's `after` parameter).
pub const CURSOR_PATTERN: &str =
    "^(?:i:[A-Za-z0-9._~-]{1,128}|t:-?[0-9]{1,17}:[A-Za-z0-9._~-]{1,128})?$";

fn decode_cursor(raw: &str) -> Result<domain::UserCursor, ApiError> {
    let invalid = || invalid_parameter("after is not a cursor of this search");
    let valid_id = |id: &str| {
        ExternalUserId::parse(id)
            .map(|_| id.to_owned())
            .map_err(|_| invalid())
    };
    match raw.split_once(':') {
        Some(("i", id)) => Ok(domain::UserCursor::ExternalId(valid_id(id)?)),
        Some(("t", rest)) => {
            let (micros, id) = rest.split_once(':').ok_or_else(invalid)?;
            // At most 17 digits (a time within about 3 000 years of 1970,
            // always representable), as the documented pattern says.
            let digits = micros.strip_prefix('-').unwrap_or(micros);
            if digits.is_empty() || digits.len() > 17 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            let micros: i128 = micros.parse().map_err(|_| invalid())?;
            let at =
                OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| invalid())?;
            Ok(domain::UserCursor::Created(at, valid_id(id)?))
        }
        _ => Err(invalid()),
    }
}

#[utoipa::path(get, path = "/api/management/v1/users/{external_user_id}", tag = "users", params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")), responses((status = 200, body = UserDetail), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
/// A user with their credentials and most recent flows. Never a biometric
/// reference, a ciphertext or an IDV token.
pub async fn user(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<UserDetail>, ApiError> {
    operator.require(Scope::UsersRead)?;
    let id = http_common::external_user_id(&raw)?;
    let domain::management::UserDetail {
        view,
        recent_flows: flows,
    } = state.management.user(&id, RECENT_FLOWS).await?;
    record_read(
        &state,
        &operator,
        "user",
        Subject::of_user(&view.user),
        json!({ "credentials": view.credentials.len(), "recent_flows": flows.len() }),
    )
    .await?;
    let user = view.user;
    Ok(ApiJson(UserDetail {
        external_user_id: user.external_id.as_str().to_owned(),
        user_id: user.id.0,
        pseudonym: user.pseudonym.as_str().to_owned(),
        created_at: user.created_at,
        has_biometric_reference: view.has_biometric_reference,
        credentials: credential_summaries(&state, view.credentials),
        recent_flows: flows.iter().map(flow_summary).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/management/v1/users/{external_user_id}", tag = "users", params(("external_user_id" = String, Path, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._~-]{1,128}$")), responses((status = 204, description = "Deleted"), (status = 403, body = proto::ErrorBody), (status = 404, body = proto::ErrorBody)))]
/// Deletes the user: credentials, biometric reference and flows at once; the
/// provider-side data through the Core API's cleanup queue. Audited with the
/// operator's `sub`; the trail keeps the user's pseudonym.
pub async fn delete_user(
    State(state): State<ManagementState>,
    Extension(operator): Extension<Operator>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    operator.require(Scope::UsersDelete)?;
    let id = http_common::external_user_id(&raw)?;
    state
        .management
        .delete_user(&operator_context(&operator), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_exactly_what_the_documented_pattern_allows() {
        for (raw, accepted) in [
            ("i:acme-1", true),
            ("t:1767225600000000:acme-1", true),
            ("t:-99999999999999999:a", true),
            ("t:99999999999999999:a", true),
            // More than 17 digits, a sign the pattern does not allow, or none.
            ("t:100000000000000000:a", false),
            ("t:+1:a", false),
            ("t::a", false),
            ("t:-:a", false),
            ("i:", false),
            ("i:a b", false),
            ("x:a", false),
        ] {
            assert_eq!(decode_cursor(raw).is_ok(), accepted, "{raw}");
        }
        let encoded = encode_cursor(&domain::UserCursor::Created(
            OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap(),
            "acme-1".to_owned(),
        ));
        assert_eq!(encoded, "t:1767225600000000:acme-1");
        assert!(decode_cursor(&encoded).is_ok());
    }
}
