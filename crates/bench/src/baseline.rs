//! The baseline: the smallest service that does each flow step's database
//! work — the same store calls, so the same statements, transactions and audit
//! inserts as the product — and nothing else: no validation beyond parsing, no
//! idempotency, no sealing, no IDV client, a minimal response. The next state of
//! a flow comes from the domain's pure state machine, as in the product.
//!
//! It answers the Core API's routes with the same JSON shapes the load
//! generator reads, so one driver measures both.
//!
//! Its rows are the product's size: where the product seals a value, the
//! baseline stores the value behind a zeroed header as long as sealing adds;
//! its audit events carry a correlation id and the product's details. The
//! harness compares the two databases' rows after every run (see
//! `crate::rows`).
//!
//! With a relying party id it stands in for `builtin` possession mode: flow
//! creation reads the user's passkeys (as the product's ceremony start does),
//! stores a ceremony with the flow and returns WebAuthn options with a fresh
//! challenge; possession takes the authenticator's response and consumes the
//! ceremony in the same write. It verifies nothing: the credential id and the
//! counter are read from the response, and a stand-in of the product's
//! verified passkey is stored where the product stores it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::credential::{Credential, CredentialStatus, RegisteredPasskey, WebAuthnId};
use domain::custody::BiometricReference;
use domain::flow::{
    Ceremony, Fact, Flow, FlowId, FlowState, FlowType, IdentityOutcome, KeyedDigest, NewCredential,
};
use domain::sealing::{KeyId, sealed_len};
use domain::service::provider_event_key;
use domain::{
    Actor, AuditEventType, Change, Effect, ExternalUserId, FlowLimits, FlowWrite, NewAuditEvent,
    Repository, StoreError, Subject, User, ids,
};
use serde_json::{Value, json};
use store_postgres::PgStore;
use time::OffsetDateTime;
use uuid::Uuid;

type Reply = Result<Json<Value>, (StatusCode, String)>;

#[derive(Clone)]
struct Baseline {
    repo: Arc<PgStore>,
    limits: (u32, u32),
    webhook_secret: Arc<str>,
    /// `builtin` mode's relying party id.
    rp_id: Option<Arc<str>>,
    provider: Provider,
    /// The length of the provider's SDK tokens.
    sdk_token_len: usize,
    /// What sealing adds to a value under [`KEY_ID`].
    seal_overhead: usize,
}

fn now() -> OffsetDateTime {
    #[allow(clippy::disallowed_methods)] // The baseline keeps its own time, as a service would.
    domain::clock::truncate_to_micros(OffsetDateTime::now_utc())
}

fn fail(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn bad(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, e.to_string())
}

/// The id of the product's data-encryption key in the benchmark.
pub(crate) const KEY_ID: &str = "default";

/// The IDV provider whose values the product stores: the SDK token it seals
/// into a flow and the applicant id it seals into a user differ in length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Provider {
    Synthetic,
    Onfido,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Synthetic => "synthetic",
            Provider::Onfido => "onfido",
        }
    }

    /// An SDK token as the provider issues them (the synthetic provider's, or
    /// the provider double's).
    fn sdk_token(self, run_id: &str) -> String {
        match self {
            Provider::Synthetic => idv::synthetic::sdk_token(run_id).to_string(),
            Provider::Onfido => testkit::onfido_double::sdk_token_for(run_id, now()),
        }
    }

    /// An applicant id as the provider names them.
    fn applicant(self) -> String {
        match self {
            Provider::Synthetic => format!("synthetic-applicant-{}", Uuid::new_v4()),
            Provider::Onfido => Uuid::new_v4().to_string(),
        }
    }
}

impl Baseline {
    /// `plaintext` behind a zeroed header, as long as the product's sealed value.
    fn sealed(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = vec![0; self.seal_overhead];
        out.extend_from_slice(plaintext);
        out
    }

    /// What [`Baseline::sealed`] put behind its header.
    fn unsealed<'a>(&self, stored: &'a [u8]) -> &'a [u8] {
        stored.get(self.seal_overhead..).unwrap_or_default()
    }
}

/// An event with a correlation id, as the product's.
fn audit(t: AuditEventType, actor: Actor, subject: Subject, at: OffsetDateTime) -> NewAuditEvent {
    NewAuditEvent {
        correlation_id: Some(ids::new_id(at).to_string()),
        ..NewAuditEvent::new(t, actor, subject, at)
    }
}

/// The customer's backend, by the fingerprint of the load generator's API
/// key, as the product records it.
fn integration() -> Actor {
    static KEY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(crate::load::API_KEY.as_bytes());
        format!("key-{}", hex::encode(&digest[..8]))
    });
    Actor::Integration(Some(KEY_ID.clone()))
}

/// An event about `flow` by the customer's backend.
fn event(t: AuditEventType, flow: &Flow, at: OffsetDateTime) -> NewAuditEvent {
    audit(t, integration(), Subject::of_flow(flow), at)
}

/// The same, by the provider (its outcome or its webhook).
fn provider_event(t: AuditEventType, flow: &Flow, at: OffsetDateTime) -> NewAuditEvent {
    audit(t, Actor::Provider, Subject::of_flow(flow), at)
}

fn flow_completed(event: NewAuditEvent, flow: &Flow) -> NewAuditEvent {
    NewAuditEvent {
        details: json!({
            "type": flow.flow_type.as_str(),
            "transaction_context_hmac": flow.transaction_context_digest.as_ref().map(|d| &d.hmac),
            "transaction_context_key_id": flow.transaction_context_digest.as_ref().map(|d| &d.key_id),
        }),
        ..event
    }
}

fn reply(flow: &Flow) -> Json<Value> {
    Json(json!({
        "id": flow.id.0,
        "state": flow.state.as_str(),
        "identity": { "workflow_run_id": flow.idv_run_id },
    }))
}

/// `builtin` mode: WebAuthn options for `flow` with a fresh challenge, and
/// the ceremony the flow keeps (the options themselves, where the product
/// keeps its sealed state).
fn ceremony(rp_id: &str, user: &User, flow: &Flow, passkeys: &[Credential]) -> (Value, Ceremony) {
    let challenge = URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let descriptor = |c: &Credential| json!({ "type": "public-key", "id": c.webauthn_id.as_str() });
    let options = if flow.flow_type.creates_credential() {
        json!({
            "rp": { "id": rp_id, "name": rp_id },
            "user": {
                "id": URL_SAFE_NO_PAD.encode(user.id.0.as_bytes()),
                "name": user.external_id.as_str(),
                "displayName": user.external_id.as_str(),
            },
            "challenge": challenge,
            "pubKeyCredParams": [{ "type": "public-key", "alg": -7 }],
            "timeout": 120_000,
            "excludeCredentials": passkeys.iter().map(descriptor).collect::<Vec<_>>(),
            "authenticatorSelection": { "requireResidentKey": false, "userVerification": "required" },
            "attestation": "none",
        })
    } else {
        json!({
            "challenge": challenge,
            "timeout": 120_000,
            "rpId": rp_id,
            "allowCredentials": passkeys
                .iter()
                .filter(|c| c.status == CredentialStatus::Active && c.passkey.is_some())
                .map(descriptor)
                .collect::<Vec<_>>(),
            "userVerification": "required",
        })
    };
    let ceremony = Ceremony {
        state_sealed: options.to_string().into_bytes(),
        expires_at: flow.created_at + time::Duration::minutes(5),
    };
    (options, ceremony)
}

/// Stand-ins for what the product stores of a verified registration: the
/// public key (webauthn-rs's COSE key of a P-256 key, as JSON) and the passkey
/// (webauthn-rs's serialised form, around the same key).
fn registered(webauthn_id: &str) -> (Vec<u8>, Value) {
    let coordinate = || URL_SAFE_NO_PAD.encode(ids::random_bytes::<32>());
    let key = json!({
        "type_": "ES256",
        "key": { "EC_EC2": { "curve": "SECP256R1", "x": coordinate(), "y": coordinate() } },
    });
    let passkey = json!({
        "cred": key,
        "counter": 0,
        "cred_id": webauthn_id,
        "extensions": {
            "appid": "NotRequested",
            "cred_props": "Ignored",
            "cred_protect": "Ignored",
            "hmac_create_secret": "NotRequested",
        },
        "transports": null,
        "attestation": { "data": "Self_", "metadata": "None" },
        "backup_state": false,
        "user_verified": true,
        "backup_eligible": false,
        "attestation_format": "packed",
        "registration_policy": "required",
    });
    (key.to_string().into_bytes(), passkey)
}

/// The signature counter in a WebAuthn assertion's authenticator data.
fn assertion_counter(response: &Value) -> Result<u32, (StatusCode, String)> {
    let data = URL_SAFE_NO_PAD
        .decode(
            response["response"]["authenticatorData"]
                .as_str()
                .unwrap_or(""),
        )
        .map_err(bad)?;
    let counter: [u8; 4] = data
        .get(33..37)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("authenticator data too short"))?;
    Ok(u32::from_be_bytes(counter))
}

pub(crate) fn router(
    repo: PgStore,
    max_open_flows: u32,
    max_idv_runs: u32,
    webhook_secret: &str,
    rp_id: Option<String>,
    provider: Provider,
) -> anyhow::Result<Router> {
    let key_id = KeyId::parse(KEY_ID).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = Baseline {
        repo: Arc::new(repo),
        limits: (max_open_flows, max_idv_runs),
        webhook_secret: webhook_secret.into(),
        rp_id: rp_id.map(Into::into),
        provider,
        sdk_token_len: provider.sdk_token(&Uuid::nil().to_string()).len(),
        seal_overhead: sealed_len(&key_id, 0),
    };
    Ok(Router::new()
        .route("/api/health", get(|| async { "ok" }))
        .route("/api/core/v1/flows", post(create_flow))
        .route("/api/core/v1/flows/{id}", get(get_flow))
        .route("/api/core/v1/flows/{id}/possession", post(possession))
        .route(
            "/api/core/v1/flows/{id}/biometric-reference",
            put(store_reference),
        )
        .route(
            "/api/core/v1/flows/{id}/biometric-reference/release",
            post(release_reference),
        )
        .route("/api/core/v1/synthetic/runs/{run}/outcome", post(outcome))
        .route("/api/public/v1/providers/onfido/webhooks", post(webhook))
        .with_state(state))
}

/// Writes a flow's next version with its effects and events.
async fn write(
    repo: &PgStore,
    next: &Flow,
    effects: Vec<Effect>,
    events: Vec<NewAuditEvent>,
) -> Result<(), (StatusCode, String)> {
    repo.apply(&Change {
        flow: Some(FlowWrite::Update { flow: next.clone() }),
        effects,
        events,
    })
    .await
    .map_err(fail)
}

async fn create_flow(State(s): State<Baseline>, Json(body): Json<Value>) -> Reply {
    let at = now();
    let flow_type: FlowType = body["type"].as_str().unwrap_or("").parse().map_err(bad)?;
    let external =
        ExternalUserId::parse(body["external_user_id"].as_str().unwrap_or("")).map_err(bad)?;
    let mut effects = Vec::new();
    let mut events = Vec::new();
    let (user, reference_flow_id) = match s.repo.flow_prerequisites(&external, at).await {
        Ok(standing) => (standing.user, standing.reference_flow_id),
        Err(StoreError::NotFound) if flow_type == FlowType::Registration => {
            let user = User::new(external, at);
            effects.push(Effect::CreateUser(user.clone()));
            events.push(audit(
                AuditEventType::UserCreated,
                integration(),
                Subject::of_user(&user),
                at,
            ));
            (user, None)
        }
        Err(e) => return Err(fail(e)),
    };
    // `builtin` mode reads the user's passkeys for the options.
    let passkeys = match &s.rp_id {
        Some(_) => s.repo.live_credentials_of(user.id).await.map_err(fail)?,
        None => Vec::new(),
    };
    let context = body.get("transaction_context");
    let mut flow = Flow {
        transaction_context_sealed: context.map(|c| s.sealed(c.to_string().as_bytes())),
        transaction_context_digest: context.map(|_| KeyedDigest {
            key_id: KEY_ID.to_owned(),
            hmac: "0".repeat(64),
        }),
        reference_flow_id: reference_flow_id.filter(|_| flow_type.uses_reference()),
        ..Flow::new(
            FlowId(ids::new_id(at)),
            user.id,
            flow_type,
            at,
            at + time::Duration::minutes(15),
        )
    };
    let options = s.rp_id.as_deref().map(|rp_id| {
        let (options, ceremony) = ceremony(rp_id, &user, &flow, &passkeys);
        flow.ceremony = Some(ceremony);
        options
    });
    events.push(NewAuditEvent {
        details: json!({
            "type": flow_type.as_str(),
            "cross_platform": flow.cross_platform,
            "transaction_context_hmac": flow.transaction_context_digest.as_ref().map(|d| &d.hmac),
            "transaction_context_key_id": flow.transaction_context_digest.as_ref().map(|d| &d.key_id),
        }),
        ..event(AuditEventType::FlowCreated, &flow, at)
    });
    // The product writes the flow first, `pending` for an identity flow (its
    // insertion reserves one of the user's IDV runs), then stores the user's
    // applicant when they have none (a statement of its own), then starts the
    // run and writes the flow's next version.
    s.repo
        .apply(&Change {
            flow: Some(FlowWrite::Insert {
                flow: flow.clone(),
                limits: FlowLimits {
                    max_open_flows: s.limits.0,
                    max_idv_runs_per_day: s.limits.1,
                    now: at,
                },
            }),
            effects,
            events,
        })
        .await
        .map_err(fail)?;
    if flow_type.needs_identity() {
        if user.idv_applicant_sealed.is_none() {
            s.repo
                .set_applicant_if_absent(user.id, &s.sealed(s.provider.applicant().as_bytes()))
                .await
                .map_err(fail)?;
        }
        let at = now();
        let fact = Fact::RunStarted {
            run_id: Uuid::new_v4().to_string(),
            sdk_token_sealed: Some(s.sealed(&vec![b'.'; s.sdk_token_len])),
        };
        let next = flow.apply(&fact, at).map_err(bad)?;
        let started = vec![event(AuditEventType::FlowIdvStarted, &next, at)];
        write(&s.repo, &next, vec![], started).await?;
        flow = next;
    }
    let Json(mut body) = reply(&flow);
    if let Some(options) = &options {
        body["possession"] = json!({ "webauthn_options": options });
    }
    Ok(Json(body))
}

async fn get_flow(State(s): State<Baseline>, Path(id): Path<Uuid>) -> Reply {
    let flow = s.repo.flow(FlowId(id)).await.map_err(fail)?;
    Ok(reply(&flow))
}

async fn store_reference(
    State(s): State<Baseline>,
    Path(id): Path<Uuid>,
    Json(body): Json<Value>,
) -> Reply {
    let at = now();
    let flow = s.repo.flow(FlowId(id)).await.map_err(fail)?;
    let token = URL_SAFE_NO_PAD
        .decode(body["token"].as_str().unwrap_or(""))
        .map_err(bad)?;
    // Staged on the flow; the user's only when the flow completes.
    let staged = s.sealed(&token);
    let mut effects = vec![Effect::StageReference {
        flow_id: flow.id,
        sealed: staged.clone(),
        at,
    }];
    let mut events = vec![NewAuditEvent {
        details: json!({ "bytes": token.len(), "key_id": KEY_ID }),
        ..event(AuditEventType::BiometricReferenceStaged, &flow, at)
    }];
    let next = flow.apply(&Fact::ReferenceStored, at).map_err(bad)?;
    if next.state == FlowState::Completed {
        completion(
            &s,
            integration(),
            &flow,
            &next,
            Some(staged),
            at,
            &mut effects,
            &mut events,
        )
        .await?;
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}

async fn release_reference(State(s): State<Baseline>, Path(id): Path<Uuid>) -> Reply {
    let at = now();
    let flow = s.repo.flow(FlowId(id)).await.map_err(fail)?;
    let reference = s.repo.reference_of(flow.user_id).await.map_err(fail)?;
    s.repo
        .append_audit(&event(
            AuditEventType::BiometricReferenceReleased,
            &flow,
            at,
        ))
        .await
        .map_err(fail)?;
    Ok(Json(
        json!({ "token": URL_SAFE_NO_PAD.encode(s.unsealed(&reference.sealed)) }),
    ))
}

async fn possession(
    State(s): State<Baseline>,
    Path(id): Path<Uuid>,
    Json(body): Json<Value>,
) -> Reply {
    let at = now();
    let flow = s.repo.flow(FlowId(id)).await.map_err(fail)?;
    let mut effects = Vec::new();
    let webauthn = body.get("webauthn").map(|w| &w["response"]);
    if webauthn.is_some() && flow.ceremony.is_none() {
        return Err(bad("no ceremony"));
    }
    let creates = flow.flow_type.creates_credential();
    let (fact, pending) = if creates {
        let (webauthn_id, public_key, passkey) = match webauthn {
            Some(response) => {
                let id = response["id"].as_str().unwrap_or("").to_owned();
                let (public_key, data) = registered(&id);
                let passkey = RegisteredPasskey {
                    user_verified: true,
                    attestation_format: "packed".into(),
                    attestation_verified: false,
                    data,
                };
                (id, Some(public_key), Some(passkey))
            }
            None => (
                body["credential"]["id"].as_str().unwrap_or("").to_owned(),
                None,
                None,
            ),
        };
        match s.repo.credential_by_webauthn_id(&webauthn_id).await {
            Err(StoreError::NotFound) => {}
            Ok(_) => return Err(bad("credential exists")),
            Err(e) => return Err(fail(e)),
        }
        let new = NewCredential {
            id: ids::new_id(at),
            webauthn_id,
            public_key,
            aaguid: None,
            sign_count: 0,
            // The product takes transports from the caller's report, and
            // none from a WebAuthn response.
            transports: match webauthn {
                Some(_) => Vec::new(),
                None => vec!["internal".into()],
            },
            backup_eligible: false,
            backup_state: false,
            platform: Some("android".into()),
            device_label: body["webauthn"]["device_label"].as_str().map(Into::into),
            passkey,
        };
        (
            Fact::Possession {
                credential_id: new.id,
            },
            Some(new),
        )
    } else {
        let (webauthn_id, sign_count) = match webauthn {
            Some(response) => (
                response["id"].as_str().unwrap_or(""),
                assertion_counter(response)?,
            ),
            None => (
                body["assertion"]["credential_id"].as_str().unwrap_or(""),
                body["assertion"]["sign_count"].as_u64().unwrap_or(0) as u32,
            ),
        };
        let credential = s
            .repo
            .credential_by_webauthn_id(webauthn_id)
            .await
            .map_err(fail)?;
        effects.push(Effect::UseCredential {
            id: credential.id,
            sign_count,
            backup_state: false,
            at,
        });
        (
            Fact::Possession {
                credential_id: credential.id,
            },
            None,
        )
    };
    let mut next = flow.apply(&fact, at).map_err(bad)?;
    next.pending_credential = pending;
    // The ceremony is consumed by the same write.
    next.ceremony = None;
    let mut events = vec![event(AuditEventType::FlowPossessionVerified, &next, at)];
    if pending_free(&next) {
        events.push(event(AuditEventType::CredentialUsed, &next, at));
    }
    if next.state == FlowState::Completed {
        completion(
            &s,
            integration(),
            &flow,
            &next,
            None,
            at,
            &mut effects,
            &mut events,
        )
        .await?;
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}

fn pending_free(flow: &Flow) -> bool {
    flow.pending_credential.is_none()
}

async fn outcome(State(s): State<Baseline>, Path(run): Path<String>) -> Reply {
    approve(&s, run, false).await
}

/// A signed provider event: the signature checked over the raw bytes, the
/// event de-duplicated, then the same work as the synthetic outcome. (The
/// product also re-reads the run from the provider; that is not database work.)
async fn webhook(
    State(s): State<Baseline>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    use hmac::{Hmac, Mac};
    let signature = headers
        .get("x-sha2-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| hex::decode(v).ok())
        .ok_or_else(|| bad("signature"))?;
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(s.webhook_secret.as_bytes()).map_err(fail)?;
    mac.update(&body);
    mac.verify_slice(&signature).map_err(|_| bad("signature"))?;
    let event: Value = serde_json::from_slice(&body).map_err(bad)?;
    let object = &event["payload"]["object"];
    let run = object["id"].as_str().unwrap_or("").to_owned();
    let status = object["status"].as_str().unwrap_or("");
    if s.repo
        .provider_event_seen(&provider_event_key(s.provider.name(), &run, status))
        .await
        .map_err(fail)?
    {
        return Ok(Json(json!({})));
    }
    approve(&s, run, true).await
}

/// `signed`: a webhook's event, whose audit names the secret that verified it.
async fn approve(s: &Baseline, run: String, signed: bool) -> Reply {
    let provider = s.provider.name();
    let at = now();
    let flow = s.repo.flow_by_run(&run).await.map_err(fail)?;
    let fact = Fact::Identity(IdentityOutcome::Approved);
    let next = flow.apply(&fact, at).map_err(bad)?;
    let mut effects = vec![Effect::RecordProviderEvent {
        dedupe_key: provider_event_key(provider, &run, "approved"),
        run_id: run.clone(),
        at,
    }];
    let mut details = json!({ "provider": provider, "status": "approved" });
    if signed {
        details["signature"] = json!("current");
    }
    let mut events = vec![
        NewAuditEvent {
            details,
            ..provider_event(AuditEventType::ProviderEventReceived, &flow, at)
        },
        provider_event(AuditEventType::FlowVerified, &next, at),
    ];
    if next.state == FlowState::Completed {
        completion(
            s,
            Actor::Provider,
            &flow,
            &next,
            None,
            at,
            &mut effects,
            &mut events,
        )
        .await?;
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}

/// What the product writes with a flow's completion by `actor`, after the
/// events of the step that completes it (its `transition_records`): the new
/// credential, the staged reference made the user's (`staged_now` when the
/// same change stages it, else read as the product reads it), a recovery's
/// cancellations and revocations as set-based effects, the re-check of a
/// passkey asserted before, and the completion's event.
#[allow(clippy::too_many_arguments)] // The product's `transition_records`, flattened.
async fn completion(
    s: &Baseline,
    actor: Actor,
    before: &Flow,
    next: &Flow,
    staged_now: Option<Vec<u8>>,
    at: OffsetDateTime,
    effects: &mut Vec<Effect>,
    events: &mut Vec<NewAuditEvent>,
) -> Result<(), (StatusCode, String)> {
    let about = |t: AuditEventType, subject: Subject| audit(t, actor.clone(), subject, at);
    if let Some(new) = &next.pending_credential {
        effects.push(Effect::InsertCredential(Credential {
            id: new.id,
            user_id: next.user_id,
            webauthn_id: WebAuthnId::parse(&new.webauthn_id).map_err(bad)?,
            public_key: new.public_key.clone(),
            aaguid: None,
            sign_count: new.sign_count,
            transports: new.transports.clone(),
            backup_eligible: false,
            backup_state: false,
            platform: new.platform.clone(),
            device_label: new.device_label.clone(),
            passkey: new.passkey.clone(),
            created_by_flow: next.id,
            status: CredentialStatus::Active,
            status_reason: None,
            created_at: at,
            updated_at: at,
            last_used_at: None,
        }));
        events.push(about(
            AuditEventType::CredentialRegistered,
            Subject::of_flow(next),
        ));
    }
    if next.reference_stored {
        let staged = match staged_now {
            Some(sealed) => sealed,
            None => s.repo.staged_reference_of(next.id).await.map_err(fail)?,
        };
        let reference = BiometricReference {
            user_id: next.user_id,
            sealed: s.sealed(s.unsealed(&staged)),
            created_by_flow: next.id,
            created_at: at,
        };
        events.push(NewAuditEvent {
            details: json!({ "key_id": KEY_ID }),
            ..about(
                AuditEventType::BiometricReferenceStored,
                Subject::of_flow(next),
            )
        });
        effects.push(if next.flow_type == FlowType::Registration {
            Effect::EnrolReference(reference)
        } else {
            Effect::StoreReference(reference)
        });
        effects.push(Effect::DiscardStagedReference(next.id));
    }
    if next.flow_type == FlowType::Recovery {
        effects.push(Effect::CancelOtherFlows {
            user_id: next.user_id,
            keep: next.id,
            at,
            event: NewAuditEvent {
                reason: Some("recovery".into()),
                details: json!({ "recovery_flow_id": next.id }),
                ..about(
                    AuditEventType::FlowCancelled,
                    Subject {
                        user_id: Some(next.user_id),
                        ..Subject::default()
                    },
                )
            },
        });
        if let Some(new) = &next.pending_credential {
            effects.push(Effect::RevokeOtherCredentials {
                user_id: next.user_id,
                keep: new.id,
                reason: "recovery".into(),
                at,
                event: NewAuditEvent {
                    reason: Some("recovery".into()),
                    ..about(AuditEventType::CredentialRevoked, Subject::of_flow(next))
                },
            });
        }
    }
    if !next.flow_type.creates_credential()
        && before.possession_done
        && let Some(credential) = next.credential_id
    {
        effects.push(Effect::RequireActiveCredential(credential));
    }
    events.push(flow_completed(
        about(AuditEventType::FlowCompleted, Subject::of_flow(next)),
        next,
    ));
    Ok(())
}
