//! Responses the built-in relying party refuses: a wrong origin or RP id, a
//! replay, another flow's or an expired challenge, a tampered signature, a
//! malformed response, a new passkey whose public key is not on its curve, no
//! user verification, another user's or an unknown credential. Each is
//! audited and changes nothing.

use super::*;

on_both_stores!(
    a_wrong_origin_is_refused_and_changes_nothing,
    a_wrong_rp_id_is_refused_and_changes_nothing,
    a_replayed_response_is_refused,
    a_response_to_another_flows_challenge_is_refused,
    an_expired_challenge_is_refused,
    a_tampered_signature_is_refused,
    a_malformed_response_is_refused_and_changes_nothing,
    a_new_passkey_off_its_curve_is_refused_and_changes_nothing,
    missing_user_verification_is_refused,
    another_users_or_an_unknown_credential_is_refused,
);

async fn a_wrong_origin_is_refused_and_changes_nothing(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "bob", &mut phone).await;
    let flow = sign_in(&app, "bob").await;
    let response = get(&mut phone, options(&flow), "https://evil.bank.example");
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "bob",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_origin_not_allowed",
    )
    .await;
}

async fn a_wrong_rp_id_is_refused_and_changes_nothing(store: Store) {
    let settings = Settings {
        origins: vec![
            Url::parse(ORIGIN).unwrap(),
            Url::parse("https://login.bank.example").unwrap(),
        ],
        ..settings()
    };
    let app = app_with(store, FlowPolicy::default(), &settings).await;
    let mut phone = SoftPasskey::new(true);
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "carol" }))
        .await;
    // The authenticator was asked for another RP ID (a client that rewrote it).
    let mut altered = flow.clone();
    altered["possession"]["webauthn_options"]["rp"]["id"] = json!("login.bank.example");
    let response = create(&mut phone, &altered, "https://login.bank.example");
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "carol",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_rp_id_mismatch",
    )
    .await;
}

async fn a_replayed_response_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "dave", &mut phone).await;
    let first = sign_in(&app, "dave").await;
    let response = get(&mut phone, options(&first), ORIGIN);
    let (status, _) = prove(&app, &first, response.clone()).await;
    assert_eq!(status, StatusCode::OK);
    // The same response again, to the same flow (its challenge is spent)…
    let (status, body) = prove(&app, &first, response.clone()).await;
    expect_error(status, &body, StatusCode::CONFLICT, "flow_ended");
    // …and to a new flow, whose challenge it does not answer.
    let second = sign_in(&app, "dave").await;
    let attempt = prove(&app, &second, response).await;
    refused(
        &app,
        &second,
        "dave",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_mismatch",
    )
    .await;
}

async fn a_response_to_another_flows_challenge_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "erin", &mut phone).await;
    let one = sign_in(&app, "erin").await;
    let two = sign_in(&app, "erin").await;
    let for_one = get(&mut phone, options(&one), ORIGIN);
    let attempt = prove(&app, &two, for_one.clone()).await;
    refused(
        &app,
        &two,
        "erin",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_challenge_mismatch",
    )
    .await;
    // The flow it was made for still takes it.
    let (status, body) = prove(&app, &one, for_one).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn an_expired_challenge_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "finn", &mut phone).await;
    let flow = sign_in(&app, "finn").await;
    let response = get(&mut phone, options(&flow), ORIGIN);
    // Past the challenge's 5 minutes, within the flow's 15.
    app.clock.advance(time::Duration::minutes(6));
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "finn",
        attempt,
        StatusCode::CONFLICT,
        "webauthn_ceremony_expired",
    )
    .await;
}

async fn a_tampered_signature_is_refused(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "gina", &mut phone).await;
    let flow = sign_in(&app, "gina").await;
    let mut response = get(&mut phone, options(&flow), ORIGIN);
    let mut signature = URL_SAFE_NO_PAD
        .decode(response["response"]["signature"].as_str().unwrap())
        .unwrap();
    let last = signature.len() - 1;
    signature[last] ^= 0x01;
    response["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(signature));
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "gina",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_signature_invalid",
    )
    .await;
}

async fn a_malformed_response_is_refused_and_changes_nothing(store: Store) {
    let app = app(store).await;
    let mut phone = SoftPasskey::new(true);
    enroll(&app, "uma", &mut phone).await;
    // An assertion that is not one: no authenticator data, no signature.
    let flow = sign_in(&app, "uma").await;
    let attempt = prove(&app, &flow, json!({ "id": 3, "response": {} })).await;
    refused(
        &app,
        &flow,
        "uma",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_response_malformed",
    )
    .await;
    // A new phone's registration without its attestation object.
    app.clock.advance(time::Duration::days(1));
    let recovery = app
        .created(json!({ "type": "recovery", "external_user_id": "uma" }))
        .await;
    let mut response = create(&mut SoftPasskey::new(true), &recovery, ORIGIN);
    response["response"]
        .as_object_mut()
        .unwrap()
        .remove("attestationObject");
    let attempt = prove(&app, &recovery, response).await;
    refused(
        &app,
        &recovery,
        "uma",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_response_malformed",
    )
    .await;
}

/// `response` (a registration) with the last byte of its new passkey's `y`
/// coordinate flipped in the authenticator data, which puts the point off
/// the curve. The COSE key's `y` is the byte string under label -3
/// (`0x22 0x58 0x20`, then 32 bytes); the length does not change, so the
/// attestation object stays well-formed CBOR.
fn with_key_off_its_curve(mut response: Value) -> Value {
    let encoded = response["response"]["attestationObject"].as_str().unwrap();
    let mut object = URL_SAFE_NO_PAD.decode(encoded).unwrap();
    let auth_data = object
        .windows(8)
        .position(|w| w == b"authData")
        .expect("the attestation object has authData");
    let y = object[auth_data..]
        .windows(3)
        .position(|w| w == [0x22, 0x58, 0x20])
        .map(|at| auth_data + at + 3)
        .expect("the new passkey is an EC2 key with a y coordinate");
    object[y + 31] ^= 0x01;
    response["response"]["attestationObject"] = json!(URL_SAFE_NO_PAD.encode(object));
    response
}

async fn a_new_passkey_off_its_curve_is_refused_and_changes_nothing(store: Store) {
    let app = app(store).await;
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "vera" }))
        .await;
    let response = create(&mut SoftPasskey::new(true), &flow, ORIGIN);
    let attempt = prove(&app, &flow, with_key_off_its_curve(response)).await;
    refused(
        &app,
        &flow,
        "vera",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_response_malformed",
    )
    .await;
}

async fn missing_user_verification_is_refused(store: Store) {
    let app = app(store).await;
    // An authenticator that checks presence only, given options altered to
    // ask for no verification.
    let mut presence_only = SoftPasskey::new(false);
    let flow = app
        .created(json!({ "type": "registration", "external_user_id": "hugo" }))
        .await;
    let mut altered = flow.clone();
    altered["possession"]["webauthn_options"]["authenticatorSelection"]["userVerification"] =
        json!("discouraged");
    let response = create(&mut presence_only, &altered, ORIGIN);
    let attempt = prove(&app, &flow, response).await;
    refused(
        &app,
        &flow,
        "hugo",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_user_not_verified",
    )
    .await;
}

async fn another_users_or_an_unknown_credential_is_refused(store: Store) {
    let app = app(store).await;
    let mut ivy_phone = SoftPasskey::new(true);
    let mut jack_phone = SoftPasskey::new(true);
    enroll(&app, "ivy", &mut ivy_phone).await;
    let jack = enroll(&app, "jack", &mut jack_phone).await;
    let jack_passkey = credentials(&app, "jack").await[0]["webauthn_id"].clone();
    assert!(jack["id"].is_string());

    // Jack's phone answers Ivy's sign-in with Jack's passkey.
    let (flow, attempt) = answered_with(&app, "ivy", &mut jack_phone, &jack_passkey).await;
    refused(
        &app,
        &flow,
        "ivy",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_credential_not_allowed",
    )
    .await;

    // A passkey this backend never registered.
    let mut stranger = SoftPasskey::new(true);
    let unknown = {
        let rp = WebauthnRp::new(&settings()).unwrap();
        use domain::possession::PasskeyUser;
        let start = rp
            .start_registration(
                PasskeyUser {
                    handle: Uuid::from_u128(7),
                    name: "x",
                    display_name: "x",
                },
                &[],
            )
            .unwrap();
        let fake_flow = json!({ "possession": { "webauthn_options": start.options } });
        create(&mut stranger, &fake_flow, ORIGIN)["id"].clone()
    };
    let (flow, attempt) = answered_with(&app, "ivy", &mut stranger, &unknown).await;
    refused(
        &app,
        &flow,
        "ivy",
        attempt,
        StatusCode::BAD_REQUEST,
        "webauthn_credential_not_allowed",
    )
    .await;
}
