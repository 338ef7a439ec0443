//! The `biometric-passkey` binary's commands as operators run them: the
//! binary itself (configuration refusals, migrations, serving, shutdown, the
//! `audit`, `credentials` and `smoke` commands) and `dev`'s sign-in in
//! process. One test binary, one module per subject; run one subject with
//! `cargo nextest run -p server -E 'test(/^audit_cli::/)'`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a failure is a panic.

mod support;

mod audit_cli;
mod cli;
mod credentials_cli;
mod dev_issuer;
mod smoke_cli;
