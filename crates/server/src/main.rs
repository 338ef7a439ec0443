//! `biometric-passkey`: the Core API, the management runtime, the migration
//! job and the evaluation setup, in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use domain::audit::month::Month;
use server::commands::{self, Runtime};
use server::config::{Env, LogLevel};
use server::dev::{self, DevOptions};

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
    Dev(DevArgs),
    /// Operate the audit trail: maintain it now, verify it, archive a month.
    /// Configured like the Core API (database and data-encryption key).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Export the passkeys the backend holds. Configured like the Core API
    /// (database and data-encryption key).
    Credentials {
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Make new secrets in the formats the configuration takes (printed once).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
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
    /// Check a deployed installation from outside, after each rollout: one
    /// line per check, exit 1 when any fails. Creates nothing unless
    /// --journey is given.
    Smoke {
        /// The Core API's base URL.
        #[arg(long)]
        core_url: String,
        /// The management runtime's base URL; its checks are skipped without it.
        #[arg(long)]
        management_url: Option<String>,
        /// The Core API key to present; else the first key of
        /// $BIOMETRIC_PASSKEY_CORE_API_KEYS.
        #[arg(long)]
        api_key: Option<String>,
        /// Also run a registration and a step-up for a throwaway user, then
        /// delete it. Only against a Core API whose IDV provider is synthetic.
        #[arg(long)]
        journey: bool,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

// `dev`'s options (its help text is the variant's).
#[derive(Debug, clap::Args)]
struct DevArgs {
    /// Where the embedded database and the generated key are kept.
    #[arg(long, default_value = ".biometric-passkey-dev")]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 3000)]
    core_port: u16,
    #[arg(long, default_value_t = 3001)]
    management_port: u16,
    /// Where both runtimes' Prometheus metrics are served (`/metrics`); 0: not served.
    #[arg(long, default_value_t = server::metrics::DEFAULT_PORT)]
    metrics_port: u16,
    /// `builtin`: the backend verifies passkeys itself (the flows return
    /// WebAuthn options and take the authenticator's response).
    #[arg(long, default_value = "external", value_parser = ["external", "builtin"])]
    possession: String,
    /// `builtin` mode: the relying party id.
    #[arg(long, default_value = "localhost")]
    rp_id: String,
    /// `builtin` mode: an origin passkeys are used from (repeatable).
    #[arg(long = "origin")]
    origins: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// A new data-encryption key and its id, as the two environment lines.
    Generate {
        /// The key id (1-64 of A-Z a-z 0-9 . _ : -); `key-<UTC date>` by default.
        #[arg(long)]
        id: Option<String>,
    },
    /// A new Core API key, with the fingerprint audit events name it by.
    ApiKey,
    /// How many stored values each data-encryption key id seals, per column
    /// (0 every key configured, 3 some value names a key that is not).
    /// Configured like the Core API (database and keys).
    Status,
    /// Seal again under the current key everything an earlier key sealed,
    /// in small batches, next to live traffic; then re-key the audit trail's
    /// seals. Resumable: a second run does what is left (0 nothing left under
    /// an earlier key, 3 values under a key that is not configured remain).
    Reseal {
        /// Values read and written per transaction.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
}

#[derive(Debug, Subcommand)]
enum CredentialsAction {
    /// Every credential, or one user's, to standard output as versioned JSON
    /// lines (docs/credential-export.md); the export is audited.
    Export {
        /// Only this user's credentials (their external user id).
        #[arg(long)]
        user: Option<String>,
        /// Who exports, as recorded in the audit trail. Defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        exported_by: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Create partitions ahead, apply retention, and seal new events, once.
    Maintain,
    /// Check every stored event against the seals (0 clean, 3 findings).
    Verify {
        /// Only this month (YYYY-MM); the chain of seals is always checked.
        #[arg(long)]
        month: Option<Month>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a finished month as gzip-compressed JSON lines and record its
    /// manifest, which retention requires before dropping the month.
    Archive {
        /// The month to export (YYYY-MM).
        #[arg(long)]
        month: Month,
        /// The directory the file is written to; `-` writes the archive to
        /// standard output instead, without recording its manifest (record
        /// it with --confirm-sha256 once the received file is checked).
        #[arg(
            long,
            required_unless_present = "confirm_sha256",
            conflicts_with = "confirm_sha256"
        )]
        output: Option<PathBuf>,
        /// Records the manifest of a month archived to standard output, if
        /// the month still archives to exactly this SHA-256 (hex).
        #[arg(long)]
        confirm_sha256: Option<String>,
        /// Who archives, as recorded in the manifest. Defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        archived_by: String,
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
    runtime.block_on(run(cli.command, &env))
}

async fn run(command: Command, env: &Env) -> ExitCode {
    match command {
        Command::Core => commands::core(env).await,
        Command::Management => commands::management(env).await,
        Command::Migrate => commands::migrate(env).await,
        Command::Dev(args) => dev(args, env).await,
        Command::Audit { action } => audit(action, env).await,
        Command::Credentials {
            action: CredentialsAction::Export { user, exported_by },
        } => commands::credentials_export(env, user.as_deref(), &exported_by).await,
        Command::Keys { action } => match action {
            KeysAction::Status => commands::keys_status(env).await,
            KeysAction::Reseal { batch } => commands::keys_reseal(env, batch).await,
            KeysAction::Generate { id } => {
                commands::keys(commands::KeysRequest::DataEncryption { id })
            }
            KeysAction::ApiKey => commands::keys(commands::KeysRequest::CoreApi),
        },
        Command::CheckConfig { runtime } => commands::check_config(env, runtime),
        Command::Healthcheck { port, path } => commands::healthcheck(port, &path).await,
        Command::Smoke {
            core_url,
            management_url,
            api_key,
            journey,
            json,
        } => {
            let api_key = api_key.map(secrecy::SecretString::from).or_else(|| {
                env.get("BIOMETRIC_PASSKEY_CORE_API_KEYS")
                    .and_then(server::smoke::first_key)
            });
            let options = server::smoke::SmokeOptions {
                core_url,
                management_url,
                api_key,
                journey,
            };
            commands::smoke(options, json).await
        }
    }
}

async fn dev(args: DevArgs, env: &Env) -> ExitCode {
    let log_level = match env.get("BIOMETRIC_PASSKEY_LOG_LEVEL") {
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        _ => LogLevel::Info,
    };
    let possession = match dev::possession(&args.possession, &args.rp_id, &args.origins) {
        Ok(possession) => possession,
        Err(e) => {
            eprintln!("biometric-passkey dev: {e}");
            return ExitCode::from(2);
        }
    };
    commands::dev(DevOptions {
        data_dir: args.data_dir,
        core_port: args.core_port,
        management_port: args.management_port,
        metrics_port: args.metrics_port,
        log_level,
        possession,
        metadata_file: env.get(server::config::METADATA_FILE).map(PathBuf::from),
    })
    .await
}

async fn audit(action: AuditAction, env: &Env) -> ExitCode {
    match action {
        AuditAction::Maintain => commands::audit_maintain(env).await,
        AuditAction::Verify { month, json } => commands::audit_verify(env, month, json).await,
        AuditAction::Archive {
            month,
            output,
            confirm_sha256,
            archived_by,
        } => {
            let target = match (output, confirm_sha256) {
                (_, Some(sha256)) => commands::ArchiveTarget::Confirm(sha256),
                (Some(dir), None) if dir.as_os_str() == "-" => commands::ArchiveTarget::Stdout,
                (Some(dir), None) => commands::ArchiveTarget::Directory(dir),
                (None, None) => unreachable!("clap requires one of them"),
            };
            commands::audit_archive(env, month, target, &archived_by).await
        }
    }
}
