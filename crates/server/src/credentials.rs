//! `biometric-passkey credentials export`: every passkey the backend holds,
//! per user or all, as versioned JSON lines (docs/credential-export.md), so a
//! customer can run their own relying party without re-enrolling anyone.
//!
//! Users are read a page at a time and each page's lines are written before
//! the next is read, so an export of any size holds one page in memory. The
//! export is put on the audit trail once, when it ends, with who ran it, the
//! users it covered and how many credentials it wrote.

use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::audit::{Actor, AuditEventType, NewAuditEvent, Subject};
use domain::credential::Credential;
use domain::{Clock, ExternalUserId, Repository, User, UserQuery};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The format's name, in the first line of every export.
pub const FORMAT: &str = "biometric-passkey.credentials";
/// The format's version: grows when a field changes meaning or goes away
/// (new fields may be added within a version).
pub const VERSION: u32 = 1;
/// Users read per page.
const PAGE: u32 = 200;

/// Which users an export covers.
pub enum Users {
    All,
    One(ExternalUserId),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub users: u64,
    pub credentials: u64,
}

/// Writes the export to `out`: a header line, one line per credential, an
/// end line with the counts; then records it (`operator.read`,
/// `credential_export`) as `exported_by`. An export that fails part way is
/// recorded too, as incomplete, with what it wrote.
pub async fn export(
    repo: Arc<dyn Repository>,
    clock: &dyn Clock,
    users: Users,
    exported_by: &str,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exported> {
    let mut exported = Exported {
        users: 0,
        credentials: 0,
    };
    let (scope, subject) = match &users {
        Users::All => ("all", Subject::default()),
        Users::One(id) => match repo.user_by_external_id(id).await {
            Ok(user) => ("user", Subject::of_user(&user)),
            Err(domain::StoreError::NotFound) => {
                anyhow::bail!("no user with the external id {id}")
            }
            Err(e) => return Err(e.into()),
        },
    };
    let result = write_all(&*repo, clock, &users, out, &mut exported).await;
    let event = NewAuditEvent {
        details: json!({
            "read": "credential_export",
            "via": "cli",
            "users": scope,
            "users_exported": exported.users,
            "credentials": exported.credentials,
            "format_version": VERSION,
            "complete": result.is_ok(),
        }),
        ..NewAuditEvent::new(
            AuditEventType::OperatorRead,
            Actor::Operator(exported_by.to_owned()),
            subject,
            clock.now(),
        )
    };
    repo.append_audit(&event).await?;
    result.map(|()| exported)
}

async fn write_all(
    repo: &dyn Repository,
    clock: &dyn Clock,
    users: &Users,
    out: &mut (dyn Write + Send),
    exported: &mut Exported,
) -> anyhow::Result<()> {
    let header = json!({
        "format": FORMAT,
        "version": VERSION,
        "exported_at": rfc3339(clock.now()),
    });
    writeln!(out, "{header}")?;
    match users {
        Users::One(id) => {
            let user = repo.user_by_external_id(id).await?;
            write_user(repo, &user, out, exported).await?;
        }
        Users::All => {
            let mut query = UserQuery {
                prefix: None,
                credential_status: None,
                created_from: None,
                created_before: None,
                after: None,
                limit: PAGE,
            };
            loop {
                let page = repo.search_users(&query).await?;
                for user in &page.items {
                    write_user(repo, user, out, exported).await?;
                }
                out.flush()?;
                match page.next {
                    Some(next) => query.after = Some(next),
                    None => break,
                }
            }
        }
    }
    let end = json!({ "end": { "users": exported.users, "credentials": exported.credentials } });
    writeln!(out, "{end}")?;
    out.flush()?;
    Ok(())
}

async fn write_user(
    repo: &dyn Repository,
    user: &User,
    out: &mut (dyn Write + Send),
    exported: &mut Exported,
) -> anyhow::Result<()> {
    exported.users += 1;
    for credential in repo.credentials_of(user.id).await? {
        writeln!(out, "{}", record(&user.external_id, &credential))?;
        exported.credentials += 1;
    }
    Ok(())
}

/// One credential's line.
pub fn record(user: &ExternalUserId, credential: &Credential) -> Value {
    // `builtin` mode keeps the relying party's own form of the key; an
    // `external` credential's key is the COSE_Key its relying party reported.
    let (mode, public_key) = match &credential.passkey {
        Some(_) => (
            "builtin",
            credential
                .public_key
                .as_deref()
                .and_then(relying_party::cose::cose_public_key),
        ),
        None => ("external", credential.public_key.clone()),
    };
    json!({
        "external_user_id": user.as_str(),
        "credential_id": credential.webauthn_id.as_str(),
        "public_key": public_key.map(|k| URL_SAFE_NO_PAD.encode(k)),
        "aaguid": credential.aaguid,
        "sign_count": credential.sign_count,
        "transports": credential.transports,
        "backup_eligible": credential.backup_eligible,
        "backup_state": credential.backup_state,
        "status": credential.status.as_str(),
        "created_at": rfc3339(credential.created_at),
        "last_used_at": credential.last_used_at.map(rfc3339),
        "possession_mode": mode,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}
