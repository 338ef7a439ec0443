//! `credentials export` (see [`crate::credentials`]).

use std::process::ExitCode;
use std::sync::Arc;

use super::{EXIT_CONFIG, failed, refuse, warn_unknown};
use crate::config::{AuditToolConfig, Env};
use crate::{app, telemetry};

/// `credentials export`: see [`crate::credentials`]. 0 when the export is
/// complete; 2 for a refused configuration or user id; 1 otherwise (what was
/// written is then not a complete export: it has no end line).
#[allow(clippy::print_stderr)]
pub async fn credentials_export(env: &Env, user: Option<&str>, exported_by: &str) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("credentials", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let users = match user {
        None => crate::credentials::Users::All,
        Some(raw) => match domain::ExternalUserId::parse(raw) {
            Ok(id) => crate::credentials::Users::One(id),
            Err(e) => {
                eprintln!("biometric-passkey credentials export: --user: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let repo = match app::open_repository(&config.database).await {
        Ok(repo) => repo,
        Err(e) => return failed(&e),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    match crate::credentials::export(
        repo,
        Arc::new(app::SystemClock),
        users,
        exported_by,
        &mut out,
    )
    .await
    {
        Ok(exported) => {
            eprintln!(
                "exported {} credentials of {} users",
                exported.credentials, exported.users
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e.context("while exporting credentials")),
    }
}
