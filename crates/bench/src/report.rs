//! Figures, as a markdown report and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::activity::SAMPLE_EVERY;
use crate::load::{READ, Recorder, Scenario, Step};
use crate::processes;
use crate::timeline::{HEARTBEAT, Machine, QUIET_STEAL, Round, SLOW};

/// The product with its metrics off, in the report.
pub(crate) const METRICS_OFF: &str = "product, metrics off";

/// The share of the fixed yardstick's requests per second each call that
/// creates or advances a flow is to reach.
const YARDSTICK_TARGET: f64 = 0.8;

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

/// A process's CPU time and peak resident memory, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_ticks: u64,
    pub(crate) peak_rss_kb: u64,
}

/// Linux's USER_HZ: /proc reports CPU time in hundredths of a second.
pub(crate) const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessStats {
    pub(crate) fn read(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Self {
            cpu_ticks: processes::parse_stat(&stat).map_or(0, |p| p.ticks),
            peak_rss_kb,
        }
    }
}

struct Figures {
    elapsed: Duration,
    recorder: Recorder,
    cpu_ms: f64,
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
        let cpu_ms =
            after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1000.0 / TICKS_PER_SECOND;
        match earlier {
            Some(old) => Self {
                elapsed: old.elapsed + elapsed,
                recorder: crate::load::merge(vec![old.recorder, recorder]),
                cpu_ms: old.cpu_ms + cpu_ms,
            },
            None => Self {
                elapsed,
                recorder,
                cpu_ms,
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
    /// Fixed-rate rounds second by second, in the order they ran.
    rounds_by_second: BTreeMap<(Scenario, &'static str), Vec<Round>>,
    /// Maximum-throughput rounds, in the order they ran.
    max_rounds: BTreeMap<(Scenario, &'static str), Vec<MaxRound>>,
}

/// One maximum-throughput round: its flows per second and the machine's mean
/// over it.
#[derive(Debug, Clone)]
struct MaxRound {
    rate: f64,
    machine: Machine,
}

/// CPU per flow over equally long rounds, in ms: the CPU (per cent of one
/// core) summed over the rounds, over their flows per second summed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuPerFlow {
    service: f64,
    load_generator: f64,
    /// Everything else the machine ran: PostgreSQL, the provider double, the
    /// kernel's own threads.
    rest: f64,
}

impl CpuPerFlow {
    fn of(rounds: &[MaxRound]) -> Option<Self> {
        let flows: f64 = rounds.iter().map(|r| r.rate).sum();
        if flows <= 0.0 {
            return None;
        }
        // Per cent of one core over flows per second is 10 ms per flow.
        let ms = |f: fn(&Machine) -> f64| {
            rounds.iter().map(|r| f(&r.machine)).sum::<f64>() * 10.0 / flows
        };
        let service = ms(|m| m.service);
        let load_generator = ms(|m| m.load_generator);
        Some(Self {
            service,
            load_generator,
            rest: (ms(|m| m.busy) - service - load_generator).max(0.0),
        })
    }

    fn machine(&self) -> f64 {
        self.service + self.load_generator + self.rest
    }

    fn cell(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} = {:.2}",
            self.service,
            self.load_generator,
            self.rest,
            self.machine()
        )
    }
}

/// A section's heading, then its table's header and alignment rows.
fn table(out: &mut String, title: &str, header: &str, alignment: &str) {
    let _ = writeln!(out, "\n### {title}\n\n{header}\n{alignment}");
}

/// One JSON object per round: `item`'s members after the flow, the service
/// and the round's number.
fn rounds_json<T>(
    rounds: &BTreeMap<(Scenario, &'static str), Vec<T>>,
    item: impl Fn(&T) -> Value,
) -> Vec<Value> {
    let mut out = Vec::new();
    for ((scenario, service), list) in rounds {
        for (i, x) in list.iter().enumerate() {
            let mut object = json!({ "flow": scenario.name(), "service": service, "round": i + 1 });
            if let (Some(o), Value::Object(members)) = (object.as_object_mut(), item(x)) {
                o.extend(members);
            }
            out.push(object);
        }
    }
    out
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
            rounds_by_second: BTreeMap::new(),
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

    /// One maximum-throughput round: its flows per second and the machine's
    /// seconds through it.
    pub(crate) fn add_max_round(
        &mut self,
        scenario: Scenario,
        service: &'static str,
        rate: f64,
        seconds: &[Machine],
    ) {
        self.max_rounds
            .entry((scenario, service))
            .or_default()
            .push(MaxRound {
                rate,
                machine: Machine::mean(seconds),
            });
    }

    /// One fixed-rate round, second by second.
    pub(crate) fn add_round(&mut self, scenario: Scenario, service: &'static str, round: Round) {
        self.rounds_by_second
            .entry((scenario, service))
            .or_default()
            .push(round);
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
        self.max_machine_markdown(&mut out);
        self.cpu_per_flow_markdown(&mut out);
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
        self.seconds_markdown(&mut out);
        self.steal_markdown(&mut out);
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
            "CPU time per request (max-throughput phases, whole server process)",
            "| flow | product CPU ms / request | baseline CPU ms / request | product / baseline |",
            "|---|---:|---:|---:|",
        );
        for scenario in Scenario::ALL {
            let per_request = |service: &str| {
                self.runs
                    .get(&(Phase::Max, scenario, service))
                    .filter(|f| f.requests() > 0)
                    .map(|f| f.cpu_ms / f.requests() as f64)
            };
            if let (Some(p), Some(b)) = (per_request("product"), per_request("baseline")) {
                let _ = writeln!(
                    out,
                    "| {} | {p:.3} | {b:.3} | {:.2} |",
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
            .map(|r| r.iter().map(|r| r.rate).collect())
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

    /// Every flow's maximum throughput with the product's metrics on and
    /// off, in the same rounds: the difference next to the spread between
    /// rounds of the same service.
    fn metrics_cost_markdown(&self, out: &mut String) {
        let rates = |scenario, service| {
            self.max_rounds
                .get(&(scenario, service))
                .map(|rounds| rounds.iter().map(|r| r.rate).collect::<Vec<f64>>())
        };
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
                    "| flow | metrics on: rounds | metrics off: rounds | on | off | difference | spread between rounds, on / off | × baseline, on / off | within the spread |",
                    "|---|---|---|---:|---:|---:|---:|---:|---|",
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
            let _ = writeln!(
                out,
                "| {} | {} | {} | {m_on:.0} | {m_off:.0} | {difference:+.1} % | {s_on:.1} % / {s_off:.1} % | {} / {} | {} |",
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
            let rates = |service| {
                self.max_rounds
                    .get(&(scenario, service))
                    .map(|rounds| rounds.iter().map(|r| r.rate).collect::<Vec<_>>())
            };
            let (Some(p), Some(b)) = (rates("product"), rates("baseline")) else {
                continue;
            };
            let ratios = pair_ratios(&p, &b);
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
                joined(&p, 0),
                joined(&b, 0),
                joined(&ratios, 2),
            );
        }
    }

    /// The machine during each maximum-throughput round: a round that lost
    /// more to the hypervisor than its pair ran on less machine.
    fn max_machine_markdown(&self, out: &mut String) {
        if self.max_rounds.is_empty() {
            return;
        }
        table(
            out,
            "The machine during the maximum-throughput rounds (mean of each round, % of one core)",
            "| flow | product rounds: steal / machine busy | baseline rounds: steal / machine busy |",
            "|---|---|---|",
        );
        for scenario in Scenario::ALL {
            let cell = |service: &'static str| {
                self.max_rounds.get(&(scenario, service)).map_or_else(
                    || "–".to_owned(),
                    |rounds| {
                        rounds
                            .iter()
                            .map(|r| format!("{:.0} / {:.0}", r.machine.steal, r.machine.busy))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                )
            };
            if self.max_rounds.contains_key(&(scenario, "product")) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    scenario.name(),
                    cell("product"),
                    cell("baseline")
                );
            }
        }
    }

    /// What one flow costs the whole machine at maximum throughput, by who
    /// spent it. The flows share two cores with PostgreSQL and the load
    /// generator, so the service's own CPU moves the throughput ratio by its
    /// share of the machine only.
    fn cpu_per_flow_markdown(&self, out: &mut String) {
        if self.max_rounds.is_empty() {
            return;
        }
        table(
            out,
            "Where a flow's CPU goes at maximum throughput (ms of CPU per flow, all rounds; \
             the load generator hosts the provider double; the rest is PostgreSQL and the kernel's own threads)",
            "| flow | product: service / load generator / rest = machine | baseline: service / load generator / rest = machine | product ÷ baseline: service / machine |",
            "|---|---|---|---|",
        );
        for scenario in Scenario::ALL {
            let cost = |service| {
                self.max_rounds
                    .get(&(scenario, service))
                    .and_then(|rounds| CpuPerFlow::of(rounds))
            };
            let (Some(p), Some(b)) = (cost("product"), cost("baseline")) else {
                continue;
            };
            let over = |p: f64, b: f64| {
                if b > 0.0 {
                    format!("{:.2}", p / b)
                } else {
                    "–".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} / {} |",
                scenario.name(),
                p.cell(),
                b.cell(),
                over(p.service, b.service),
                over(p.machine(), b.machine()),
            );
        }
    }

    /// Where each fixed-rate round's slow calls were: its worst second next
    /// to what the machine was doing then.
    fn seconds_markdown(&self, out: &mut String) {
        if self.rounds_by_second.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\n### Half-rate rounds second by second: calls over {} ms, and the worst second\n",
            SLOW.as_millis()
        );
        let _ = writeln!(
            out,
            "CPU in per cent of one core (the machine has {} cores); steal is time the hypervisor \
             gave to other guests; the generator's lag is how late, at worst, a flow began after \
             its scheduled start, its thread stall the longest a thread of the generator that \
             sleeps {} ms at a time overslept (as long as the lag: the whole process went \
             unscheduled; much shorter: its async runtime was held up); the busiest other \
             process is the one, by name, that used the most CPU besides the service, the \
             generator and PostgreSQL (the services idle in their turn count there); interrupts are \
             part of the machine's busy time, charged by tick to whichever process was running or \
             to none; TCP retransmits count the whole machine's, loopback included, and so do major page faults (a page read from disk) and file refaults (page-cache pages read back soon after being evicted); PostgreSQL's activity is read every {} ms: autovacuum workers \
             and the service's busy backends (running a statement, not waiting on their client) \
             are the most seen at once, the top wait the wait event the most of them shared at \
             once; checkpoint buffers are those the checkpointer wrote in the second.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            HEARTBEAT.as_millis(),
            SAMPLE_EVERY.as_millis()
        );
        let _ = writeln!(
            out,
            "| flow | service | round (start, UTC) | slow / calls | worst second | its slow / calls | its worst call ms | its generator lag / thread stall ms | its machine / steal / interrupts / service / generator / PostgreSQL CPU % | its busiest other process, CPU % | its TCP retransmits / major faults / file refaults | its autovacuum workers / checkpoint buffers | its busy backends / top wait | round's busiest / most stolen second % |"
        );
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for ((scenario, service), rounds) in &self.rounds_by_second {
            for (i, round) in rounds.iter().enumerate() {
                let calls: u32 = round.calls.seconds.iter().map(|s| s.calls).sum();
                let (busiest, most_stolen) = round.machine_peaks();
                let worst = round.worst_second_cells();
                let _ = writeln!(
                    out,
                    "| {} | {service} | {} ({}) | {} / {calls} | {worst} | {busiest:.0} / {most_stolen:.0} |",
                    scenario.name(),
                    i + 1,
                    round.start_time(),
                    round.slow_calls(),
                );
            }
        }
    }

    /// Slow calls against the hypervisor's steal in their second: per
    /// service by steal, then per call in quiet seconds and in all.
    fn steal_markdown(&self, out: &mut String) {
        if self.rounds_by_second.is_empty() {
            return;
        }
        const BANDS: [(f64, f64); 4] = [
            (0.0, QUIET_STEAL),
            (QUIET_STEAL, 20.0),
            (20.0, 40.0),
            (40.0, f64::INFINITY),
        ];
        let slow_ms = SLOW.as_millis();
        table(
            out,
            &format!(
                "Calls over {slow_ms} ms by the hypervisor's steal in their second (half-rate rounds)"
            ),
            &format!("| service | steal, % of one core | seconds | calls | over {slow_ms} ms |"),
            "|---|---|---:|---:|---:|",
        );
        for service in ["product", "baseline"] {
            for (low, high) in BANDS {
                // Seconds the sampler covered, of this service's rounds.
                let in_band: Vec<_> = self
                    .rounds_by_second
                    .iter()
                    .filter(|((_, name), _)| *name == service)
                    .flat_map(|(_, rounds)| rounds)
                    .flat_map(|round| round.calls.seconds.iter().zip(&round.machine))
                    .filter(|(_, m)| m.steal >= low && m.steal < high)
                    .map(|(c, _)| c)
                    .collect();
                let seconds = in_band.len();
                let calls: u64 = in_band.iter().map(|c| u64::from(c.calls)).sum();
                let slow: u64 = in_band.iter().map(|c| u64::from(c.slow)).sum();
                let band = if high.is_finite() {
                    format!("{low:.0}–{high:.0}")
                } else {
                    format!("≥ {low:.0}")
                };
                let _ = writeln!(
                    out,
                    "| {service} | {band} | {seconds} | {calls} | {} |",
                    share(slow, calls)
                );
            }
        }
        let _ = writeln!(
            out,
            "\nPer call: the share over {} ms in quiet seconds (steal under {QUIET_STEAL:.0} % of \
             one core) and in all seconds. Under 1 % means a p99 under {} ms.\n",
            SLOW.as_millis(),
            SLOW.as_millis()
        );
        let _ = writeln!(
            out,
            "| flow | call | product, quiet | product, all | baseline, quiet | baseline, all |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        // (calls, slow) in quiet seconds and in all, per flow, call and service.
        let counts = |scenario: Scenario, service: &str, step: Step| {
            let mut quiet = (0u64, 0u64);
            let mut all = (0u64, 0u64);
            for round in self
                .rounds_by_second
                .get(&(scenario, service))
                .into_iter()
                .flatten()
            {
                for (i, [calls, slow]) in round
                    .calls
                    .steps
                    .get(step)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    all.0 += u64::from(*calls);
                    all.1 += u64::from(*slow);
                    if round.quiet(i) {
                        quiet.0 += u64::from(*calls);
                        quiet.1 += u64::from(*slow);
                    }
                }
            }
            (quiet, all)
        };
        let mut under = BTreeMap::<(&str, bool), (u32, u32)>::new();
        for scenario in Scenario::ALL {
            let Some(rounds) = self.rounds_by_second.get(&(scenario, "product")) else {
                continue;
            };
            let steps: std::collections::BTreeSet<Step> = rounds
                .iter()
                .flat_map(|r| r.calls.steps.keys().copied())
                .collect();
            for step in steps {
                let mut cells = Vec::new();
                for service in ["product", "baseline"] {
                    let (quiet, all) = counts(scenario, service, step);
                    for (is_quiet, (calls, slow)) in [(true, quiet), (false, all)] {
                        if calls > 0 {
                            let tally = under.entry((service, is_quiet)).or_default();
                            tally.1 += 1;
                            tally.0 += u32::from(slow * 100 < calls);
                        }
                        cells.push(share(slow, calls));
                    }
                }
                let _ = writeln!(
                    out,
                    "| {} | `{step}` | {} |",
                    scenario.name(),
                    cells.join(" | ")
                );
            }
        }
        let _ = writeln!(out);
        for service in ["product", "baseline"] {
            let (q, a) = (
                under.get(&(service, true)).copied().unwrap_or_default(),
                under.get(&(service, false)).copied().unwrap_or_default(),
            );
            let _ = writeln!(
                out,
                "- {service}: p99 under {} ms for {} of the {} calls measured in quiet seconds, and for {} of {} over all seconds",
                SLOW.as_millis(),
                q.0,
                q.1,
                a.0,
                a.1
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
                        "steps": steps,
                    })
                })
                .collect();
        let seconds = rounds_json(&self.rounds_by_second, |round| {
            json!({
                "started_at": round
                    .started_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok(),
                "seconds": round.json(),
            })
        });
        let max_rounds = rounds_json(&self.max_rounds, |r| {
            let mut round = r.machine.json();
            if let Some(o) = round.as_object_mut() {
                o.insert("flows_per_s".into(), json!(r.rate));
            }
            round
        });
        json!({
            "clients": self.clients,
            "users_per_client": self.users_per_client,
            "pool": self.pool,
            "runs": runs,
            "max_rounds": max_rounds,
            "half_rate_seconds": seconds,
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
            report.add_max_round(Scenario::Recovery, "product", product, &[]);
            report.add_max_round(Scenario::Recovery, "baseline", baseline, &[]);
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
    }

    fn second(busy: f64, service: f64, load_generator: f64) -> Machine {
        Machine {
            busy,
            service,
            load_generator,
            ..Machine::default()
        }
    }

    #[test]
    fn a_flows_cpu_is_split_between_the_service_the_load_generator_and_the_rest() {
        let mut report = Report::new(shape(2));
        // Two rounds of 400 and 600 flows/s: 1 000 flows per second of rounds.
        // The product: 60 % + 40 % of a core in its process = 1 ms per flow;
        // the generator 0.3 ms; the machine 190 % + 190 % = 3.8 ms.
        report.add_max_round(
            Scenario::SignIn,
            "product",
            400.0,
            &[second(180.0, 50.0, 10.0), second(200.0, 70.0, 10.0)],
        );
        report.add_max_round(
            Scenario::SignIn,
            "product",
            600.0,
            &[second(190.0, 40.0, 20.0), second(190.0, 40.0, 20.0)],
        );
        // The baseline: one round of 800 flows/s, 0.5 ms in its process, 0.25
        // in the generator, 3 ms on the machine.
        report.add_max_round(
            Scenario::SignIn,
            "baseline",
            800.0,
            &[second(240.0, 40.0, 20.0)],
        );
        let mut out = String::new();
        report.cpu_per_flow_markdown(&mut out);
        assert!(
            out.contains(
                "| sign_in | 1.00 / 0.30 / 2.50 = 3.80 | 0.50 / 0.25 / 2.25 = 3.00 | 2.00 / 1.27 |"
            ),
            "{out}"
        );
        let json = report.json();
        assert_eq!(json["max_rounds"][1]["flows_per_s"], 400.0);
        assert_eq!(json["max_rounds"][1]["service_cpu_pct"], 60.0);
    }

    #[test]
    fn a_flow_without_rounds_of_both_services_has_no_cpu_row() {
        let mut report = Report::new(shape(1));
        report.add_max_round(
            Scenario::SignIn,
            "product",
            400.0,
            &[second(100.0, 50.0, 10.0)],
        );
        report.add_max_round(
            Scenario::Recovery,
            "product",
            0.0,
            &[second(100.0, 50.0, 10.0)],
        );
        report.add_max_round(
            Scenario::Recovery,
            "baseline",
            0.0,
            &[second(100.0, 50.0, 10.0)],
        );
        let mut out = String::new();
        report.cpu_per_flow_markdown(&mut out);
        assert!(out.contains("Where a flow's CPU goes"), "{out}");
        assert!(!out.contains("| sign_in |"), "{out}");
        assert!(!out.contains("| recovery |"), "{out}");
    }
}
