//! `biometric-passkey healthcheck`: the container HEALTHCHECK of images with no
//! shell (and so no curl). Exits 0 when the local runtime answers 200.

use std::time::Duration;

/// Probes `http://127.0.0.1:{port}{path}`; `Ok` only on HTTP 200.
pub async fn probe(port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status() == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{url}: HTTP {}", response.status().as_u16()))
    }
}
