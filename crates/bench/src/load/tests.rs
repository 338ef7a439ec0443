use domain::possession::PasskeyUser;
use url::Url;
use uuid::Uuid;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::webauthn::{ORIGIN, relying_party};

/// A phone's registration at the relying party of `bench webauthn`, and
/// how the relying party judged it.
fn registered_format(options_attestation: Option<&str>) -> String {
    let origin = Url::parse(ORIGIN).unwrap();
    let rp = relying_party().unwrap();
    let user = PasskeyUser {
        handle: Uuid::from_u128(7),
        name: "customer-7",
        display_name: "customer-7",
    };
    let mut start = rp.start_registration(user, &[]).unwrap();
    match options_attestation {
        Some(a) => start.options["attestation"] = a.into(),
        None => _ = start.options.as_object_mut().unwrap().remove("attestation"),
    }
    let mut phone = SoftPasskey::new(true);
    let response =
        super::phone::registration_response(&mut phone, &origin, &start.options).unwrap();
    rp.verify_registration(&start.state, &response)
        .unwrap()
        .attestation_format
}

#[test]
fn a_phone_answers_a_request_for_no_attestation_with_none() {
    assert_eq!(registered_format(Some("none")), "none");
    assert_eq!(registered_format(None), "none");
}

#[test]
fn a_phone_asked_for_attestation_keeps_its_statement() {
    assert_eq!(registered_format(Some("direct")), "packed");
}

#[test]
fn ids_are_base64url_without_padding() {
    assert_eq!(
        super::target::b64("walkthrough-passkey"),
        "d2Fsa3Rocm91Z2gtcGFzc2tleQ"
    );
    assert_eq!(super::target::b64("ab"), "YWI");
}

#[test]
fn a_client_takes_its_users_in_turn() {
    let user = |id: &str| super::VirtualUser {
        external_id: id.into(),
        credential: String::new(),
        sign_count: 0,
        phone: None,
    };
    let mut client = super::Client {
        users: vec![user("a"), user("b"), user("c")],
        next: 0,
    };
    let turns: Vec<String> = (0..7)
        .map(|_| client.take_turn().external_id.clone())
        .collect();
    assert_eq!(turns, ["a", "b", "c", "a", "b", "c", "a"]);
}
