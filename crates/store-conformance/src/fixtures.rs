//! Values the behaviours are written with. Every field is chosen (bytes that
//! are not UTF-8, counters beyond `i32`, timestamps with six fractional digits),
//! so a field a store drops, truncates or mixes up shows in a comparison.

use std::fmt::Debug;

use domain::credential::{Credential, CredentialStatus, RegisteredPasskey, WebAuthnId};
use domain::custody::BiometricReference;
use domain::flow::{
    Ceremony, Flow, FlowId, FlowState, FlowType, Handoff, IdentityStatus, KeyedDigest,
    NewCredential,
};
use domain::{
    Actor, AuditEventType, AuditQuery, Change, Conflict, ExternalUserId, FlowLimits, FlowWrite,
    Limit, NewAuditEvent, Repository, StoreError, StoreResult, Subject, User, UserId, ids,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub(crate) const T0: OffsetDateTime = datetime!(2026-04-01 08:00:00.123456 UTC);

/// `T0` plus `seconds`.
pub(crate) fn at(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

/// A user, already stored (with its `user.created` event).
pub(crate) async fn stored_user(repo: &dyn Repository, external: &str) -> User {
    let user = User::new(ExternalUserId::parse(external).unwrap(), T0);
    repo.create_user(&user, &event(AuditEventType::UserCreated, &user, T0))
        .await
        .unwrap();
    user
}

/// A successful event about `user`.
pub(crate) fn event(event_type: AuditEventType, user: &User, at: OffsetDateTime) -> NewAuditEvent {
    NewAuditEvent::new(
        event_type,
        Actor::Integration(None),
        Subject::of_user(user),
        at,
    )
}

/// A just-created flow with no optional field set, expiring 15 minutes after creation.
pub(crate) fn flow(user: UserId, flow_type: FlowType, created_at: OffsetDateTime) -> Flow {
    Flow {
        // Pending even when the type needs no identity proof: the stores keep
        // whatever state they are given.
        state: FlowState::Pending,
        ..Flow::new(
            FlowId(ids::new_id(created_at)),
            user,
            flow_type,
            created_at,
            created_at + Duration::minutes(15),
        )
    }
}

/// A flow with every field set (but those only an update sets: the hand-off's
/// claim, the failure reason and the completion time). Its run id and hand-off
/// code are unique per call.
pub(crate) fn full_flow(user: UserId) -> Flow {
    let created_at = datetime!(2026-04-01 08:00:00.000001 UTC);
    Flow {
        id: FlowId(ids::new_id(created_at)),
        user_id: user,
        flow_type: FlowType::Recovery,
        state: FlowState::AwaitingVerification,
        version: 1,
        identity: IdentityStatus::Pending,
        idv_run_id: Some(format!("run-{}", Uuid::new_v4())),
        sdk_token_sealed: Some(vec![0x00, 0x01, 0xfe, 0xff, 0x80, 0x00]),
        possession_done: false,
        reference_stored: true,
        credential_id: Some(Uuid::new_v4()),
        pending_credential: Some(new_credential()),
        failure_reason: None,
        transaction_context_sealed: Some(vec![0xff, 0x00, 0xc3, 0x28, 0x00]),
        transaction_context_digest: Some(KeyedDigest {
            key_id: "key-2026".into(),
            hmac: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        }),
        reference_flow_id: Some(FlowId(Uuid::new_v4())),
        cross_platform: true,
        handoff: Some(Handoff {
            code_sha256: ids::random_bytes(),
            expires_at: datetime!(2026-04-01 08:05:00.999999 UTC),
            claimed_at: None,
        }),
        ceremony: Some(Ceremony {
            state_sealed: vec![0x00, 0x9c, 0xff, 0x10, 0x00],
            expires_at: datetime!(2026-04-01 08:05:00.000002 UTC),
        }),
        created_at,
        updated_at: datetime!(2026-04-01 08:00:01.654321 UTC),
        expires_at: datetime!(2026-04-01 08:15:00.500001 UTC),
        completed_at: None,
    }
}

/// A credential-to-be with every field set.
pub(crate) fn new_credential() -> NewCredential {
    NewCredential {
        id: Uuid::new_v4(),
        webauthn_id: "AQIDBAUGBwgJCgsMDQ4PEA".into(),
        public_key: Some(vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x00, 0xff]),
        aaguid: Some(Uuid::from_u128(0x0898_7058_cadc_4b81_b6e1_30de_50dc_be96)),
        sign_count: 4_000_000_000,
        transports: vec!["internal".into(), "hybrid".into()],
        backup_eligible: true,
        backup_state: false,
        platform: Some("ios".into()),
        device_label: Some("Alice's iPhone".into()),
        passkey: Some(passkey()),
    }
}

/// What the built-in relying party keeps about a passkey it registered.
pub(crate) fn passkey() -> RegisteredPasskey {
    RegisteredPasskey {
        user_verified: true,
        attestation_format: "packed".into(),
        attestation_verified: false,
        data: serde_json::json!({ "cred_id": "AQIDBAUGBwgJCgsMDQ4PEA", "counter": 0, "nested": [1, "ü"] }),
    }
}

/// The active credential a completed flow turns `pending` into.
pub(crate) fn credential_from(
    flow: &Flow,
    pending: &NewCredential,
    at: OffsetDateTime,
) -> Credential {
    Credential {
        id: pending.id,
        user_id: flow.user_id,
        webauthn_id: WebAuthnId::parse(&pending.webauthn_id).unwrap(),
        public_key: pending.public_key.clone(),
        aaguid: pending.aaguid,
        sign_count: pending.sign_count,
        transports: pending.transports.clone(),
        backup_eligible: pending.backup_eligible,
        backup_state: pending.backup_state,
        platform: pending.platform.clone(),
        device_label: pending.device_label.clone(),
        passkey: pending.passkey.clone(),
        created_by_flow: flow.id,
        status: CredentialStatus::Active,
        status_reason: None,
        created_at: at,
        updated_at: at,
        last_used_at: None,
    }
}

/// An active credential with every field set but `status_reason` and
/// `last_used_at`, its counter at 5. `webauthn_id` must be base64url.
pub(crate) fn credential(
    user: UserId,
    webauthn_id: &str,
    created_at: OffsetDateTime,
) -> Credential {
    Credential {
        id: ids::new_id(created_at),
        user_id: user,
        webauthn_id: WebAuthnId::parse(webauthn_id).unwrap(),
        public_key: Some(vec![0xa4, 0x01, 0x01, 0x03, 0x27, 0x00, 0xff]),
        aaguid: Some(Uuid::from_u128(0xea9b_8d66_4d01_1d21_3ce4_b6b4_8cb5_75d4)),
        sign_count: 5,
        transports: vec!["usb".into(), "nfc".into()],
        backup_eligible: true,
        backup_state: false,
        platform: Some("android".into()),
        device_label: Some("Pixel 9".into()),
        passkey: Some(passkey()),
        created_by_flow: FlowId(Uuid::new_v4()),
        status: CredentialStatus::Active,
        status_reason: None,
        created_at,
        updated_at: created_at,
        last_used_at: None,
    }
}

pub(crate) fn reference(
    user: UserId,
    sealed: &[u8],
    created_at: OffsetDateTime,
) -> BiometricReference {
    BiometricReference {
        user_id: user,
        sealed: sealed.to_vec(),
        created_by_flow: FlowId(Uuid::new_v4()),
        created_at,
    }
}

/// Limits no test reaches unless it means to.
pub(crate) fn roomy(now: OffsetDateTime) -> FlowLimits {
    FlowLimits {
        max_open_flows: 1000,
        max_idv_runs_per_day: 1000,
        now,
    }
}

/// Inserts `flow` within roomy limits at its creation time.
pub(crate) fn insert(flow: &Flow) -> Change {
    insert_within(flow, roomy(flow.created_at))
}

pub(crate) fn insert_within(flow: &Flow, limits: FlowLimits) -> Change {
    Change {
        flow: Some(FlowWrite::Insert {
            flow: flow.clone(),
            limits,
        }),
        ..Change::default()
    }
}

pub(crate) fn update(flow: &Flow) -> Change {
    Change {
        flow: Some(FlowWrite::Update { flow: flow.clone() }),
        ..Change::default()
    }
}

/// The whole trail, newest first.
pub(crate) async fn all_events(repo: &dyn Repository) -> Vec<NewAuditEvent> {
    let page = repo
        .audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    page.items.into_iter().map(|e| e.event).collect()
}

/// Everything a change could have written about one user, to compare before and
/// after a change that must write nothing.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    user: Option<User>,
    flows: Vec<Flow>,
    credentials: Vec<Credential>,
    reference: Option<BiometricReference>,
    events: Vec<NewAuditEvent>,
}

pub(crate) async fn snapshot(repo: &dyn Repository, user: UserId) -> Snapshot {
    Snapshot {
        user: found(repo.user_by_id(user).await),
        flows: repo.flows_of(user, 1000).await.unwrap(),
        credentials: repo.credentials_of(user).await.unwrap(),
        reference: found(repo.reference_of(user).await),
        events: all_events(repo).await,
    }
}

/// `Some` when found, `None` when `NotFound`; any other error fails the test.
pub(crate) fn found<T>(result: StoreResult<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(StoreError::NotFound) => None,
        Err(other) => panic!("expected a value or NotFound, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_not_found<T: Debug>(result: StoreResult<T>) {
    assert!(
        matches!(result, Err(StoreError::NotFound)),
        "expected NotFound, got {result:?}"
    );
}

#[track_caller]
pub(crate) fn assert_conflict<T: Debug>(result: StoreResult<T>, conflict: Conflict) {
    match result {
        Err(StoreError::Conflict(got)) if got == conflict => {}
        other => panic!("expected Conflict({conflict:?}), got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_limit<T: Debug>(result: StoreResult<T>, limit: Limit) {
    match result {
        Err(StoreError::LimitReached(got)) if got == limit => {}
        other => panic!("expected LimitReached({limit:?}), got {other:?}"),
    }
}
