//! `keys generate|api-key|status|reseal`: new secrets, and the move of what
//! earlier data-encryption keys sealed onto the current one (see
//! [`crate::keys`]).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use domain::Repository;
use domain::sealing::DataKey;

use super::{failed, refuse, warn_unknown};
use crate::config::{AuditToolConfig, Env};
use crate::{app, audit, telemetry};

/// What `keys` makes.
pub enum KeysRequest {
    DataEncryption { id: Option<String> },
    CoreApi,
}

/// Prints a new secret on standard output (exit 0), or why not (exit 2).
#[allow(clippy::print_stdout, clippy::print_stderr)] // The secret is the command's output.
pub fn keys(request: KeysRequest) -> ExitCode {
    use domain::Clock;
    let out = match request {
        KeysRequest::DataEncryption { id } => {
            match crate::keys::data_encryption_key(id.as_deref(), app::SystemClock.now()) {
                Ok(lines) => zeroize::Zeroizing::new(lines),
                Err(reason) => {
                    eprintln!("biometric-passkey keys generate: {reason}");
                    return ExitCode::from(2);
                }
            }
        }
        KeysRequest::CoreApi => crate::keys::core_api_key(),
    };
    print!("{}", out.as_str());
    ExitCode::SUCCESS
}

/// `keys status`: see [`crate::keys::status_report`].
#[allow(clippy::print_stdout)] // The report is the command's output.
pub async fn keys_status(env: &Env) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("keys", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let counts = match app::open_repository(&config.database).await {
        Ok(repo) => repo.sealed_values().await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    let counts = match counts {
        Ok(counts) => counts,
        Err(e) => return failed(&e),
    };
    let configured: Vec<&str> = std::iter::once(config.data_key.id())
        .chain(config.data_key.earlier_ids())
        .map(|id| id.as_str())
        .collect();
    let (report, all_configured) = crate::keys::status_report(&counts, &configured);
    print!("{report}");
    if all_configured {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

/// `keys reseal`: everything sealed under an earlier data-encryption key is
/// sealed again under the current one, then the audit trail's seals are
/// re-keyed. 0 when nothing is left under an earlier key; 3 when values
/// under a key that is not configured remain (named); 1 on any other failure.
#[allow(clippy::print_stdout, clippy::print_stderr)] // Progress and report are the output.
pub async fn keys_reseal(env: &Env, batch: u32) -> ExitCode {
    let config = match AuditToolConfig::from_env(env) {
        Ok(config) => config,
        Err(problems) => return refuse("keys", &problems),
    };
    telemetry::init_for_command(config.log_level);
    warn_unknown(env);
    let repo = match app::open_repository(&config.database).await {
        Ok(repo) => repo,
        Err(e) => return failed(&e),
    };
    let key = &config.data_key;
    let resealed = match reseal_values(repo.as_ref(), key, batch).await {
        Ok(resealed) => resealed,
        Err(code) => return code,
    };
    let trail = audit::trail(repo.clone(), Arc::new(app::SystemClock), key, &config.audit);
    if let Err(code) = rekey_trail(&trail, key).await {
        return code;
    }
    if !resealed.unreadable.is_empty() {
        for (reason, n) in &resealed.unreadable {
            eprintln!("left as they are: {n} values {reason}");
        }
        return ExitCode::from(3);
    }
    if !resealed.settled {
        eprintln!(
            "biometric-passkey keys reseal: requests kept writing values under an earlier key; \
             check the runtimes all run with the new current key, then run `keys reseal` again"
        );
        return ExitCode::FAILURE;
    }
    println!("done: check with `biometric-passkey keys status`");
    ExitCode::SUCCESS
}

/// Re-seals the stored values, with progress on standard error.
#[allow(clippy::print_stdout, clippy::print_stderr)] // Progress and report are the output.
async fn reseal_values(
    repo: &dyn Repository,
    key: &DataKey,
    batch: u32,
) -> Result<crate::keys::Resealed, ExitCode> {
    let total = match repo.sealed_values().await {
        Ok(counts) => crate::keys::left_to_reseal(&counts, key),
        Err(e) => return Err(failed(&anyhow::Error::new(e))),
    };
    println!(
        "re-sealing {total} values under key {}, in batches of {batch}",
        key.id().as_str()
    );
    let mut progress = crate::keys::ResealProgress::new(total, std::io::stderr().is_terminal());
    let outcome = crate::keys::reseal(repo, key, batch, &mut |column, n| {
        if let Some(line) = progress.advance(column, n) {
            eprintln!("{line}");
        }
    })
    .await;
    progress.finish();
    let resealed =
        outcome.map_err(|e| {
            failed(&anyhow::Error::new(e).context(
                "while re-sealing; what is done stays done: run `keys reseal` again to go on",
            ))
        })?;
    println!(
        "re-sealed {} values in {} passes ({} changed by requests meanwhile, left to them)",
        resealed.resealed, resealed.passes, resealed.changed_meanwhile
    );
    Ok(resealed)
}

/// Signs the audit trail's seals again under the current key.
#[allow(clippy::print_stdout, clippy::print_stderr)] // Progress and report are the output.
async fn rekey_trail(
    trail: &domain::audit::trail::AuditTrail,
    key: &DataKey,
) -> Result<(), ExitCode> {
    let rekeyed = match trail.rekey().await {
        Ok(Some(rekeyed)) => rekeyed,
        Ok(None) => {
            eprintln!(
                "biometric-passkey keys reseal: the audit trail's maintenance is running \
                 elsewhere; run `keys reseal` again to re-key its seals"
            );
            return Err(ExitCode::FAILURE);
        }
        Err(e) => {
            return Err(failed(
                &anyhow::Error::new(e).context("while re-keying the audit trail"),
            ));
        }
    };
    if !rekeyed.refused.is_empty() {
        for finding in &rekeyed.refused {
            eprintln!(
                "FINDING {}",
                serde_json::to_string(finding).unwrap_or_default()
            );
        }
        eprintln!(
            "biometric-passkey keys reseal: the audit trail does not verify, so its seals were \
             not re-keyed; see `biometric-passkey audit verify`"
        );
        return Err(ExitCode::FAILURE);
    }
    println!(
        "audit trail: {} seals signed again under key {} ({} event tags made again, {} kept \
         for months no longer stored)",
        rekeyed.seals,
        key.id().as_str(),
        rekeyed.retagged,
        rekeyed.kept_tags
    );
    Ok(())
}
