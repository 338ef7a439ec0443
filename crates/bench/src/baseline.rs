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
//!
//! Its routes are in `flows`, the events and effects of a completion in
//! `events`, and the stand-ins of WebAuthn in `webauthn`.

mod events;
mod flows;
mod webauthn;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use domain::flow::Flow;
use domain::sealing::{KeyId, sealed_len};
use domain::{Change, Effect, FlowWrite, NewAuditEvent, Repository};
use serde_json::{Value, json};
use store_postgres::PgStore;
use testkit::onfido_double::OnfidoDoubleConfig;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::services;
use flows::{
    create_flow, get_flow, outcome, possession, release_reference, store_reference, webhook,
};

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

fn reply(flow: &Flow) -> Json<Value> {
    Json(json!({
        "id": flow.id.0,
        "state": flow.state.as_str(),
        "identity": { "workflow_run_id": flow.idv_run_id },
    }))
}

fn router(
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

/// `bench baseline`: serves the baseline on loopback until killed (its
/// database from the DB_* variables).
pub(crate) async fn serve(
    port: u16,
    pool: u32,
    rp_id: Option<String>,
    provider: Provider,
) -> anyhow::Result<()> {
    let store = PgStore::connect_lazy(&services::settings(&services::env("DB_NAME")?, pool)?);
    let secret = OnfidoDoubleConfig::default().webhook_token;
    let app = router(
        store,
        services::MAX_OPEN_FLOWS,
        services::MAX_IDV_RUNS,
        &secret,
        rp_id,
        provider,
    )?;
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
