//! The committed OpenAPI document must be the one the code generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p management --test openapi`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::path::Path;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi/management-v1.json");
    let generated = management::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        panic!(
            "docs/openapi/management-v1.json is out of date with the code.\n\
             Regenerate it with `UPDATE_OPENAPI=1 cargo test -p management --test openapi` and commit it."
        );
    }
}

#[test]
fn the_documented_cursor_pattern_is_the_one_the_server_checks() {
    let doc: serde_json::Value = serde_json::from_str(&management::openapi::document()).unwrap();
    let parameters = doc["paths"]["/api/management/v1/users"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let after = parameters.iter().find(|p| p["name"] == "after").unwrap();
    assert_eq!(after["schema"]["pattern"], management::v1::CURSOR_PATTERN);
}
