//! Sending a call: the URL under the base, the headers, one attempt with its
//! timeout, and the retries with backoff a kind of call allows.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::OnfidoProvider;
use super::failure::{Envelope, Failure};

/// The resource a path names, for log lines: its first segment, without the
/// ids and the query that follow (applicant ids and pseudonyms are never logged).
pub(super) fn resource_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
}

fn parse_retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl OnfidoProvider {
    /// The base URL with `path` (which may carry a query) appended: only the
    /// path and query are parsed, not the whole URL again.
    pub(super) fn url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let base = &self.settings.base_url;
        let mut url = base.clone();
        url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
        url.set_query(query);
        url
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Some(propagate) = self.settings.propagate {
            propagate(&mut headers);
        }
        self.http
            .request(method, self.url(path))
            .headers(headers)
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// One attempt: the body on success, a classified failure otherwise.
    pub(super) async fn attempt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let mut request = self.request(method, path);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        // Errors name no URL: paths carry applicant ids and pseudonyms, and
        // these messages reach the log.
        let response = request.send().await.map_err(|e| {
            let e = e.without_url();
            if e.is_connect() {
                Failure::NotSent(format!("connecting to the provider: {e}"))
            } else {
                Failure::Ambiguous(format!("calling the provider: {e}"))
            }
        })?;
        let status = response.status();
        let retry_after = parse_retry_after(&response);
        let bytes = response.bytes().await.map_err(|e| {
            Failure::Ambiguous(format!(
                "reading the provider's answer: {}",
                e.without_url()
            ))
        })?;
        if status.is_success() {
            return Ok((status, bytes.to_vec()));
        }
        // Older clients fall back to `unknown` when the body is not the envelope.
        let kind = serde_json::from_slice::<Envelope>(&bytes)
            .ok()
            .and_then(|e| e.error.kind)
            .unwrap_or_else(|| "unknown".to_owned());
        Err(Failure::Status {
            status,
            kind,
            retry_after,
        })
    }

    /// Attempts with backoff while the failure is retryable for this kind of call.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        self.call_until(method, path, body, safe, None).await
    }

    /// [`Self::call`], all attempts and waits over by `deadline` when given.
    pub(super) async fn call_until(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
        deadline: Option<Instant>,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let mut attempt = 0;
        loop {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Failure::Ambiguous(
                            "no time left to call the provider".into(),
                        ));
                    }
                    Some(left.min(self.settings.timeout))
                }
            };
            match self.attempt(method.clone(), path, body, timeout).await {
                Ok(ok) => return Ok(ok),
                Err(failure) if attempt < self.settings.retries && failure.retryable(safe) => {
                    let wait = self.retry_wait(&failure, attempt);
                    if wait > self.settings.max_retry_wait
                        || deadline.is_some_and(|d| Instant::now() + wait >= d)
                    {
                        return Err(failure);
                    }
                    tracing::warn!(
                        resource = resource_of(path),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying the IDV provider"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// How long to wait before the next attempt after `failure`.
    pub(super) fn retry_wait(&self, failure: &Failure, attempt: u32) -> Duration {
        match failure {
            Failure::Status {
                retry_after: Some(after),
                ..
            } => *after,
            _ => Duration::from_millis(200 * 2u64.pow(attempt)),
        }
    }

    /// [`Self::call`], with the answer read as `T` (a `Value` to keep it all).
    pub(super) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
    ) -> Result<T, Failure> {
        self.json_until(method, path, body, safe, None).await
    }

    /// [`Self::json`], all attempts over by `deadline` when given.
    pub(super) async fn json_until<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        safe: bool,
        deadline: Option<Instant>,
    ) -> Result<T, Failure> {
        let (_, bytes) = self.call_until(method, path, body, safe, deadline).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Ambiguous(format!("the provider's answer cannot be read: {e}")))
    }
}
