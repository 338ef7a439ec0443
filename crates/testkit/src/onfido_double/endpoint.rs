//! Which endpoint of the API a request names, or how it is refused.

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use super::config::Route;
use super::responses::{method_not_allowed, not_found, unauthorized};

/// An endpoint of the API, with the ids its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Ping,
    ListApplicants,
    CreateApplicant,
    ReadApplicant(String),
    DeleteApplicant(String),
    CreateRun,
    ListRuns,
    ReadRun(String),
    ListTasks(String),
    ReadTask(String, String),
    CompleteTask(String, String),
    SdkToken,
    ListTokens(String),
    DeleteTokens(String),
    ReadToken(String, String),
    PutToken(String, String),
    DeleteToken(String, String),
}

impl Endpoint {
    pub(super) fn route(&self) -> Option<Route> {
        match self {
            Self::CreateApplicant => Some(Route::CreateApplicant),
            Self::DeleteApplicant(_) => Some(Route::DeleteApplicant),
            Self::CreateRun => Some(Route::CreateRun),
            Self::ReadRun(_) => Some(Route::ReadRun),
            Self::ListRuns => Some(Route::ListRuns),
            Self::ListTokens(_)
            | Self::DeleteTokens(_)
            | Self::ReadToken(..)
            | Self::PutToken(..)
            | Self::DeleteToken(..) => Some(Route::BiometricTokens),
            _ => None,
        }
    }
}

/// The endpoint a request names, or why it names none.
pub(super) fn endpoint(method: &Method, path: &str, authorized: bool) -> Result<Endpoint, Refusal> {
    let Some(rest) = path
        .strip_prefix("/v3.6")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return Err(Refusal::NotFound);
    };
    if !authorized {
        return Err(Refusal::Unauthorized);
    }
    let trimmed = rest.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<String> = trimmed.split('/').map(percent_decode).collect();
    if segments.iter().any(String::is_empty) {
        return Err(Refusal::NotFound);
    }
    resolve(method, &segments)
}

/// Why a request names no endpoint.
pub(super) enum Refusal {
    /// Outside `/v3.6`, or no such path: 404.
    NotFound,
    /// Without the token: 401.
    Unauthorized,
    /// A method the path does not take: 405, with `Allow`.
    MethodNotAllowed(&'static str),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => not_found("Not found"),
            Self::Unauthorized => unauthorized(),
            Self::MethodNotAllowed(allow) => {
                let mut response = method_not_allowed();
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                response
            }
        }
    }
}

/// Maps the segments of a path under `/v3.6` to their endpoint.
fn resolve(method: &Method, segments: &[String]) -> Result<Endpoint, Refusal> {
    use Refusal::{MethodNotAllowed, NotFound};
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = method.as_str();
    let owned = |v: &str| v.to_owned();
    match s.as_slice() {
        ["ping"] => match m {
            "GET" => Ok(Endpoint::Ping),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["applicants"] => match m {
            "GET" => Ok(Endpoint::ListApplicants),
            "POST" => Ok(Endpoint::CreateApplicant),
            _ => Err(MethodNotAllowed("GET, POST")),
        },
        ["applicants", id] => match m {
            "GET" => Ok(Endpoint::ReadApplicant(owned(id))),
            "DELETE" => Ok(Endpoint::DeleteApplicant(owned(id))),
            _ => Err(MethodNotAllowed("GET, DELETE")),
        },
        ["workflow_runs"] => match m {
            "GET" => Ok(Endpoint::ListRuns),
            "POST" => Ok(Endpoint::CreateRun),
            _ => Err(MethodNotAllowed("GET, POST")),
        },
        ["workflow_runs", id] => match m {
            "GET" => Ok(Endpoint::ReadRun(owned(id))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks"] => match m {
            "GET" => Ok(Endpoint::ListTasks(owned(id))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks", task] => match m {
            "GET" => Ok(Endpoint::ReadTask(owned(id), owned(task))),
            _ => Err(MethodNotAllowed("GET")),
        },
        ["workflow_runs", id, "tasks", task, "complete"] => match m {
            "POST" => Ok(Endpoint::CompleteTask(owned(id), owned(task))),
            _ => Err(MethodNotAllowed("POST")),
        },
        ["sdk_token"] => match m {
            "POST" => Ok(Endpoint::SdkToken),
            _ => Err(MethodNotAllowed("POST")),
        },
        ["biometric_tokens", user] => match m {
            "GET" => Ok(Endpoint::ListTokens(owned(user))),
            "DELETE" => Ok(Endpoint::DeleteTokens(owned(user))),
            _ => Err(MethodNotAllowed("GET, DELETE")),
        },
        ["biometric_tokens", user, uuid] => match m {
            "GET" => Ok(Endpoint::ReadToken(owned(user), owned(uuid))),
            "PUT" => Ok(Endpoint::PutToken(owned(user), owned(uuid))),
            "DELETE" => Ok(Endpoint::DeleteToken(owned(user), owned(uuid))),
            _ => Err(MethodNotAllowed("GET, PUT, DELETE")),
        },
        _ => Err(NotFound),
    }
}

fn percent_decode(segment: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
