//! The committed OpenAPI document must be the one the code generates.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p core-api --test openapi`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

use std::path::Path;

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi/core-v1.json");
    let generated = core_api::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        panic!(
            "docs/openapi/core-v1.json is out of date with the code.\n\
             Regenerate it with `UPDATE_OPENAPI=1 cargo test -p core-api --test openapi` and commit it."
        );
    }
}

#[test]
fn every_route_is_documented() {
    let doc: serde_json::Value = serde_json::from_str(&core_api::openapi::document()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/core/v1/flows", &["post"][..]),
        ("/api/core/v1/flows/{flow_id}", &["get"]),
        ("/api/core/v1/flows/{flow_id}/possession", &["post"]),
        ("/api/core/v1/flows/{flow_id}/cancel", &["post"]),
        ("/api/core/v1/flows/{flow_id}/biometric-reference", &["put"]),
        (
            "/api/core/v1/flows/{flow_id}/biometric-reference/release",
            &["post"],
        ),
        ("/api/core/v1/handoffs/claim", &["post"]),
        ("/api/core/v1/users/{external_user_id}", &["get", "delete"]),
        ("/api/core/v1/synthetic/runs/{run_id}/outcome", &["post"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} undocumented"
            );
        }
    }
}

#[test]
fn operation_ids_are_unique_and_every_link_names_one() {
    let doc: serde_json::Value = serde_json::from_str(&core_api::openapi::document()).unwrap();
    let mut ids = Vec::new();
    let mut linked = Vec::new();
    for methods in doc["paths"].as_object().unwrap().values() {
        for operation in methods.as_object().unwrap().values() {
            ids.push(operation["operationId"].as_str().unwrap().to_owned());
            for response in operation["responses"].as_object().unwrap().values() {
                for link in response["links"]
                    .as_object()
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    linked.push(link["operationId"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    assert!(!linked.is_empty());
    for id in linked {
        assert!(
            ids.contains(&id),
            "a link names {id}, which no operation is"
        );
    }
}
