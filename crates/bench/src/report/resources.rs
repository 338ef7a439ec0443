//! The report's sections on what the services cost: CPU per request and
//! peak memory.

use std::fmt::Write;

use super::{Report, table};
use crate::load::Scenario;

impl Report {
    /// CPU time per request at maximum throughput, the service's and the
    /// machine's.
    pub(super) fn cpu_markdown(&self, out: &mut String) {
        table(
            out,
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
    }

    /// Each service process's peak resident memory.
    pub(super) fn resources_markdown(&self, out: &mut String) {
        let _ = writeln!(out, "\n### Server resources\n");
        let _ = writeln!(out, "| service process | peak RSS MB |");
        let _ = writeln!(out, "|---|---:|");
        for (service, kb) in &self.rss {
            let _ = writeln!(out, "| {service} | {:.1} |", *kb as f64 / 1024.0);
        }
    }
}
