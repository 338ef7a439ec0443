//! Every figure as JSON (`--json`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Report, ms, slow_calls};
use crate::load::Step;

impl Report {
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
