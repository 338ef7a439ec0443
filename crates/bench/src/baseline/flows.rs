//! The baseline's routes: each flow step's store calls, in the product's
//! order, and nothing else.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::credential::RegisteredPasskey;
use domain::flow::{
    Fact, Flow, FlowId, FlowState, FlowType, IdentityOutcome, KeyedDigest, NewCredential,
};
use domain::service::provider_event_key;
use domain::{
    Actor, AuditEventType, Change, Effect, ExternalUserId, FlowLimits, FlowWrite, NewAuditEvent,
    Repository, StoreError, Subject, User, ids,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{audit, completion, event, integration, provider_event};
use super::webauthn::{assertion_counter, ceremony, registered};
use super::{Baseline, KEY_ID, Reply, bad, fail, now, reply, write};

pub(super) async fn create_flow(State(s): State<Baseline>, Json(body): Json<Value>) -> Reply {
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

pub(super) async fn get_flow(State(s): State<Baseline>, Path(id): Path<Uuid>) -> Reply {
    let flow = s.repo.flow(FlowId(id)).await.map_err(fail)?;
    Ok(reply(&flow))
}

pub(super) async fn store_reference(
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
        let (completed, completed_events) =
            completion(&s, integration(), &flow, &next, Some(staged), at).await?;
        effects.extend(completed);
        events.extend(completed_events);
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}

pub(super) async fn release_reference(State(s): State<Baseline>, Path(id): Path<Uuid>) -> Reply {
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

pub(super) async fn possession(
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
        let new = new_credential(&s, &body, webauthn, at).await?;
        (
            Fact::Possession {
                credential_id: new.id,
            },
            Some(new),
        )
    } else {
        let (fact, used) = used_credential(&s, &body, webauthn, at).await?;
        effects.push(used);
        (fact, None)
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
        let (completed, completed_events) =
            completion(&s, integration(), &flow, &next, None, at).await?;
        effects.extend(completed);
        events.extend(completed_events);
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}

/// A new passkey, from the caller's report or (`builtin` mode) from the
/// authenticator's `webauthn` response, once its WebAuthn id is found
/// unused.
async fn new_credential(
    s: &Baseline,
    body: &Value,
    webauthn: Option<&Value>,
    at: OffsetDateTime,
) -> Result<NewCredential, (StatusCode, String)> {
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
    Ok(NewCredential {
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
    })
}

/// Possession of the passkey an assertion names, and its use with the
/// counter the assertion reports: the caller's report, or (`builtin` mode)
/// the authenticator's `webauthn` response.
async fn used_credential(
    s: &Baseline,
    body: &Value,
    webauthn: Option<&Value>,
    at: OffsetDateTime,
) -> Result<(Fact, Effect), (StatusCode, String)> {
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
    Ok((
        Fact::Possession {
            credential_id: credential.id,
        },
        Effect::UseCredential {
            id: credential.id,
            sign_count,
            backup_state: false,
            at,
        },
    ))
}

fn pending_free(flow: &Flow) -> bool {
    flow.pending_credential.is_none()
}

pub(super) async fn outcome(State(s): State<Baseline>, Path(run): Path<String>) -> Reply {
    approve(&s, run, false).await
}

/// A signed provider event: the signature checked over the raw bytes, the
/// event de-duplicated, then the same work as the synthetic outcome. (The
/// product also re-reads the run from the provider; that is not database work.)
pub(super) async fn webhook(
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
        let (completed, completed_events) =
            completion(s, Actor::Provider, &flow, &next, None, at).await?;
        effects.extend(completed);
        events.extend(completed_events);
    }
    write(&s.repo, &next, effects, events).await?;
    Ok(reply(&next))
}
