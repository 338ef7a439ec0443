//! Figures, as a markdown report and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::load::{READ, Recorder, Scenario, Step};

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

/// A process's CPU time and peak resident memory, and the whole machine's
/// busy CPU time (every process, PostgreSQL and the kernel included), from
/// /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_ticks: u64,
    pub(crate) peak_rss_kb: u64,
    pub(crate) machine_ticks: u64,
}

/// Linux's USER_HZ: /proc reports CPU time in hundredths of a second.
const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessStats {
    pub(crate) fn read(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Self {
            cpu_ticks: cpu_ticks(&stat),
            peak_rss_kb,
            machine_ticks: machine_busy_ticks(&machine),
        }
    }
}

/// The machine's busy CPU ticks, all CPUs, from `/proc/stat`'s `cpu` line:
/// everything but idle and I/O wait (0 when it cannot be read).
fn machine_busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, f)| f.parse::<u64>().unwrap_or(0))
        .sum()
}

/// User + system CPU ticks from a `/proc/<pid>/stat` line (0 when it cannot
/// be read).
fn cpu_ticks(stat: &str) -> u64 {
    // The command name sits in parentheses and may hold spaces or ')'; after
    // it, the state is field 3 of the line, utime and stime are 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    rest.split_whitespace()
        .skip(14 - 3)
        .take(2)
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum()
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

pub(crate) struct Report {
    duration: Duration,
    rounds: u32,
    clients: usize,
    users_per_client: usize,
    pool: u32,
    runs: BTreeMap<(Phase, Scenario, &'static str), Figures>,
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
    pub(crate) fn new(shape: crate::Shape) -> Self {
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

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        phase: Phase,
        scenario: Scenario,
        service: &'static str,
        recorder: Recorder,
        elapsed: Duration,
        before: ProcessStats,
        after: ProcessStats,
    ) {
        let key = (phase, scenario, service);
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

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        self.yardstick_markdown(&mut out);
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "### Maximum throughput ({} clients with {} users each, {} rounds of {} s per flow and service, alternating, pool {})\n",
            self.clients,
            self.users_per_client,
            self.rounds,
            self.duration.as_secs(),
            self.pool
        );
        let _ = writeln!(
            out,
            "| flow | call | product req/s | baseline req/s | ratio | product p50 / p99 ms | baseline p50 / p99 ms |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
        for scenario in Scenario::ALL {
            let (Some(p), Some(b)) = (
                self.runs.get(&(Phase::Max, scenario, "product")),
                self.runs.get(&(Phase::Max, scenario, "baseline")),
            ) else {
                continue;
            };
            for (step, ph) in &p.recorder.steps {
                let bh = b.recorder.steps.get(step);
                let pr = Self::rate(p, ph.len());
                let br = bh.map_or(0.0, |h| Self::rate(b, h.len()));
                let _ = writeln!(
                    out,
                    "| {} | `{step}` | {pr:.0} | {br:.0} | {:.2} | {:.2} / {:.2} | {} |",
                    scenario.name(),
                    if br > 0.0 { pr / br } else { 0.0 },
                    ms(ph, 0.5),
                    ms(ph, 0.99),
                    bh.map_or("–".into(), |h| format!(
                        "{:.2} / {:.2}",
                        ms(h, 0.5),
                        ms(h, 0.99)
                    )),
                );
            }
            let (pf, bf) = (p.recorder.flows_done(), b.recorder.flows_done());
            let _ = writeln!(
                out,
                "| **{}** | whole flow (flows/s) | **{:.0}** | **{:.0}** | **{:.2}** | | |",
                scenario.name(),
                Self::rate(p, pf),
                Self::rate(b, bf),
                if bf > 0 {
                    Self::rate(p, pf) / Self::rate(b, bf)
                } else {
                    0.0
                },
            );
        }
        self.max_rates_markdown(&mut out);
        self.metrics_cost_markdown(&mut out);
        let _ = writeln!(
            out,
            "\n### Latency at half the product's maximum flow rate (fixed arrivals, {} s)\n",
            self.duration.as_secs()
        );
        let _ = writeln!(
            out,
            "| flow | call | service | req/s | p50 ms | p90 ms | p99 ms | max ms |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|");
        for ((phase, scenario, service), f) in &self.runs {
            if *phase != Phase::Half {
                continue;
            }
            let rows: Vec<(String, &Histogram<u64>)> = f
                .recorder
                .steps
                .iter()
                .map(|(s, h)| (format!("`{s}`"), h))
                .chain(
                    f.recorder
                        .flows
                        .iter()
                        .map(|h| ("whole flow, from its scheduled start".to_owned(), h)),
                )
                .collect();
            for (call, h) in rows {
                let _ = writeln!(
                    out,
                    "| {} | {call} | {service} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    scenario.name(),
                    Self::rate(f, h.len()),
                    ms(h, 0.5),
                    ms(h, 0.9),
                    ms(h, 0.99),
                    h.max() as f64 / 1000.0
                );
            }
        }
        self.slow_calls_markdown(&mut out);
        if let (Some(p), Some(b)) = (self.webhooks.get("product"), self.webhooks.get("baseline")) {
            let (pn, bn) = (p.recorder.flows_done(), b.recorder.flows_done());
            let (pr, br) = (Self::rate(p, pn), Self::rate(b, bn));
            let _ = writeln!(
                out,
                "\n### Webhook ingestion ({pn} signed deliveries to the product, {bn} to the baseline, {} at a time)\n",
                self.clients
            );
            let _ = writeln!(
                out,
                "| service | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | CPU ms per delivery |"
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
            for (name, f, rate) in [("product", p, pr), ("baseline", b, br)] {
                if let Some(h) = f.recorder.flows.as_ref() {
                    let _ = writeln!(
                        out,
                        "| {name} | {rate:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
                        ms(h, 0.5),
                        ms(h, 0.9),
                        ms(h, 0.99),
                        h.max() as f64 / 1000.0,
                        f.cpu_ms / h.len().max(1) as f64
                    );
                }
            }
            let _ = writeln!(
                out,
                "\nRatio product / baseline: **{:.2}**",
                if br > 0.0 { pr / br } else { 0.0 }
            );
        }
        table(
            &mut out,
            "CPU time per request (max-throughput phases: the server process, and the whole machine: PostgreSQL, the kernel and the load generator included)",
            "| flow | product CPU ms / request | baseline CPU ms / request | product / baseline | machine CPU ms / request, product / baseline |",
            "|---|---:|---:|---:|---:|",
        );
        let per_request = |scenario, service| self.cpu_per_request(scenario, service);
        for scenario in Scenario::ALL {
            if let Some((ys, ym)) = per_request(scenario, "yardstick") {
                let _ = writeln!(
                    out,
                    "| {} (the yardstick) | {ys:.3} | | | {ym:.3} |",
                    scenario.name()
                );
            }
            if let (Some((p, pm)), Some((b, bm))) = (
                per_request(scenario, "product"),
                per_request(scenario, "baseline"),
            ) {
                let _ = writeln!(
                    out,
                    "| {} | {p:.3} | {b:.3} | {:.2} | {pm:.3} / {bm:.3} |",
                    scenario.name(),
                    if b > 0.0 { p / b } else { 0.0 }
                );
            }
        }
        let _ = writeln!(out, "\n### Server resources\n");
        let _ = writeln!(out, "| service process | peak RSS MB |");
        let _ = writeln!(out, "|---|---:|");
        for (service, kb) in &self.rss {
            let _ = writeln!(out, "| {service} | {:.1} |", *kb as f64 / 1024.0);
        }
        let _ = writeln!(out, "\nFailed flows or deliveries: {}", self.errors());
        out
    }

    /// Requests per second a call sustained in a closed loop of `clients`:
    /// the clients over its mean latency (Little's law), the rate the clients
    /// would reach issuing only this call at the latency it had.
    fn per_call(&self, h: &Histogram<u64>) -> f64 {
        self.clients as f64 * 1e6 / h.mean().max(1.0)
    }

    /// The yardstick's requests per second at maximum throughput, and its
    /// rounds.
    fn yardstick(&self, scenario: Scenario) -> Option<(f64, Vec<f64>)> {
        let f = self.runs.get(&(Phase::Max, scenario, "yardstick"))?;
        let rounds = self
            .max_rounds
            .get(&(scenario, "yardstick"))
            .cloned()
            .unwrap_or_default();
        Some((Self::rate(f, f.recorder.flows_done()), rounds))
    }

    /// The fixed yardstick, then every call's requests per second as a share
    /// of it and of the mirror baseline.
    fn yardstick_markdown(&self, out: &mut String) {
        let Some((yardstick, _)) = self.yardstick(Scenario::Yardstick) else {
            return;
        };
        table(
            out,
            &format!(
                "The fixed yardstick ({} clients, closed loop, {} rounds of {} s alternating with the flows')",
                self.clients,
                self.rounds,
                self.duration.as_secs()
            ),
            "| request | req/s | rounds | clients ÷ mean latency | p50 / p99 ms | ratio to the transaction |",
            "|---|---:|---|---:|---:|---:|",
        );
        for scenario in [Scenario::Yardstick, Scenario::YardstickOneStatement] {
            let (Some((rate, rounds)), Some(f)) = (
                self.yardstick(scenario),
                self.runs.get(&(Phase::Max, scenario, "yardstick")),
            ) else {
                continue;
            };
            for (step, h) in &f.recorder.steps {
                let _ = writeln!(
                    out,
                    "| `{step}` | {rate:.0} | {} | {:.0} | {:.2} / {:.2} | {:.2} |",
                    joined(&rounds, 0),
                    self.per_call(h),
                    ms(h, 0.5),
                    ms(h, 0.99),
                    rate / yardstick
                );
            }
        }
        table(
            out,
            &format!(
                "Every call against the fixed yardstick (maximum throughput, {} clients; a call's req/s is the clients over its mean latency in its flow's closed loop)",
                self.clients
            ),
            "| flow | call | product req/s | × yardstick | × mirror baseline | ≥ 0.8× yardstick |",
            "|---|---|---:|---:|---:|---|",
        );
        let (mut met, mut writes) = (0, 0);
        for scenario in Scenario::ALL {
            if scenario.yardstick() || scenario.creates_only().is_some() {
                continue;
            }
            let (Some(p), Some(b)) = (
                self.runs.get(&(Phase::Max, scenario, "product")),
                self.runs.get(&(Phase::Max, scenario, "baseline")),
            ) else {
                continue;
            };
            for (step, ph) in &p.recorder.steps {
                let pr = self.per_call(ph);
                let br = b.recorder.steps.get(step).map_or(0.0, |h| self.per_call(h));
                let verdict = if *step == READ {
                    "(a read)"
                } else {
                    writes += 1;
                    if pr >= YARDSTICK_TARGET * yardstick {
                        met += 1;
                        "yes"
                    } else {
                        "no"
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | `{step}` | {pr:.0} | {:.2} | {} | {verdict} |",
                    scenario.name(),
                    pr / yardstick,
                    if br > 0.0 {
                        format!("{:.2}", pr / br)
                    } else {
                        "–".into()
                    },
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{met} of the {writes} calls that create or advance a flow reach {YARDSTICK_TARGET}× the yardstick's {yardstick:.0} req/s."
        );
        let alone: Vec<_> = Scenario::ALL
            .into_iter()
            .filter_map(|s| Some((s, s.creates_only()?)))
            .filter_map(|(s, flow)| {
                Some((
                    s,
                    flow,
                    self.runs.get(&(Phase::Max, s, "product"))?,
                    self.runs.get(&(Phase::Max, s, "baseline"))?,
                ))
            })
            .collect();
        if alone.is_empty() {
            return;
        }
        table(
            out,
            &format!(
                "`POST /flows` alone, measured ({} clients creating flows back to back)",
                self.clients
            ),
            "| flow created | product req/s | × yardstick | mirror baseline req/s | × mirror baseline | within its flow (clients ÷ mean latency) | ≥ 0.8× yardstick |",
            "|---|---:|---:|---:|---:|---:|---|",
        );
        for (_, flow, p, b) in alone {
            let pr = Self::rate(p, p.recorder.flows_done());
            let br = Self::rate(b, b.recorder.flows_done());
            let within = self
                .runs
                .get(&(Phase::Max, flow, "product"))
                .and_then(|f| f.recorder.steps.get(crate::load::CREATE))
                .map_or("–".into(), |h| format!("{:.0}", self.per_call(h)));
            let _ = writeln!(
                out,
                "| {} | {pr:.0} | {:.2} | {br:.0} | {:.2} | {within} | {} |",
                flow.name(),
                pr / yardstick,
                if br > 0.0 { pr / br } else { 0.0 },
                if pr >= YARDSTICK_TARGET * yardstick {
                    "yes"
                } else {
                    "no"
                },
            );
        }
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
            let baseline = rates(scenario, "baseline").map_or(0.0, |b| mean(&b));
            let ratio = |m: f64| {
                if baseline > 0.0 {
                    format!("{:.2}", m / baseline)
                } else {
                    "–".into()
                }
            };
            let cpu = |i: usize| match (
                self.cpu_per_request(scenario, "product"),
                self.cpu_per_request(scenario, METRICS_OFF),
            ) {
                (Some(on), Some(off)) => {
                    let pick = |c: (f64, f64)| if i == 0 { c.0 } else { c.1 };
                    format!("{:.3} / {:.3}", pick(on), pick(off))
                }
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {m_on:.0} | {m_off:.0} | {difference:+.1} % | {s_on:.1} % / {s_off:.1} % | {} / {} | {} | {} | {} |",
                scenario.name(),
                joined(&on, 0),
                joined(&off, 0),
                ratio(m_on),
                ratio(m_off),
                if -difference <= s_on.max(s_off) {
                    "yes"
                } else {
                    "no"
                },
                cpu(0),
                cpu(1),
            );
        }
    }

    /// Each maximum-throughput round's rate, and the ratio of each pair (round
    /// `i` of the product and of the baseline ran back to back): how far one
    /// pair can stray from the run's ratio.
    fn max_rates_markdown(&self, out: &mut String) {
        if self.max_rounds.is_empty() {
            return;
        }
        table(
            out,
            "Maximum throughput round by round (flows/s; each pair of rounds ran back to back)",
            "| flow | product rounds | baseline rounds | ratio of each pair | median pair ratio (lowest – highest) |",
            "|---|---|---|---|---|",
        );
        for scenario in Scenario::ALL {
            let rates = |service| self.max_rounds.get(&(scenario, service));
            let (Some(p), Some(b)) = (rates("product"), rates("baseline")) else {
                continue;
            };
            let ratios = pair_ratios(p, b);
            let summary = median(&ratios).map_or_else(
                || "–".to_owned(),
                |m| {
                    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!("{m:.2} ({low:.2} – {high:.2})")
                },
            );
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {summary} |",
                scenario.name(),
                joined(p, 0),
                joined(b, 0),
                joined(&ratios, 2),
            );
        }
    }

    /// Each call's share of requests over [`SLOW`] at half rate, for the
    /// product and the baseline, and for how many calls that share is under
    /// 1 % (a p99 under [`SLOW`]).
    fn slow_calls_markdown(&self, out: &mut String) {
        let slow_ms = SLOW.as_millis();
        let half = |scenario, service| self.runs.get(&(Phase::Half, scenario, service));
        let mut rows = Vec::new();
        for scenario in Scenario::ALL {
            let Some(p) = half(scenario, "product") else {
                continue;
            };
            let b = half(scenario, "baseline");
            for (step, ph) in &p.recorder.steps {
                let bh = b.and_then(|b| b.recorder.steps.get(step));
                rows.push((scenario, *step, ph, bh));
            }
        }
        if rows.is_empty() {
            return;
        }
        table(
            out,
            &format!(
                "Calls over {slow_ms} ms at half the maximum rate (share of each call's requests; under 1 % is a p99 under {slow_ms} ms)"
            ),
            "| flow | call | product | baseline |",
            "|---|---|---:|---:|",
        );
        // (calls whose p99 is under the bound, calls measured) per service.
        let mut under = [(0, 0), (0, 0)];
        for (scenario, step, ph, bh) in rows {
            let mut cells = Vec::new();
            for (tally, h) in under.iter_mut().zip([Some(ph), bh]) {
                let Some(h) = h.filter(|h| !h.is_empty()) else {
                    cells.push("–".to_owned());
                    continue;
                };
                let slow = slow_calls(h);
                tally.1 += 1;
                tally.0 += u32::from(slow * 100 < h.len());
                cells.push(share(slow, h.len()));
            }
            let _ = writeln!(
                out,
                "| {} | `{step}` | {} |",
                scenario.name(),
                cells.join(" | ")
            );
        }
        let _ = writeln!(out);
        for (service, (met, measured)) in ["product", "baseline"].into_iter().zip(under) {
            let _ = writeln!(
                out,
                "- {service}: p99 under {slow_ms} ms for {met} of the {measured} calls measured"
            );
        }
    }

    pub(crate) fn json(&self) -> Value {
        let runs: Vec<Value> =
            self.runs
                .iter()
                .map(|((phase, scenario, service), f)| {
                    let steps: BTreeMap<Step, Value> = f
                    .recorder
                    .steps
                    .iter()
                    .map(|(s, h)| {
                        (*s, json!({
                            "count": h.len(), "per_second": Self::rate(f, h.len()),
                            "mean_ms": h.mean() / 1000.0,
                            "p50_ms": ms(h, 0.5), "p90_ms": ms(h, 0.9), "p99_ms": ms(h, 0.99),
                            "max_ms": h.max() as f64 / 1000.0,
                            "slow_calls": slow_calls(h),
                        }))
                    })
                    .collect();
                    json!({
                        "phase": format!("{phase:?}").to_lowercase(),
                        "flow": scenario.name(),
                        "service": service,
                        "seconds": f.elapsed.as_secs_f64(),
                        "flows": f.recorder.flows_done(),
                        "errors": f.recorder.errors,
                        "cpu_ms": f.cpu_ms,
                        "machine_cpu_ms": f.machine_ms,
                        "steps": steps,
                    })
                })
                .collect();
        let max_rounds: Vec<Value> = self
            .max_rounds
            .iter()
            .flat_map(|((scenario, service), rates)| {
                rates.iter().enumerate().map(move |(i, rate)| {
                    json!({
                        "flow": scenario.name(),
                        "service": service,
                        "round": i + 1,
                        "flows_per_s": rate,
                    })
                })
            })
            .collect();
        json!({
            "clients": self.clients,
            "users_per_client": self.users_per_client,
            "pool": self.pool,
            "runs": runs,
            "max_rounds": max_rounds,
            "peak_rss_kb": self.rss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rounds: u32) -> crate::Shape {
        crate::Shape {
            duration: Duration::from_secs(1),
            rounds,
            clients: 4,
            users_per_client: 2,
            pool: 4,
            yardstick_pool: 8,
            metrics_cost: false,
        }
    }

    #[test]
    fn pairs_are_compared_round_by_round() {
        let ratios = pair_ratios(&[300.0, 400.0, 350.0], &[400.0, 400.0, 0.0]);
        assert_eq!(ratios, vec![0.75, 1.0]);
    }

    #[test]
    fn the_median_takes_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.9]), Some(0.9));
        assert_eq!(median(&[1.2, 0.8, 0.9]), Some(0.9));
        assert_eq!(median(&[1.0, 0.25, 0.75, 0.5]), Some(0.625));
    }

    #[test]
    fn the_round_by_round_table_shows_each_pair_and_their_spread() {
        let mut report = Report::new(shape(3));
        for (product, baseline) in [(300.0, 400.0), (450.0, 450.0), (360.0, 400.0)] {
            report.add_max_round(Scenario::Recovery, "product", product);
            report.add_max_round(Scenario::Recovery, "baseline", baseline);
        }
        let mut out = String::new();
        report.max_rates_markdown(&mut out);
        assert!(
            out.contains("| recovery | 300, 450, 360 | 400, 450, 400 | 0.75, 1.00, 0.90 | 0.90 (0.75 – 1.00) |"),
            "{out}"
        );
        let json = report.json();
        assert_eq!(json["max_rounds"][0]["service"], "baseline");
        assert_eq!(json["max_rounds"][3]["flows_per_s"], 300.0);
        assert_eq!(json["max_rounds"][4]["round"], 2);
    }

    /// A half-rate round of sign-in's `step` with these latencies (ms).
    fn half_rate(report: &mut Report, service: &'static str, step: Step, latencies_ms: &[u64]) {
        let mut recorder = Recorder::default();
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for ms in latencies_ms {
            h.record(ms * 1000).unwrap();
        }
        recorder.steps.insert(step, h);
        let stats = ProcessStats::default();
        report.add(
            Phase::Half,
            Scenario::SignIn,
            service,
            recorder,
            Duration::from_secs(1),
            stats,
            stats,
        );
    }

    #[test]
    fn a_call_meets_the_latency_target_with_under_one_percent_over_10_ms() {
        let mut report = Report::new(shape(1));
        // The product: 1 of 200 assertions over 10 ms (0.5 %), 2 of 100
        // reads (2 %); the baseline: none, and 10 ms itself is not over.
        let mut assertions = vec![2; 199];
        assertions.push(11);
        let mut reads = vec![1; 98];
        reads.extend([12, 40]);
        half_rate(
            &mut report,
            "product",
            "POST /flows/{id}/possession",
            &assertions,
        );
        half_rate(&mut report, "product", READ, &reads);
        half_rate(
            &mut report,
            "baseline",
            "POST /flows/{id}/possession",
            &[3, 10],
        );
        let mut out = String::new();
        report.slow_calls_markdown(&mut out);
        assert!(
            out.contains("### Calls over 10 ms at half the maximum rate"),
            "{out}"
        );
        assert!(
            out.contains("| sign_in | `POST /flows/{id}/possession` | 0.50 % | 0.00 % |"),
            "{out}"
        );
        assert!(
            out.contains("| sign_in | `GET /flows/{id}` | 2.00 % | – |"),
            "{out}"
        );
        assert!(
            out.contains("- product: p99 under 10 ms for 1 of the 2 calls measured"),
            "{out}"
        );
        assert!(
            out.contains("- baseline: p99 under 10 ms for 1 of the 1 calls measured"),
            "{out}"
        );
        let json = report.json();
        // Runs are listed by phase, flow and service: the baseline's first.
        assert_eq!(json["runs"][1]["service"], "product");
        assert_eq!(json["runs"][1]["steps"][READ]["slow_calls"], 2);
    }

    #[test]
    fn without_half_rate_rounds_there_is_no_verdict() {
        let mut out = String::new();
        Report::new(shape(1)).slow_calls_markdown(&mut out);
        assert_eq!(out, "");
    }

    #[test]
    fn a_stat_line_gives_user_plus_system_ticks() {
        let stat = "4242 (tokio-runtime (w)) S 1 4242 4242 0 -1 4194560 \
                    2000 0 0 0 350 120 0 0 20 0 26 0 900 12345 678";
        assert_eq!(cpu_ticks(stat), 470);
        assert_eq!(cpu_ticks("garbage"), 0);
    }

    #[test]
    fn the_machine_is_busy_for_all_but_idle_and_io_wait() {
        let stat = "cpu  100 5 40 9000 300 7 3 11 0 0\ncpu0 50 2 20 4500 150 3 1 5 0 0\n";
        assert_eq!(machine_busy_ticks(stat), 100 + 5 + 40 + 7 + 3 + 11);
        assert_eq!(machine_busy_ticks("garbage"), 0);
    }
}
