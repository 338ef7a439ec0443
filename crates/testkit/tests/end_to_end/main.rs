//! The end-to-end tests: runtimes spawned on loopback over either store and
//! driven over real HTTP, with the test doubles of the IDV provider and the
//! OIDC provider; and the domain's services called directly over the SQLite
//! store with a manual clock, with no HTTP (`flow_service`,
//! `management_service`), where each use-case rule lives. One test binary,
//! one module per subject; run one subject with
//! `cargo nextest run -p testkit -E 'test(/^onfido::/)'`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

mod ceremony;

mod bounded_work;
mod builtin_possession;
mod core_api_auth;
mod core_flows;
mod credential_export;
mod custody_and_completion;
mod dashboard_files;
mod flow_service;
mod key_rotation;
mod management;
mod management_service;
mod metrics;
mod onfido;
mod operator_auth;
mod prometheus;
mod runtimes;
mod traces;
