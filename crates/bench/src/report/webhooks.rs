//! The report's webhook ingestion section.

use std::fmt::Write;

use super::{Report, ms};

impl Report {
    /// Webhook ingestion: signed deliveries to the product and the
    /// baseline.
    pub(super) fn webhooks_markdown(&self, out: &mut String) {
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
    }
}
