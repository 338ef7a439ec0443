//! What the load measured: latency histograms per call and per flow, and errors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Step;

/// Latencies in microseconds, per step and per whole flow, and errors.
#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) steps: BTreeMap<Step, Histogram<u64>>,
    pub(crate) flows: Option<Histogram<u64>>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl Recorder {
    pub(super) fn step(&mut self, step: Step, started: Instant) {
        self.steps
            .entry(step)
            .or_insert_with(new_histogram)
            .saturating_record((started.elapsed().as_micros() as u64).max(1));
    }

    pub(super) fn flow(&mut self, micros: u64) {
        self.flows
            .get_or_insert_with(new_histogram)
            .saturating_record(micros.max(1));
    }

    /// One flow (or delivery) finished: its latency since `since`, or its error.
    pub(super) fn outcome(&mut self, outcome: anyhow::Result<()>, since: Instant) {
        match outcome {
            Ok(()) => self.flow(since.elapsed().as_micros() as u64),
            Err(e) => note_error(self, e),
        }
    }

    pub(crate) fn flows_done(&self) -> u64 {
        self.flows.as_ref().map_or(0, Histogram::len)
    }

    /// One line for the progress log: flows per second over `elapsed`, and
    /// the whole flow's median and 99th percentile.
    pub(crate) fn summary(&self, elapsed: Duration) -> String {
        let q = |q: f64| {
            self.flows
                .as_ref()
                .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        format!(
            "{:.0} flows/s, flow p50 {:.2} ms, p99 {:.2} ms, {} errors",
            self.flows_done() as f64 / elapsed.as_secs_f64().max(1e-9),
            q(0.5),
            q(0.99),
            self.errors
        )
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

pub(super) fn note_error(rec: &mut Recorder, e: anyhow::Error) {
    rec.errors += 1;
    if rec.first_error.is_none() {
        rec.first_error = Some(format!("{e:#}"));
    }
}

/// Each task's recorder; a task that panicked counts as one error.
pub(super) async fn join(tasks: Vec<tokio::task::JoinHandle<Recorder>>) -> Vec<Recorder> {
    let mut recs = Vec::new();
    for task in tasks {
        recs.push(task.await.unwrap_or(Recorder {
            errors: 1,
            ..Recorder::default()
        }));
    }
    recs
}

pub(crate) fn merge(recs: Vec<Recorder>) -> Recorder {
    let mut all = Recorder::default();
    for rec in recs {
        for (step, h) in rec.steps {
            let _ = all.steps.entry(step).or_insert_with(new_histogram).add(h);
        }
        if let Some(h) = rec.flows {
            let _ = all.flows.get_or_insert_with(new_histogram).add(h);
        }
        all.errors += rec.errors;
        if all.first_error.is_none() {
            all.first_error = rec.first_error;
        }
    }
    all
}
