//! `biometric-passkey smoke`: checks a deployed installation from outside,
//! over HTTP, as an operator would after each rollout. It creates no user and
//! starts no IDV run, unless asked for the journey, which runs only against a
//! Core API whose provider is `synthetic`.
//!
//! Every check is one [`Check`]: a name, a verdict and one line of detail.
//! The detail never carries the API key.
//!
//! `core_checks` and `management_checks` check each runtime as any client
//! would see it, `journey` runs the optional registration and step-up, and
//! `client` makes the requests.

mod client;
mod core_checks;
mod journey;
mod management_checks;

use std::time::Duration;

use reqwest::Client;
use secrecy::SecretString;

use self::client::{Target, trim_base};
use self::core_checks::{
    health, key_accepted, provider, ready, unknown_user_refused, version, webhook,
    wrong_key_refused,
};
use self::journey::journey;
use self::management_checks::management;

/// How long one request may take before its check fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command checks, and against what.
pub struct SmokeOptions {
    /// The Core API's base URL, e.g. `https://core.example.com`.
    pub core_url: String,
    /// The management runtime's base URL; its checks are skipped without it.
    pub management_url: Option<String>,
    /// The Core API key the checks present.
    pub api_key: Option<SecretString>,
    /// Also run a registration and a step-up for a throwaway user, then
    /// delete the user (only against the synthetic provider).
    pub journey: bool,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not applicable to this installation (said why); not a failure.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Pass,
            detail: detail.into(),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
        }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Skip,
            detail: detail.into(),
        }
    }
}

/// The whole report; `ok` when no check failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check: verdict, name, detail.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let verdict = match check.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            out.push_str(&format!("{verdict} {:<32} {}\n", check.name, check.detail));
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        if failed == 0 {
            out.push_str("smoke: all checks passed\n");
        } else {
            out.push_str(&format!("smoke: {failed} check(s) failed\n"));
        }
        out
    }
}

/// The first key of a `BIOMETRIC_PASSKEY_CORE_API_KEYS` value (keys separated
/// by commas or white space, as the Core API reads them).
pub fn first_key(keys: &str) -> Option<SecretString> {
    keys.split([',', ' ', '\n', '\t'])
        .find(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_owned()))
}

/// Runs every check, in order, and reports.
pub async fn run(options: SmokeOptions) -> Report {
    let client = match Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            return Report {
                ok: false,
                checks: vec![Check::fail(
                    "client",
                    format!("cannot build an HTTP client: {e}"),
                )],
            };
        }
    };
    let target = Target {
        client,
        core: trim_base(&options.core_url),
        key: options.api_key,
    };
    let mut checks = Vec::new();
    checks.push(health(&target).await);
    checks.push(ready(&target).await);
    let (version, runtime) = version(&target).await;
    checks.push(version);
    let provider = provider(&target, runtime.as_deref()).await;
    checks.push(key_accepted(&target).await);
    checks.push(wrong_key_refused(&target).await);
    checks.push(unknown_user_refused(&target).await);
    checks.push(webhook(&target, provider).await);
    match &options.management_url {
        Some(url) => checks.extend(management(&target.client, &trim_base(url)).await),
        None => checks.push(Check::skip(
            "management",
            "no --management-url given: the management runtime is not checked",
        )),
    }
    if options.journey {
        checks.push(journey(&target, provider).await);
    }
    Report {
        ok: checks.iter().all(|c| c.verdict != Verdict::Fail),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_first_key_is_taken_as_the_runtime_splits_them() {
        let key = first_key(" ,key-one, key-two").unwrap();
        assert_eq!(key.expose_secret(), "key-one");
        assert!(first_key(", ").is_none());
    }
}
