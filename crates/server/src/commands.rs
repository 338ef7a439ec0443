//! One function per subcommand. Each returns the process exit code.
//!
//! `serve` runs the two runtimes, `dev` and the migration job; `audit`
//! operates the audit trail; `keys` makes secrets and re-seals under a new
//! data-encryption key; `credentials` exports the passkeys. This file holds
//! what every command shares (exit codes, refused settings, failures) and the
//! small ones: `check-config`, `healthcheck` and `smoke`.

mod audit;
mod credentials;
mod keys;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{CoreConfig, Env, ManagementConfig, MigrateConfig, Problems};
use crate::healthcheck;

pub use self::audit::{ArchiveTarget, EXIT_FINDINGS, audit_archive, audit_maintain, audit_verify};
pub use self::credentials::credentials_export;
pub use self::keys::{KeysRequest, keys, keys_reseal, keys_status};
pub use self::serve::{core, dev, management, migrate};

/// Exit code for a refused configuration.
pub const EXIT_CONFIG: u8 = 2;

/// Which runtime's configuration to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Core,
    Management,
    Migrate,
}

/// Prints refused settings, one line each, to stderr.
fn refuse(runtime: &str, problems: &Problems) -> ExitCode {
    eprintln!("biometric-passkey {runtime}: refusing to start; fix these settings:");
    for problem in &problems.0 {
        eprintln!("  {problem}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn warn_unknown(env: &Env) {
    for name in env.unknown_prefixed() {
        tracing::warn!(
            variable = name,
            "unknown BIOMETRIC_PASSKEY_ variable ignored; check its spelling"
        );
    }
}

fn failed(err: &anyhow::Error) -> ExitCode {
    tracing::error!(error = format!("{err:#}"), "stopped on an error");
    ExitCode::FAILURE
}

pub fn check_config(env: &Env, runtime: Runtime) -> ExitCode {
    let (name, outcome) = match runtime {
        Runtime::Core => ("core", CoreConfig::from_env(env).map(drop)),
        Runtime::Management => ("management", ManagementConfig::from_env(env).map(drop)),
        Runtime::Migrate => ("migrate", MigrateConfig::from_env(env).map(drop)),
    };
    match outcome {
        Ok(()) => {
            for unknown in env.unknown_prefixed() {
                eprintln!(
                    "warning: {unknown} is not a setting of biometric-passkey; check its spelling"
                );
            }
            eprintln!("biometric-passkey {name}: configuration is valid");
            ExitCode::SUCCESS
        }
        Err(problems) => refuse(name, &problems),
    }
}

pub async fn healthcheck(port: u16, path: &str) -> ExitCode {
    match healthcheck::probe(port, path, Duration::from_secs(3)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// `smoke`: see [`crate::smoke`]. 0 when no check failed, 1 otherwise.
#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn smoke(options: crate::smoke::SmokeOptions, json: bool) -> ExitCode {
    let report = crate::smoke::run(options).await;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_owned())
        );
    } else {
        print!("{}", report.lines());
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
