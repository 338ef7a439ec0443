//! The report's sections against the fixed yardstick: its own rates, every
//! call against it, and `POST /flows` alone.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{Phase, Report, YARDSTICK_TARGET, joined, ms, table};
use crate::load::{READ, Scenario};

impl Report {
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
    pub(super) fn yardstick_markdown(&self, out: &mut String) {
        let Some((yardstick, _)) = self.yardstick(Scenario::Yardstick) else {
            return;
        };
        self.yardstick_table(out, yardstick);
        self.every_call_markdown(out, yardstick);
        self.creation_alone_markdown(out, yardstick);
    }

    /// The yardstick's two requests: rates, rounds and latencies.
    fn yardstick_table(&self, out: &mut String, yardstick: f64) {
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
    }

    /// Every call of every complete flow as a share of the yardstick's rate
    /// and of the mirror baseline's.
    fn every_call_markdown(&self, out: &mut String, yardstick: f64) {
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
    }

    /// `POST /flows` alone, against the yardstick and the mirror baseline.
    fn creation_alone_markdown(&self, out: &mut String, yardstick: f64) {
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
}
