//! The report's maximum-throughput sections: every call and flow, and the
//! rates round by round.

use std::fmt::Write;

use super::{Phase, Report, joined, median, ms, pair_ratios, table};
use crate::load::Scenario;

impl Report {
    /// Every call's and every whole flow's rate at maximum throughput, the
    /// product against the baseline.
    pub(super) fn max_throughput_markdown(&self, out: &mut String) {
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
    }

    /// Each maximum-throughput round's rate, and the ratio of each pair (round
    /// `i` of the product and of the baseline ran back to back): how far one
    /// pair can stray from the run's ratio.
    pub(super) fn max_rates_markdown(&self, out: &mut String) {
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
}
