//! `bench faults check`: a scenario's line of figures, and what the product
//! must meet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::database::{
    LOOKUPS_DONE_WITHIN, judge, orphaned, read_database, stuck, wait_for_run_lookups, waited,
};
use super::journal::{Entry, read_journal};
use crate::load;

/// What `bench faults check` is given.
pub(crate) struct CheckOptions {
    pub(crate) scenario: String,
    pub(crate) journal: PathBuf,
    pub(crate) database: String,
    /// When the fault began and ended (ms since the epoch); none for a
    /// run without a fault.
    pub(crate) fault: Option<(u64, u64)>,
    /// No call may fail at all (a rolling deploy).
    pub(crate) strict: bool,
    /// A replica was killed at the fault's start: the calls it was serving
    /// then have no answer (or HAProxy's 502), and are counted apart.
    pub(crate) killed: bool,
    /// The fault was the provider's outage: a call that needs the provider
    /// may take up to [`PROVIDER_FAIL_SECONDS`] to fail, recovery is timed
    /// by the calls sent after the fault, and every run the double created
    /// during the scenario must be known to a flow (none orphaned).
    pub(crate) provider_outage: Option<ProviderOutage>,
}

/// The provider outage's check: where the double lists its runs.
pub(crate) struct ProviderOutage {
    pub(crate) runs_url: String,
}

/// The kill follows the script's mark by this at most.
const KILL_LANDS_WITHIN_MS: u64 = 1_000;

/// How the calls a killed replica was serving are counted.
pub(super) const CUT_OFF: &str = "cut off by the kill";

/// The figures of one scenario.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) calls: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// The longest a failed call took, in seconds.
    pub(crate) slowest_failure: f64,
    /// From the fault's end to the last failed call's answer, in seconds.
    pub(crate) recovered_after: f64,
    pub(crate) lost: Vec<String>,
    pub(crate) impossible: Vec<String>,
    /// Flows whose run the provider completed that never completed.
    pub(crate) stuck: Vec<String>,
    /// Runs the provider created that no flow knows of (when looked for).
    pub(crate) orphaned: Option<Vec<String>>,
    /// The longest a failed call may take, when not [`FAIL_FAST_SECONDS`].
    pub(crate) fail_within: Option<f64>,
}

impl Figures {
    pub(crate) fn line(&self, scenario: &str) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{n} × {code}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "faults: {scenario}: {} calls, errors: {errors}; slowest failure {:.1} s; \
             recovered {:.1} s after the fault; lost writes {}; impossible flows {}; \
             stuck flows {}{}",
            self.calls,
            self.slowest_failure,
            self.recovered_after,
            self.lost.len(),
            self.impossible.len(),
            self.stuck.len(),
            self.orphaned
                .as_ref()
                .map(|o| format!("; orphaned runs {}", o.len()))
                .unwrap_or_default()
        )
    }

    /// What the product must meet, as sentences; empty when it does.
    pub(crate) fn breaches(&self, strict: bool) -> Vec<String> {
        let mut breaches = Vec::new();
        let failures: usize = self.errors.values().sum();
        if strict && failures > 0 {
            breaches.push(format!("{failures} failed calls where none may fail"));
        }
        for code in self.errors.keys() {
            if !code.starts_with("503 ") && code != CUT_OFF {
                breaches.push(format!("calls failed with {code}, not 503 and a code"));
            }
        }
        let fail_within = self.fail_within.unwrap_or(FAIL_FAST_SECONDS);
        if self.slowest_failure > fail_within {
            breaches.push(format!(
                "a call took {:.1} s to fail (at most {fail_within} s)",
                self.slowest_failure
            ));
        }
        if self.recovered_after > RECOVER_SECONDS {
            breaches.push(format!(
                "calls failed {:.1} s after the fault ended (at most {RECOVER_SECONDS} s)",
                self.recovered_after
            ));
        }
        breaches.extend(self.lost.iter().map(|l| format!("lost write: {l}")));
        breaches.extend(
            self.impossible
                .iter()
                .map(|l| format!("impossible flow: {l}")),
        );
        breaches.extend(self.stuck.iter().map(|l| format!("stuck flow: {l}")));
        breaches.extend(
            self.orphaned
                .iter()
                .flatten()
                .map(|l| format!("orphaned run: {l}")),
        );
        breaches
    }
}

/// A call fails within this during a fault (the pool's bounded wait for a
/// connection, with the load balancer's and the call's own time on top).
const FAIL_FAST_SECONDS: f64 = 5.5;
/// Errors stop within this after the fault ends.
const RECOVER_SECONDS: f64 = 5.0;
/// During a provider outage a call that needs the provider fails within
/// this: the flow's creation waits on the provider for 4 s at most
/// (`domain::idv::RUN_CREATION_BUDGET`), with the call's own time on top.
const PROVIDER_FAIL_SECONDS: f64 = 5.5;

/// Calls, errors by code, the slowest failure and the recovery after `fault`.
pub(crate) fn count(entries: &[Entry], fault: Option<(u64, u64)>, killed: bool) -> Figures {
    let product = || {
        entries
            .iter()
            .filter(|e| e.step != load::COMPLETE_AT_PROVIDER)
    };
    let mut figures = Figures {
        calls: product().count(),
        ..Figures::default()
    };
    for entry in product().filter(|e| !e.ok()) {
        let cut_off = killed
            && matches!(entry.status, 0 | 502)
            && fault.is_some_and(|(start, _)| entry.sent <= start + KILL_LANDS_WITHIN_MS);
        let tally = if cut_off {
            CUT_OFF.to_owned()
        } else {
            entry.failure()
        };
        *figures.errors.entry(tally).or_default() += 1;
        let took = entry.done.saturating_sub(entry.sent) as f64 / 1000.0;
        figures.slowest_failure = figures.slowest_failure.max(took);
        if let Some((_, end)) = fault {
            let after = entry.done.saturating_sub(end) as f64 / 1000.0;
            figures.recovered_after = figures.recovered_after.max(after);
        }
    }
    figures
}

/// Prints the scenario's line; fails when the product did not meet the suite.
#[allow(clippy::print_stdout)] // The command's output.
pub(crate) async fn check(options: CheckOptions) -> anyhow::Result<()> {
    let entries = read_journal(&options.journal)?;
    let mut figures = count(&entries, options.fault, options.killed);
    if options.provider_outage.is_some() {
        let waiting = wait_for_run_lookups(&options.database).await?;
        if waiting > 0 {
            anyhow::bail!(
                "{}: {waiting} failed flows still wait for the look-up of their run {} s \
                 after the load",
                options.scenario,
                LOOKUPS_DONE_WITHIN.as_secs()
            );
        }
    }
    let db = read_database(&options.database).await?;
    (figures.lost, figures.impossible) = judge(&entries, &db);
    figures.stuck = stuck(&entries, &db);
    if let Some(outage) = &options.provider_outage {
        figures.fail_within = Some(PROVIDER_FAIL_SECONDS);
        // Calls in flight when the provider came back may still fail (an
        // answer it was late with); recovery is when calls stop failing.
        if let Some((_, end)) = options.fault {
            figures.recovered_after = entries
                .iter()
                .filter(|e| e.step != load::COMPLETE_AT_PROVIDER && !e.ok())
                .map(|e| e.sent.saturating_sub(end) as f64 / 1000.0)
                .fold(0.0, f64::max);
        }
        let runs: Vec<Value> = reqwest::get(&outage.runs_url)
            .await?
            .error_for_status()?
            .json()
            .await?;
        let since = entries.iter().map(|e| e.sent).min().unwrap_or(0);
        figures.orphaned = Some(orphaned(&runs, since, &db));
        if let Some(fault) = options.fault {
            let (runs, last) = waited(&entries, &db, fault);
            println!(
                "faults: {}: {runs} runs completed at the provider during the fault; \
                 the last of their flows read completed {last:.1} s after it",
                options.scenario
            );
        }
    }
    println!("{}", figures.line(&options.scenario));
    let breaches = figures.breaches(options.strict);
    if breaches.is_empty() {
        return Ok(());
    }
    for breach in breaches.iter().take(20) {
        println!("faults: {}: {breach}", options.scenario);
    }
    anyhow::bail!(
        "{}: {} breaches of what the product must meet",
        options.scenario,
        breaches.len()
    )
}
