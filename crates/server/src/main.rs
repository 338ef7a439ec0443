//! `biometric-passkey`: the Core API, the management runtime, the migration
//! job and the evaluation setup, in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use server::commands::{self, Runtime};
use server::config::{Env, LogLevel};
use server::dev::DevOptions;

#[derive(Debug, Parser)]
#[command(
    name = "biometric-passkey",
    version,
    about = "Self-hosted Biometric Passkey backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Core API (configured by environment variables).
    Core,
    /// Serve the management runtime (configured by environment variables).
    Management,
    /// Apply the database schema, then exit. Running it again changes nothing.
    Migrate,
    /// Run both runtimes on loopback with an embedded database, for evaluation.
    Dev {
        /// Where the embedded database and the generated key are kept.
        #[arg(long, default_value = ".biometric-passkey-dev")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 3000)]
        core_port: u16,
        #[arg(long, default_value_t = 3001)]
        management_port: u16,
    },
    /// Validate the environment for a runtime and exit (0 valid, 2 refused).
    CheckConfig {
        #[arg(value_enum)]
        runtime: Runtime,
    },
    /// Probe the local runtime's health endpoint; for container HEALTHCHECKs.
    Healthcheck {
        /// Defaults to $PORT, else 3000.
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = "/api/health")]
        path: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("biometric-passkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Core => commands::core(&env).await,
            Command::Management => commands::management(&env).await,
            Command::Migrate => commands::migrate(&env).await,
            Command::Dev {
                data_dir,
                core_port,
                management_port,
            } => {
                let log_level = match env.get("BIOMETRIC_PASSKEY_LOG_LEVEL") {
                    Some("debug") => LogLevel::Debug,
                    Some("warn") => LogLevel::Warn,
                    Some("error") => LogLevel::Error,
                    _ => LogLevel::Info,
                };
                commands::dev(DevOptions {
                    data_dir,
                    core_port,
                    management_port,
                    log_level,
                })
                .await
            }
            Command::CheckConfig { runtime } => commands::check_config(&env, runtime),
            Command::Healthcheck { port, path } => commands::healthcheck(port, &path).await,
        }
    })
}
