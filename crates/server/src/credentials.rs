//! `biometric-passkey credentials export`: every passkey the backend holds,
//! per user or all, as versioned JSON lines (docs/credential-export.md;
//! the format and its reader are `domain::credential::export`'s), so a
//! customer can run their own relying party without re-enrolling anyone.
//!
//! Each page's lines are written before the next is read. The export is put
//! on the audit trail once, when it ends, with who ran it, the users it
//! covered and how many credentials it wrote.

use std::io::Write;
use std::sync::Arc;

use domain::audit::Actor;
use domain::credential::export::{CoseKeyOf, Export, Via};
use domain::operations::OperatorActions;
use domain::service::RequestContext;
use domain::{Clock, Repository};

pub use domain::credential::export::{Exported, FORMAT, Users, VERSION};

/// The COSE_Key of a key the built-in relying party stored: what both doors
/// of the export are given.
pub const COSE_KEY_OF: CoseKeyOf = relying_party::cose::cose_public_key;

/// Writes the export to `out`: a header line, one line per credential, an
/// end line with the counts; then records it (`operator.read`,
/// `credential_export`, `via` `cli`) as `exported_by`. An export that fails
/// part way is recorded too, as incomplete, with what it wrote; an unknown
/// user writes nothing.
pub async fn export(
    repo: Arc<dyn Repository>,
    clock: Arc<dyn Clock>,
    users: Users,
    exported_by: &str,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Exported> {
    let operations = OperatorActions::new(repo, clock);
    let mut export = operations
        .start_credential_export(users, COSE_KEY_OF)
        .await
        .map_err(failure)?;
    let result = write_all(&mut export, out).await;
    let ctx = RequestContext {
        actor: Actor::Operator(exported_by.to_owned()),
        correlation_id: None,
    };
    operations
        .record_read(&ctx, export.on_record(Via::Cli, result.is_ok()))
        .await
        .map_err(failure)?;
    result.map(|()| export.exported())
}

async fn write_all(export: &mut Export, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    while let Some(chunk) = export.next_chunk().await? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

/// A domain error as the command reports it: its message and, for a
/// server-side failure, its detail.
fn failure(e: domain::DomainError) -> anyhow::Error {
    match e.internal {
        Some(detail) => anyhow::anyhow!("{}: {detail}", e.message),
        None => anyhow::anyhow!(e.message),
    }
}
