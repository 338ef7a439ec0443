//! The credential export (docs/credential-export.md): every passkey the
//! backend holds, per user or all, as versioned JSON lines, so a customer can
//! run their own relying party without re-enrolling anyone. Both doors, the
//! `credentials export` command and the Management API's route, write what
//! this module reads and record it as it says.
//!
//! An [`Export`] reads the users a page at a time and hands out each page's
//! lines before reading the next, so an export of any size holds one page in
//! memory. The domain knows nothing of CBOR: a `builtin`-mode key is stored in
//! the relying party's own form, and its COSE_Key comes from the
//! [`CoseKeyOf`] the caller passes in (the relying party's conversion).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::Subject;
use crate::credential::Credential;
use crate::error::DomainResult;
use crate::operations::{OperatorRead, find_user};
use crate::store::{Repository, StoreResult, UserQuery};
use crate::user::{ExternalUserId, User};

/// The format's name, in the first line of every export.
pub const FORMAT: &str = "biometric-passkey.credentials";
/// The format's version: grows when a field changes meaning or goes away
/// (new fields may be added within a version).
pub const VERSION: u32 = 1;
/// Users read per page.
pub const PAGE: u32 = 200;

/// The COSE_Key (RFC 9052) of a public key the built-in relying party stored
/// in its own form; `None` when the stored form cannot be read.
pub type CoseKeyOf = fn(&[u8]) -> Option<Vec<u8>>;

/// Which users an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users {
    All,
    One(ExternalUserId),
}

/// Which door an export went out through, as the audit trail records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `biometric-passkey credentials export`.
    Cli,
    /// The Management API.
    Api,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Api => "api",
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub users: u64,
    pub credentials: u64,
}

/// The first line: the format, its version and when the export began.
pub fn header(exported_at: OffsetDateTime) -> Value {
    json!({ "format": FORMAT, "version": VERSION, "exported_at": rfc3339(exported_at) })
}

/// One credential's line.
pub fn record(user: &ExternalUserId, credential: &Credential, cose_key_of: CoseKeyOf) -> Value {
    // `builtin` mode keeps the relying party's own form of the key; an
    // `external` credential's key is the COSE_Key its relying party reported.
    let (mode, public_key) = match &credential.passkey {
        Some(_) => (
            "builtin",
            credential.public_key.as_deref().and_then(cose_key_of),
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

/// The last line: the export is complete, and what it holds.
pub fn end(exported: Exported) -> Value {
    json!({ "end": { "users": exported.users, "credentials": exported.credentials } })
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Users,
    End,
    Done,
}

/// An export in progress: hands out its lines a chunk at a time (the header,
/// then one page of users, …, then the end line).
pub struct Export {
    repo: Arc<dyn Repository>,
    cose_key_of: CoseKeyOf,
    exported_at: OffsetDateTime,
    /// The one user asked for; `None` for all users.
    user: Option<User>,
    query: UserQuery,
    stage: Stage,
    exported: Exported,
}

impl Export {
    /// An export of `users` beginning at `exported_at`; `404 user_not_found`
    /// when the one user asked for does not exist. Nothing is read past that
    /// until [`Export::next_chunk`].
    pub async fn start(
        repo: Arc<dyn Repository>,
        users: Users,
        cose_key_of: CoseKeyOf,
        exported_at: OffsetDateTime,
    ) -> DomainResult<Self> {
        let user = match &users {
            Users::All => None,
            Users::One(id) => Some(find_user(&*repo, id).await?),
        };
        Ok(Self {
            repo,
            cose_key_of,
            exported_at,
            user,
            query: UserQuery {
                prefix: None,
                credential_status: None,
                created_from: None,
                created_before: None,
                after: None,
                limit: PAGE,
            },
            stage: Stage::Header,
            exported: Exported::default(),
        })
    }

    /// The next lines, each ending in a newline; `None` once the end line
    /// has been handed out.
    pub async fn next_chunk(&mut self) -> StoreResult<Option<Vec<u8>>> {
        let lines = match self.stage {
            Stage::Header => {
                self.stage = Stage::Users;
                vec![header(self.exported_at)]
            }
            Stage::Users => self.next_page().await?,
            Stage::End => {
                self.stage = Stage::Done;
                vec![end(self.exported)]
            }
            Stage::Done => return Ok(None),
        };
        let mut chunk = Vec::new();
        for line in lines {
            chunk.extend_from_slice(line.to_string().as_bytes());
            chunk.push(b'\n');
        }
        Ok(Some(chunk))
    }

    /// The lines of the next page of users.
    async fn next_page(&mut self) -> StoreResult<Vec<Value>> {
        let users = match &self.user {
            Some(user) => {
                self.stage = Stage::End;
                vec![user.clone()]
            }
            None => {
                let page = self.repo.search_users(&self.query).await?;
                match page.next {
                    Some(next) => self.query.after = Some(next),
                    None => self.stage = Stage::End,
                }
                page.items
            }
        };
        let mut lines = Vec::new();
        for user in &users {
            let credentials = self.repo.credentials_of(user.id).await?;
            self.exported.users += 1;
            self.exported.credentials += credentials.len() as u64;
            lines.extend(
                credentials
                    .iter()
                    .map(|c| record(&user.external_id, c, self.cose_key_of)),
            );
        }
        Ok(lines)
    }

    /// What has been handed out so far.
    pub fn exported(&self) -> Exported {
        self.exported
    }

    /// The export as the audit trail records it (`operator.read`, `read`
    /// `credential_export`): which door, which users (`all`, or `user` with
    /// the user as the subject), how many users and credentials were handed
    /// out, the format's version, and whether it is `complete`: its end line
    /// reached the reader, which only the door it went through knows.
    pub fn on_record(&self, via: Via, complete: bool) -> OperatorRead {
        let (users, subject) = match &self.user {
            None => ("all", Subject::default()),
            Some(user) => ("user", Subject::of_user(user)),
        };
        OperatorRead {
            what: "credential_export",
            subject,
            details: json!({
                "via": via.as_str(),
                "users": users,
                "users_exported": self.exported.users,
                "credentials": self.exported.credentials,
                "format_version": VERSION,
                "complete": complete,
            }),
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::credential::{CredentialStatus, RegisteredPasskey, WebAuthnId};
    use crate::flow::FlowId;
    use crate::user::UserId;

    const AT: OffsetDateTime = time::macros::datetime!(2026-12-06 23:00:00 UTC);

    fn credential(passkey: Option<RegisteredPasskey>, public_key: Option<Vec<u8>>) -> Credential {
        Credential {
            id: Uuid::nil(),
            user_id: UserId(Uuid::nil()),
            webauthn_id: WebAuthnId::parse("AQID").unwrap(),
            public_key,
            aaguid: None,
            sign_count: 17,
            transports: vec!["internal".into()],
            backup_eligible: true,
            backup_state: false,
            platform: None,
            device_label: None,
            passkey,
            created_by_flow: FlowId(Uuid::nil()),
            status: CredentialStatus::Suspended,
            status_reason: None,
            created_at: AT,
            updated_at: AT,
            last_used_at: None,
        }
    }

    fn cose(stored: &[u8]) -> Option<Vec<u8>> {
        (stored == b"stored").then(|| b"cose".to_vec())
    }

    #[test]
    fn a_builtin_key_is_converted_and_an_external_one_exported_as_reported() {
        let user = ExternalUserId::parse("customer-42").unwrap();
        let passkey = RegisteredPasskey {
            user_verified: true,
            attestation_format: "none".into(),
            attestation_verified: false,
            data: json!({}),
        };
        let builtin = record(
            &user,
            &credential(Some(passkey.clone()), Some(b"stored".to_vec())),
            cose,
        );
        assert_eq!(builtin["possession_mode"], "builtin");
        assert_eq!(builtin["public_key"], URL_SAFE_NO_PAD.encode(b"cose"));
        let unreadable = record(
            &user,
            &credential(Some(passkey), Some(b"other".to_vec())),
            cose,
        );
        assert!(unreadable["public_key"].is_null());
        let external = record(&user, &credential(None, Some(b"reported".to_vec())), cose);
        assert_eq!(external["possession_mode"], "external");
        assert_eq!(external["public_key"], URL_SAFE_NO_PAD.encode(b"reported"));
        assert_eq!(external["external_user_id"], "customer-42");
        assert_eq!(external["credential_id"], "AQID");
        assert_eq!(external["sign_count"], 17);
        assert_eq!(external["status"], "suspended");
        assert_eq!(external["created_at"], "2026-12-06T23:00:00Z");
        assert!(external["last_used_at"].is_null());
    }

    #[test]
    fn the_header_and_end_lines_name_the_format_and_the_counts() {
        assert_eq!(
            header(AT),
            json!({ "format": FORMAT, "version": 1, "exported_at": "2026-12-06T23:00:00Z" })
        );
        let exported = Exported {
            users: 2,
            credentials: 3,
        };
        assert_eq!(
            end(exported),
            json!({ "end": { "users": 2, "credentials": 3 } })
        );
    }
}
