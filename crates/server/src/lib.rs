//! The `biometric-passkey` binary's library half: configuration, telemetry,
//! wiring and the subcommands. `main.rs` only parses the command line.

pub mod app;
pub mod audit;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod dev;
pub mod dev_issuer;
pub mod healthcheck;
pub mod keys;
pub mod metrics;
pub mod smoke;
pub mod telemetry;
pub mod traces;
