//! Figures, as a markdown report and as JSON. `markdown` gives the sections
//! in the order docs/performance.md presents them, each written by the
//! module of its subject: the fixed yardstick (`yardstick`), maximum
//! throughput (`throughput`), the metrics' cost (here), latency at half rate
//! (`latency`), webhook ingestion (`webhooks`), CPU and memory
//! (`resources`); `json` gives every figure.

mod json;
mod latency;
mod resources;
mod stats;
mod throughput;
mod webhooks;
mod yardstick;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::load::{Recorder, Scenario};
pub(crate) use stats::ProcessStats;
use stats::TICKS_PER_SECOND;

/// The product with its metrics off, in the report.
pub(crate) const METRICS_OFF: &str = "product, metrics off";

/// The share of the fixed yardstick's requests per second each call that
/// creates or advances a flow is to reach.
const YARDSTICK_TARGET: f64 = 0.8;

/// A call slower than this counts as slow: the latency target is a p99
/// under it at half the maximum rate.
const SLOW: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Closed loop: as many flows as the service answers.
    Max,
    /// Fixed arrivals at half the product's maximum flow rate.
    Half,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Max => "max",
            Phase::Half => "half",
        }
    }
}

struct Figures {
    elapsed: Duration,
    recorder: Recorder,
    cpu_ms: f64,
    /// The whole machine's busy CPU over the same time.
    machine_ms: f64,
}

impl Figures {
    /// `earlier` (rounds of the same flow and service add up) plus one round.
    fn after(
        earlier: Option<Self>,
        recorder: Recorder,
        elapsed: Duration,
        before: ProcessStats,
        after: ProcessStats,
    ) -> Self {
        let ms = |a: u64, b: u64| a.saturating_sub(b) as f64 * 1000.0 / TICKS_PER_SECOND;
        let cpu_ms = ms(after.cpu_ticks, before.cpu_ticks);
        let machine_ms = ms(after.machine_ticks, before.machine_ticks);
        match earlier {
            Some(old) => Self {
                elapsed: old.elapsed + elapsed,
                recorder: crate::load::merge(vec![old.recorder, recorder]),
                cpu_ms: old.cpu_ms + cpu_ms,
                machine_ms: old.machine_ms + machine_ms,
            },
            None => Self {
                elapsed,
                recorder,
                cpu_ms,
                machine_ms,
            },
        }
    }

    fn requests(&self) -> u64 {
        self.recorder.steps.values().map(Histogram::len).sum()
    }
}

/// A measured run: its phase, its flow and the service's name in the report.
pub(crate) type RunKey = (Phase, Scenario, &'static str);

pub(crate) struct Report {
    duration: Duration,
    rounds: u32,
    clients: usize,
    users_per_client: usize,
    pool: u32,
    runs: BTreeMap<RunKey, Figures>,
    webhooks: BTreeMap<&'static str, Figures>,
    rss: BTreeMap<&'static str, u64>,
    /// Each maximum-throughput round's flows per second, in the order they ran.
    max_rounds: BTreeMap<(Scenario, &'static str), Vec<f64>>,
}

/// A section's heading, then its table's header and alignment rows.
fn table(out: &mut String, title: &str, header: &str, alignment: &str) {
    let _ = writeln!(out, "\n### {title}\n\n{header}\n{alignment}");
}

/// `part` of `whole` in per cent, or a dash when there is nothing.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.2} %", part as f64 * 100.0 / whole as f64)
    }
}

/// The product's rate over the baseline's, round by round (pairs where the
/// baseline did nothing are left out).
fn pair_ratios(product: &[f64], baseline: &[f64]) -> Vec<f64> {
    product
        .iter()
        .zip(baseline)
        .filter(|(_, b)| **b > 0.0)
        .map(|(p, b)| p / b)
        .collect()
}

/// `values` with `decimals` digits after the point, comma-separated.
fn joined(values: &[f64], decimals: usize) -> String {
    values
        .iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The requests slower than [`SLOW`] (to within the histogram's resolution,
/// 8 µs there).
fn slow_calls(h: &Histogram<u64>) -> u64 {
    h.len() - h.count_between(0, SLOW.as_micros() as u64)
}

impl Report {
    pub(crate) fn new(shape: crate::run::Shape) -> Self {
        Self {
            duration: shape.duration,
            rounds: shape.rounds,
            clients: shape.clients,
            users_per_client: shape.users_per_client,
            pool: shape.pool,
            runs: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            rss: BTreeMap::new(),
            max_rounds: BTreeMap::new(),
        }
    }

    /// One measured run of `key`: its phase, flow and service.
    pub(crate) fn add(
        &mut self,
        key: RunKey,
        recorder: Recorder,
        elapsed: Duration,
        before: ProcessStats,
        after: ProcessStats,
    ) {
        let figures = Figures::after(self.runs.remove(&key), recorder, elapsed, before, after);
        self.runs.insert(key, figures);
    }

    /// One maximum-throughput round's flows per second.
    pub(crate) fn add_max_round(&mut self, scenario: Scenario, service: &'static str, rate: f64) {
        self.max_rounds
            .entry((scenario, service))
            .or_default()
            .push(rate);
    }

    pub(crate) fn add_webhooks(
        &mut self,
        service: &'static str,
        recorder: Recorder,
        elapsed: Duration,
        before: ProcessStats,
        after: ProcessStats,
    ) {
        let figures = Figures::after(
            self.webhooks.remove(service),
            recorder,
            elapsed,
            before,
            after,
        );
        self.webhooks.insert(service, figures);
    }

    /// Flows per second so far of one flow and service in a phase.
    pub(crate) fn flow_rate(&self, phase: Phase, scenario: Scenario, service: &str) -> f64 {
        self.runs
            .iter()
            .find(|((p, s, n), _)| *p == phase && *s == scenario && *n == service)
            .map_or(0.0, |(_, f)| Self::rate(f, f.recorder.flows_done()))
    }

    pub(crate) fn peak_rss(&mut self, service: &'static str, kb: u64) {
        self.rss.insert(service, kb);
    }

    pub(crate) fn errors(&self) -> u64 {
        self.runs
            .values()
            .chain(self.webhooks.values())
            .map(|f| f.recorder.errors)
            .sum()
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.runs
            .values()
            .chain(self.webhooks.values())
            .find_map(|f| f.recorder.first_error.clone())
    }

    fn rate(f: &Figures, count: u64) -> f64 {
        count as f64 / f.elapsed.as_secs_f64()
    }

    /// The report: one section after the other, as docs/performance.md
    /// presents them.
    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        self.yardstick_markdown(&mut out);
        if !out.is_empty() {
            out.push('\n');
        }
        self.max_throughput_markdown(&mut out);
        self.max_rates_markdown(&mut out);
        self.metrics_cost_markdown(&mut out);
        self.half_rate_markdown(&mut out);
        self.slow_calls_markdown(&mut out);
        self.webhooks_markdown(&mut out);
        self.cpu_markdown(&mut out);
        self.resources_markdown(&mut out);
        let _ = writeln!(out, "\nFailed flows or deliveries: {}", self.errors());
        out
    }

    /// The server process's and the machine's CPU ms per request in
    /// `service`'s maximum-throughput rounds of `scenario`.
    fn cpu_per_request(&self, scenario: Scenario, service: &str) -> Option<(f64, f64)> {
        self.runs
            .get(&(Phase::Max, scenario, service))
            .filter(|f| f.requests() > 0)
            .map(|f| {
                let n = f.requests() as f64;
                (f.cpu_ms / n, f.machine_ms / n)
            })
    }

    /// Every flow's maximum throughput with the product's metrics on and
    /// off, in the same rounds: the difference next to the spread between
    /// rounds of the same service, and the CPU each spends per request.
    fn metrics_cost_markdown(&self, out: &mut String) {
        let rates = |scenario, service| self.max_rounds.get(&(scenario, service)).cloned();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        // The rounds' range over their mean, in per cent.
        let spread = |v: &[f64]| {
            let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
                (lo.min(*x), hi.max(*x))
            });
            if v.len() < 2 || mean(v) <= 0.0 {
                0.0
            } else {
                (hi - lo) * 100.0 / mean(v)
            }
        };
        let mut header = false;
        let mut differences = Vec::new();
        for scenario in Scenario::ALL {
            let (Some(on), Some(off)) = (rates(scenario, "product"), rates(scenario, METRICS_OFF))
            else {
                continue;
            };
            if !header {
                table(
                    out,
                    "What the metrics cost (maximum throughput, flows/s; the product with its metrics served and with `BIOMETRIC_PASSKEY_METRICS_PORT=0`, in the same rounds)",
                    "| flow | metrics on: rounds | metrics off: rounds | on | off | difference | spread between rounds, on / off | × baseline, on / off | within the spread | service CPU ms / request, on / off | machine CPU ms / request, on / off |",
                    "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
                );
                header = true;
            }
            let (m_on, m_off) = (mean(&on), mean(&off));
            let difference = if m_off > 0.0 {
                (m_on - m_off) * 100.0 / m_off
            } else {
                0.0
            };
            let (s_on, s_off) = (spread(&on), spread(&off));
            let within = -difference <= s_on.max(s_off);
            differences.push((scenario.name(), difference, within));
            let baseline = rates(scenario, "baseline").map_or(0.0, |b| mean(&b));
            let ratio = |m: f64| {
                if baseline > 0.0 {
                    format!("{:.2}", m / baseline)
                } else {
                    "–".into()
                }
            };
            // Service and machine CPU per request, each as "on / off".
            let (service_cpu, machine_cpu) = match (
                self.cpu_per_request(scenario, "product"),
                self.cpu_per_request(scenario, METRICS_OFF),
            ) {
                (Some(on), Some(off)) => (
                    format!("{:.3} / {:.3}", on.0, off.0),
                    format!("{:.3} / {:.3}", on.1, off.1),
                ),
                _ => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {m_on:.0} | {m_off:.0} | {difference:+.1} % | {s_on:.1} % / {s_off:.1} % | {} / {} | {} | {} | {} |",
                scenario.name(),
                joined(&on, 0),
                joined(&off, 0),
                ratio(m_on),
                ratio(m_off),
                if within { "yes" } else { "no" },
                service_cpu,
                machine_cpu,
            );
        }
        metrics_cost_summary(out, &differences);
    }
}

/// The run's verdict on the metrics: how many flows' differences lie within
/// their rounds' spread, and the differences' mean and range.
fn metrics_cost_summary(out: &mut String, differences: &[(&str, f64, bool)]) {
    let by_difference = |a: &&(&str, f64, bool), b: &&(&str, f64, bool)| a.1.total_cmp(&b.1);
    let (Some(lowest), Some(highest)) = (
        differences.iter().min_by(by_difference),
        differences.iter().max_by(by_difference),
    ) else {
        return;
    };
    let within = differences.iter().filter(|d| d.2).count();
    let mean = differences.iter().map(|d| d.1).sum::<f64>() / differences.len() as f64;
    let _ = writeln!(
        out,
        "\n{within} of {} flows within the spread between their rounds; \
         difference with metrics on {mean:+.1} % on average, from {:+.1} % ({}) to {:+.1} % ({}).",
        differences.len(),
        lowest.1,
        lowest.0,
        highest.1,
        highest.0,
    );
}
