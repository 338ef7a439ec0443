//! The report's half-rate sections: latencies, and the calls over the
//! latency target.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{Phase, Report, SLOW, ms, share, slow_calls, table};
use crate::load::Scenario;

impl Report {
    /// Every call's latency at half the maximum rate, for each service.
    pub(super) fn half_rate_markdown(&self, out: &mut String) {
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
    }

    /// Each call's share of requests over [`SLOW`] at half rate, for the
    /// product and the baseline, and for how many calls that share is under
    /// 1 % (a p99 under [`SLOW`]).
    pub(super) fn slow_calls_markdown(&self, out: &mut String) {
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
}
