//! The fault suite's soak (`scripts/faults`, full run): complete flows at
//! half of the maximum rate for many minutes, each Core API replica's
//! resident memory read from `/proc` every few seconds. After a warm-up the
//! memory must stay flat: a process that keeps something per flow (a cache
//! without a bound, a map never pruned) grows with every flow served.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::faults::{self, LoadOptions};

/// What `bench faults soak` is given.
pub(crate) struct SoakOptions {
    pub(crate) base: String,
    pub(crate) control: Option<String>,
    /// The processes whose memory is read.
    pub(crate) pids: Vec<u32>,
    pub(crate) duration: Duration,
    /// Memory before this is not judged.
    pub(crate) warm_up: Duration,
    pub(crate) every: Duration,
    /// How long the maximum rate is measured for first.
    pub(crate) probe: Duration,
    /// The journals and the samples (`<journal>.rss.csv`) go here.
    pub(crate) journal: PathBuf,
}

/// One process's (seconds since the start, MB) readings.
type Readings = Vec<(f64, f64)>;

/// Memory may grow by this fraction from the end of the warm-up to the end
/// of the soak.
pub(crate) const TOLERANCE: f64 = 0.10;

/// How long the readings averaged at either end of the judged part span.
const WINDOW: f64 = 60.0;

/// Resident memory of `pid` in MB (`VmRSS`), or `None` once it is gone.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One process's memory over the soak, judged after the warm-up.
#[derive(Debug, PartialEq)]
pub(crate) struct Memory {
    /// Mean of the first minute after the warm-up, MB.
    pub(crate) after_warm_up: f64,
    /// Mean of the last minute, MB.
    pub(crate) at_end: f64,
    /// Least-squares slope after the warm-up, MB per 10 minutes.
    pub(crate) slope: f64,
}

impl Memory {
    /// From (seconds since the start, MB) readings; `None` when none came
    /// after the warm-up.
    pub(crate) fn judge(samples: &[(f64, f64)], warm_up: f64) -> Option<Self> {
        let judged: Vec<(f64, f64)> = samples
            .iter()
            .copied()
            .filter(|(t, _)| *t >= warm_up)
            .collect();
        let (first, last) = (judged.first()?.0, judged.last()?.0);
        let mean = |keep: &dyn Fn(f64) -> bool| {
            let picked: Vec<f64> = judged
                .iter()
                .filter(|(t, _)| keep(*t))
                .map(|(_, mb)| *mb)
                .collect();
            picked.iter().sum::<f64>() / picked.len().max(1) as f64
        };
        let n = judged.len() as f64;
        let (mt, mm) = (
            judged.iter().map(|(t, _)| t).sum::<f64>() / n,
            judged.iter().map(|(_, mb)| mb).sum::<f64>() / n,
        );
        let var: f64 = judged.iter().map(|(t, _)| (t - mt).powi(2)).sum();
        let cov: f64 = judged.iter().map(|(t, mb)| (t - mt) * (mb - mm)).sum();
        let slope = if var > 0.0 { cov / var * 600.0 } else { 0.0 };
        Some(Self {
            after_warm_up: mean(&|t| t <= first + WINDOW),
            at_end: mean(&|t| t >= last - WINDOW),
            slope,
        })
    }

    pub(crate) fn rising(&self) -> bool {
        self.at_end > self.after_warm_up * (1.0 + TOLERANCE)
    }
}

/// Flows brought to an end (completed, or failed on purpose) per second.
fn flows_ended(entries: &[faults::Entry]) -> usize {
    entries
        .iter()
        .filter(|e| {
            e.state
                .as_deref()
                .is_some_and(|s| matches!(s, "completed" | "failed" | "expired" | "cancelled"))
        })
        .filter_map(|e| e.flow.as_deref())
        .collect::<HashSet<_>>()
        .len()
}

#[allow(clippy::print_stdout)] // The command's output.
pub(crate) async fn soak(options: SoakOptions) -> anyhow::Result<()> {
    let probe_journal = options.journal.with_extension("probe.jsonl");
    faults::load(LoadOptions {
        base: options.base.clone(),
        rate: 200.0,
        duration: options.probe,
        users: 40,
        max_in_flight: 64,
        journal: probe_journal.clone(),
        control: options.control.clone(),
        background_delivery: false,
        capture: Duration::ZERO,
    })
    .await
    .context("while measuring the maximum rate")?;
    let ended = flows_ended(&faults::read_journal(&probe_journal)?);
    let max = ended as f64 / options.probe.as_secs_f64();
    let rate = (max / 2.0).max(1.0);
    println!("faults: soak: maximum {max:.1} flows/s (64 in flight); soaking at {rate:.1} flows/s");

    let samples: Arc<Mutex<Vec<Readings>>> =
        Arc::new(Mutex::new(vec![Vec::new(); options.pids.len()]));
    let start = Instant::now();
    let sampler = tokio::spawn({
        let (samples, pids, every) = (samples.clone(), options.pids.clone(), options.every);
        async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let t = start.elapsed().as_secs_f64();
                if let Ok(mut samples) = samples.lock() {
                    for (i, pid) in pids.iter().enumerate() {
                        if let Some(mb) = rss_mb(*pid) {
                            samples[i].push((t, mb));
                        }
                    }
                }
            }
        }
    });
    let loaded = faults::load(LoadOptions {
        base: options.base,
        rate,
        duration: options.duration,
        users: 40,
        max_in_flight: 64,
        journal: options.journal.clone(),
        control: options.control,
        background_delivery: false,
        capture: Duration::ZERO,
    })
    .await;
    sampler.abort();
    loaded?;

    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let csv = options.journal.with_extension("rss.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(out, "process,seconds,rss_mb")?;
    for (i, readings) in samples.iter().enumerate() {
        for (t, mb) in readings {
            writeln!(out, "{},{t:.1},{mb:.2}", options.pids[i])?;
        }
    }
    out.flush()?;

    let mut rising = Vec::new();
    for (i, readings) in samples.iter().enumerate() {
        let pid = options.pids[i];
        let first = readings.first().map_or(0.0, |r| r.1);
        let memory = Memory::judge(readings, options.warm_up.as_secs_f64())
            .with_context(|| format!("no memory readings of process {pid} after the warm-up"))?;
        println!(
            "faults: soak: process {pid}: RSS {first:.1} MB at start, {:.1} MB after the warm-up \
             ({} s), {:.1} MB at the end ({:.0} s); slope after the warm-up {:+.2} MB per 10 min",
            memory.after_warm_up,
            options.warm_up.as_secs(),
            memory.at_end,
            start.elapsed().as_secs_f64(),
            memory.slope
        );
        if memory.rising() {
            rising.push(pid);
        }
    }
    if !rising.is_empty() {
        anyhow::bail!(
            "soak: the memory of {rising:?} grew by more than {:.0} % after the warm-up",
            TOLERANCE * 100.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_megabytes() {
        let status = "Name:\tbiometric-passk\nVmPeak:\t  900000 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(parse_vm_rss(status), Some(20.0));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    /// Readings every 5 s for `minutes`, from `mb` at the start, growing by
    /// `per_minute` each minute.
    fn readings(minutes: u32, mb: f64, per_minute: f64) -> Vec<(f64, f64)> {
        (0..minutes * 12)
            .map(|i| {
                let t = f64::from(i) * 5.0;
                (t, mb + per_minute * t / 60.0)
            })
            .collect()
    }

    #[test]
    fn flat_memory_after_the_warm_up_passes() {
        // Growing in the warm-up (the first 5 minutes), flat after it.
        let mut samples = readings(5, 10.0, 2.0);
        samples.extend(
            readings(25, 20.0, 0.0)
                .into_iter()
                .map(|(t, mb)| (t + 300.0, mb)),
        );
        let memory = Memory::judge(&samples, 300.0).unwrap();
        assert!((memory.after_warm_up - 20.0).abs() < 1e-9);
        assert!((memory.at_end - 20.0).abs() < 1e-9);
        assert!(memory.slope.abs() < 1e-9);
        assert!(!memory.rising());
    }

    #[test]
    fn memory_that_keeps_rising_fails() {
        // 0.2 MB a minute on 20 MB: 5 MB in 25 minutes, a quarter more.
        let samples = readings(30, 19.0, 0.2);
        let memory = Memory::judge(&samples, 300.0).unwrap();
        assert!((memory.slope - 2.0).abs() < 1e-6, "{memory:?}");
        assert!(memory.rising(), "{memory:?}");
        assert_eq!(Memory::judge(&samples, 100_000.0), None);
    }
}
