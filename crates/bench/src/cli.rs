//! The command line: `bench run` and the services it starts (`bench
//! baseline`, `bench yardstick`), the fault suite's commands (`bench faults`),
//! `bench overview` and `bench webauthn`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store_postgres::PgStore;

use crate::run::Shape;
use crate::services::{self, Product};
use crate::{baseline, faults, overview, run, soak, webauthn, yardstick};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Benchmark the Core API against a baseline")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the baseline service on loopback (database from DB_* variables).
    Baseline {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 25)]
        pool: u32,
        /// Take WebAuthn responses for this relying party id (`builtin` mode's calls).
        #[arg(long)]
        rp_id: Option<String>,
        /// Size rows as the product does with this IDV provider.
        #[arg(long, value_enum, default_value_t = baseline::Provider::Synthetic)]
        provider: baseline::Provider,
    },
    /// Serve the fixed yardstick on loopback (database from DB_* variables):
    /// one UPDATE and one INSERT per request.
    Yardstick {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 8)]
        pool: u32,
    },
    /// Run the benchmark: product and baseline, each on its own database.
    Run {
        /// The `biometric-passkey` binary to measure.
        #[arg(long)]
        product: PathBuf,
        /// Seconds per measured phase.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Concurrent clients in the max-throughput phases (and at most in
        /// flight in the half-rate phases).
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Users per client, taken in turn, so that each user runs a few
        /// flows a round as real users do, not hundreds.
        #[arg(long, default_value_t = 16)]
        users_per_client: usize,
        /// Alternating rounds (product, baseline, product, …) per flow.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// Connection pool of both services (DB_MAX_OPEN_CONNS).
        #[arg(long, default_value_t = 16)]
        pool: u32,
        /// Write the figures as JSON here as well.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only this flow (registration, sign_in, step_up, recovery,
        /// step_up_webhook, the four again with `_builtin`, or webhook).
        #[arg(long)]
        only: Option<String>,
        /// A setting for every product process, as NAME=VALUE (repeatable),
        /// for experiments: e.g.
        /// `BIOMETRIC_PASSKEY_AUDIT_PARTITION_MAINTENANCE_ENABLED=false`.
        #[arg(long = "product-env", value_name = "NAME=VALUE", value_parser = setting)]
        product_env: Vec<(String, String)>,
        /// Also measure every flow's maximum throughput against a product
        /// with its metrics off (`BIOMETRIC_PASSKEY_METRICS_PORT=0`), in the
        /// same rounds.
        #[arg(long)]
        metrics_cost: bool,
    },
    /// The fault suite's load and check (`scripts/faults`).
    Faults {
        #[command(subcommand)]
        action: FaultsAction,
    },
    /// Time the overview's roll-up and counts over a month (November 2026)
    /// already in the database: PostgreSQL from DB_* variables, or SQLite.
    Overview {
        /// A SQLite database file instead of PostgreSQL.
        #[arg(long)]
        sqlite: Option<PathBuf>,
    },
    /// Measure WebAuthn assertion verification (the `builtin` possession
    /// mode) next to raw P-256 ECDSA verifies, on one thread.
    Webauthn {
        /// Seconds per case and round.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Alternating rounds (full, RustCrypto, ring, …).
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// Ceremonies prepared for the full verification.
        #[arg(long, default_value_t = 2000)]
        pool: usize,
        /// Write the figures as JSON here as well.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum FaultsAction {
    /// Complete flows of every type at a steady rate, every call journalled.
    Load {
        /// The load balancer's (or a Core API's) base URL.
        #[arg(long)]
        base: String,
        /// Flows started per second, the four types in turn.
        #[arg(long, default_value_t = 8.0)]
        rate: f64,
        #[arg(long)]
        seconds: u64,
        /// Users enrolled before the load.
        #[arg(long, default_value_t = 40)]
        users: usize,
        /// Flows in flight at most (a flow due beyond that is skipped).
        #[arg(long, default_value_t = 64)]
        max_in_flight: usize,
        #[arg(long)]
        journal: PathBuf,
        /// The provider double's control URL (`onfido` mode).
        #[arg(long)]
        control: Option<String>,
        /// The double answers a run's completion at once and delivers its
        /// webhook afterwards.
        #[arg(long, requires = "control")]
        background_delivery: bool,
        /// Seconds each user of the steady load takes at the provider
        /// before their run is completed at the double.
        #[arg(long, default_value_t = 0.0, requires = "control")]
        capture_seconds: f64,
    },
    /// Complete flows at half of the maximum rate (measured first) for
    /// many minutes, the replicas' resident memory sampled; fails when it
    /// keeps rising after the warm-up.
    Soak {
        /// The load balancer's base URL.
        #[arg(long)]
        base: String,
        /// The provider double's control URL (`onfido` mode).
        #[arg(long)]
        control: Option<String>,
        /// A process whose memory is sampled (repeatable).
        #[arg(long = "pid", required = true)]
        pids: Vec<u32>,
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Memory before this is not judged (default: a third of the soak,
        /// 5 minutes at most).
        #[arg(long)]
        warm_up_minutes: Option<f64>,
        /// Seconds between samples.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
        /// Seconds of the maximum-rate measurement first.
        #[arg(long, default_value_t = 20)]
        probe_seconds: u64,
        #[arg(long)]
        journal: PathBuf,
    },
    /// Serve the provider double for the replicas (`onfido` mode).
    Double {
        /// Where it delivers webhooks (the load balancer's webhook route).
        #[arg(long)]
        webhook_url: String,
        /// Its API's base URL and its control URL are written here.
        #[arg(long)]
        info: PathBuf,
    },
    /// One line of figures from the journal and the database (DB_* and
    /// `--database`); fails when the product did not meet the suite.
    Check {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        journal: PathBuf,
        #[arg(long)]
        database: String,
        /// When the fault began, ms since the epoch.
        #[arg(long, requires = "fault_end")]
        fault_start: Option<u64>,
        /// When the fault ended (the service was back), ms since the epoch.
        #[arg(long, requires = "fault_start")]
        fault_end: Option<u64>,
        /// No call may fail at all (a rolling deploy).
        #[arg(long)]
        strict: bool,
        /// A replica was killed at the fault's start: its calls in flight
        /// are counted apart.
        #[arg(long)]
        killed: bool,
        /// The fault was the provider's outage; the double lists its runs
        /// here (`bench faults double`'s outage switch, `/runs`).
        #[arg(long, value_name = "URL")]
        provider_outage_runs: Option<String>,
    },
}

/// `NAME=VALUE`, as `--product-env` takes it.
fn setting(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {arg:?}")),
    }
}

impl Cli {
    pub(crate) async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Baseline {
                port,
                pool,
                rp_id,
                provider,
            } => baseline::serve(port, pool, rp_id, provider).await,
            Command::Yardstick { port, pool } => yardstick::serve(port, pool).await,
            Command::Run {
                product,
                duration,
                clients,
                users_per_client,
                rounds,
                pool,
                json,
                only,
                product_env,
                metrics_cost,
            } => {
                run::run(
                    Product {
                        binary: product,
                        env: product_env,
                    },
                    Shape {
                        duration: Duration::from_secs(duration),
                        rounds: rounds.max(1),
                        clients: clients.max(1),
                        users_per_client: users_per_client.max(1),
                        pool,
                        metrics_cost,
                    },
                    json,
                    only.as_deref(),
                )
                .await
            }
            Command::Faults { action } => action.run().await,
            Command::Overview { sqlite } => {
                let repo: Arc<dyn domain::Repository> = match sqlite {
                    Some(path) => Arc::new(
                        store_sqlite::SqliteStore::open(&store_sqlite::SqliteSettings::new(path))
                            .await?,
                    ),
                    None => Arc::new(PgStore::connect_lazy(&services::settings(
                        &services::env("DB_NAME")?,
                        4,
                    )?)),
                };
                overview::main(repo).await
            }
            Command::Webauthn {
                seconds,
                rounds,
                pool,
                json,
            } => webauthn::main(
                webauthn::Options {
                    duration: Duration::try_from_secs_f64(seconds)
                        .context("--seconds takes a positive number")?,
                    rounds,
                    pool,
                },
                json.as_deref(),
            ),
        }
    }
}

impl FaultsAction {
    async fn run(self) -> anyhow::Result<()> {
        match self {
            FaultsAction::Load {
                base,
                rate,
                seconds,
                users,
                max_in_flight,
                journal,
                control,
                background_delivery,
                capture_seconds,
            } => {
                faults::load(faults::LoadOptions {
                    base,
                    rate,
                    duration: Duration::from_secs(seconds),
                    users,
                    max_in_flight,
                    journal,
                    control,
                    background_delivery,
                    capture: Duration::try_from_secs_f64(capture_seconds)
                        .context("--capture-seconds takes a number of seconds")?,
                })
                .await
            }
            FaultsAction::Double { webhook_url, info } => faults::double(webhook_url, &info).await,
            FaultsAction::Soak {
                base,
                control,
                pids,
                minutes,
                warm_up_minutes,
                every,
                probe_seconds,
                journal,
            } => {
                let minute = |m: f64| Duration::try_from_secs_f64(m * 60.0);
                soak::soak(soak::SoakOptions {
                    base,
                    control,
                    pids,
                    duration: minute(minutes).context("--minutes takes a positive number")?,
                    warm_up: minute(warm_up_minutes.unwrap_or((minutes / 3.0).min(5.0)))
                        .context("--warm-up-minutes takes a positive number")?,
                    every: Duration::try_from_secs_f64(every)
                        .context("--every takes a positive number")?,
                    probe: Duration::from_secs(probe_seconds.max(1)),
                    journal,
                })
                .await
            }
            FaultsAction::Check {
                scenario,
                journal,
                database,
                fault_start,
                fault_end,
                strict,
                killed,
                provider_outage_runs,
            } => {
                faults::check(faults::CheckOptions {
                    scenario,
                    journal,
                    database,
                    fault: fault_start.zip(fault_end),
                    strict,
                    killed,
                    provider_outage: provider_outage_runs
                        .map(|runs_url| faults::ProviderOutage { runs_url }),
                })
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::setting;

    #[test]
    fn product_settings_are_name_equals_value() {
        assert_eq!(setting("A_B=c=d"), Ok(("A_B".into(), "c=d".into())));
        assert_eq!(setting("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(setting("=x").is_err());
        assert!(setting("NO_VALUE").is_err());
    }
}
