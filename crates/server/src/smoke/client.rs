//! The requests the checks make: to the Core API with the configured key,
//! or to any URL; an answer is its status and its body as JSON.

use reqwest::{Client, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// An answer: its status and its body as JSON (`Null` when it is not JSON).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl Answer {
    pub(super) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `HTTP 404 user_not_found`, for a detail line.
    pub(super) fn describe(&self) -> String {
        match self.code() {
            "" => format!("HTTP {}", self.status.as_u16()),
            code => format!("HTTP {} {code}", self.status.as_u16()),
        }
    }
}

pub(super) struct Target {
    pub(super) client: Client,
    pub(super) core: String,
    pub(super) key: Option<SecretString>,
}

impl Target {
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Answer, String> {
        let mut request = self.client.request(method, url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| describe_error(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| describe_error(&e))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A Core API call with the configured key.
    pub(super) async fn core(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let url = format!("{}{path}", self.core);
        let key = self.key.as_ref().map(|k| k.expose_secret());
        self.call(method, &url, body.as_ref(), key).await
    }
}

/// Names what went wrong with a request without echoing anything it carried.
fn describe_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_decode() || err.is_body() {
        "the answer could not be read"
    } else {
        "request failed"
    };
    match err.url() {
        Some(url) => format!("{kind}: {}", without_query(url)),
        None => kind.to_owned(),
    }
}

fn without_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

pub(super) fn trim_base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}
